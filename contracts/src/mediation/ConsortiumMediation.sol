// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {ILilypad, MediationCase} from "../interfaces/ILilypad.sol";
import {IMediation} from "../interfaces/IMediation.sol";

/// @title ConsortiumMediation
/// @notice The default {IMediation}: when a client challenges a result, N mediators are drawn from
///         Lilypad's registry (neither party picks them, and neither party can be one), each re-runs
///         the job and submits the commitment of the whole result it got (status, exit code, CID and
///         inline output: {ILilypad-resultCommitment}). The first hash to reach k
///         votes decides: the provider's own hash upholds the result; any other hash overturns it.
///         If no hash reaches k by the deadline (or all N voted without a quorum), anyone may
///         {finalize}: the result stands (the challenger carries the burden of proof) and the fee
///         goes to the mediators who voted, or back to the client if none did.
/// @dev Randomness is block.prevrandao mixed with the job id: a block proposer can bias it (by
///      withholding a block) and the client can choose the block in which it challenges, so the
///      draw resists casual collusion, not a determined validator. 2k > N guarantees two verdicts
///      can never both reach quorum. See docs/protocol.md.
contract ConsortiumMediation is IMediation, Ownable2Step {
    /// @notice Most mediators per case.
    uint256 public constant MAX_MEDIATORS = 15;
    /// @notice Most registry entries examined when drawing mediators for one case.
    uint256 public constant MAX_DRAWS = 64;

    struct Case {
        bytes32 providerHash;
        uint64 deadline;
        uint8 votes;
        uint8 threshold;
        bool resolved;
        address[] mediators;
    }

    /// @notice The Lilypad contract this mediation serves.
    ILilypad public immutable lilypad;
    /// @notice N: mediators drawn per case.
    uint8 public mediatorsPerCase;
    /// @notice k: matching votes that decide a case.
    uint8 public threshold;

    mapping(uint256 jobId => Case) internal _cases;
    /// @notice The hash each mediator submitted for a job (zero: no vote yet).
    mapping(uint256 jobId => mapping(address mediator => bytes32)) public verdictOf;
    /// @notice Votes per result hash for a job.
    mapping(uint256 jobId => mapping(bytes32 resultHash => uint256)) public tally;

    event ConsortiumSet(uint8 mediatorsPerCase, uint8 threshold);
    event MediationStarted(uint256 indexed jobId, address[] mediators, bytes32 providerHash, uint64 deadline);
    event VerdictSubmitted(uint256 indexed jobId, address indexed mediator, bytes32 resultHash);
    /// @notice `quorum` false means the fallback decided (no hash reached the threshold).
    event MediationResolved(uint256 indexed jobId, bool providerCorrect, bool quorum, address[] rewarded);

    error OnlyLilypad(address caller);
    error InvalidConsortium(uint8 mediatorsPerCase, uint8 threshold);
    error CaseExists(uint256 jobId);
    error UnknownCase(uint256 jobId);
    error NotEnoughMediators(uint256 found, uint256 required);
    error NotSelected(uint256 jobId, address caller);
    error AlreadyVoted(uint256 jobId, address mediator);
    error ZeroResultHash();
    error AlreadyResolved(uint256 jobId);
    error VotingClosed(uint256 jobId, uint256 deadline);
    error VotingOpen(uint256 jobId, uint256 deadline);

    /// @param lilypad_ the Lilypad contract that will call {startMediation}
    /// @param initialOwner who may change N and k
    /// @param mediatorsPerCase_ N
    /// @param threshold_ k, with 2k > N and k <= N
    constructor(ILilypad lilypad_, address initialOwner, uint8 mediatorsPerCase_, uint8 threshold_)
        Ownable(initialOwner)
    {
        lilypad = lilypad_;
        _setConsortium(mediatorsPerCase_, threshold_);
    }

    /// @notice Sets N and k for cases started from now on (owner only).
    function setConsortium(uint8 mediatorsPerCase_, uint8 threshold_) external onlyOwner {
        _setConsortium(mediatorsPerCase_, threshold_);
    }

    /// @inheritdoc IMediation
    /// @dev Draws N distinct eligible mediators, excluding the client and the provider. Reverts
    ///      with NotEnoughMediators if the registry cannot supply them (the challenge then reverts).
    function startMediation(uint256 jobId, MediationCase calldata c) external {
        if (msg.sender != address(lilypad)) revert OnlyLilypad(msg.sender);
        Case storage cs = _cases[jobId];
        if (cs.mediators.length != 0) revert CaseExists(jobId);
        address[] memory chosen = _draw(jobId, c.client, c.provider, mediatorsPerCase);
        cs.providerHash = c.resultHash;
        cs.deadline = c.deadline;
        cs.threshold = threshold;
        cs.mediators = chosen;
        emit MediationStarted(jobId, chosen, c.resultHash, c.deadline);
    }

    /// @notice A chosen mediator reports the commitment of the result it got re-running the job
    ///         ({ILilypad-resultCommitment}: status, exit code, result CID, inline output).
    /// @dev The vote that brings a hash to k resolves the case on Lilypad in the same transaction,
    ///      which calls the client back: send enough gas for its callbackGasLimit.
    function submitVerdict(uint256 jobId, bytes32 resultHash) external {
        Case storage cs = _cases[jobId];
        uint256 n = cs.mediators.length;
        if (n == 0) revert UnknownCase(jobId);
        if (cs.resolved) revert AlreadyResolved(jobId);
        if (block.timestamp >= cs.deadline) revert VotingClosed(jobId, cs.deadline);
        if (resultHash == bytes32(0)) revert ZeroResultHash();
        if (!_isChosen(cs.mediators, msg.sender)) revert NotSelected(jobId, msg.sender);
        if (verdictOf[jobId][msg.sender] != bytes32(0)) revert AlreadyVoted(jobId, msg.sender);

        verdictOf[jobId][msg.sender] = resultHash;
        uint256 count = ++tally[jobId][resultHash];
        uint256 votes = ++cs.votes;
        emit VerdictSubmitted(jobId, msg.sender, resultHash);

        if (count >= cs.threshold) {
            _resolve(jobId, cs, resultHash == cs.providerHash, resultHash, true);
        } else if (votes == n) {
            _resolve(jobId, cs, true, bytes32(0), false);
        }
    }

    /// @notice After the deadline, closes a case that reached no quorum: the result stands and the
    ///         mediators who voted share the fee (the client gets it back if none voted).
    function finalize(uint256 jobId) external {
        Case storage cs = _cases[jobId];
        if (cs.mediators.length == 0) revert UnknownCase(jobId);
        if (cs.resolved) revert AlreadyResolved(jobId);
        if (block.timestamp < cs.deadline) revert VotingOpen(jobId, cs.deadline);
        _resolve(jobId, cs, true, bytes32(0), false);
    }

    /// @notice The mediators drawn for a job.
    function mediatorsOf(uint256 jobId) external view returns (address[] memory) {
        return _cases[jobId].mediators;
    }

    /// @notice A case's provider hash, deadline, vote count, threshold and whether it is resolved.
    function caseOf(uint256 jobId)
        external
        view
        returns (bytes32 providerHash, uint64 deadline, uint8 votes, uint8 threshold_, bool resolved)
    {
        Case storage cs = _cases[jobId];
        return (cs.providerHash, cs.deadline, cs.votes, cs.threshold, cs.resolved);
    }

    // ------------------------------------------------------------------ internals

    function _setConsortium(uint8 n, uint8 k) private {
        if (n == 0 || n > MAX_MEDIATORS || k > n || 2 * uint256(k) <= n) revert InvalidConsortium(n, k);
        mediatorsPerCase = n;
        threshold = k;
        emit ConsortiumSet(n, k);
    }

    /// @dev A partial Fisher-Yates shuffle over the registry's indices (the swaps are kept in a small
    ///      memory list, so the cost does not grow with the registry): candidates are visited in a
    ///      uniformly random order without repeats, and the first n eligible ones are taken.
    function _draw(uint256 jobId, address client, address provider, uint256 n)
        private
        view
        returns (address[] memory chosen)
    {
        uint256 pool = lilypad.mediatorCount();
        uint256 draws = pool < MAX_DRAWS ? pool : MAX_DRAWS;
        chosen = new address[](n);
        uint256[] memory swapFrom = new uint256[](draws);
        uint256[] memory swapTo = new uint256[](draws);
        bytes32 seed = keccak256(abi.encode(block.prevrandao, block.chainid, address(lilypad), jobId));
        uint256 found;
        for (uint256 t; t < draws && found < n; ++t) {
            uint256 j = t + uint256(keccak256(abi.encode(seed, t))) % (pool - t);
            uint256 picked = _lookup(swapFrom, swapTo, t, j);
            // position j now holds what position t held
            swapFrom[t] = j;
            swapTo[t] = _lookup(swapFrom, swapTo, t, t);
            (address m, bool eligible) = lilypad.mediatorAt(picked);
            if (eligible && m != client && m != provider) chosen[found++] = m;
        }
        if (found < n) revert NotEnoughMediators(found, n);
    }

    /// @dev The index currently at position `pos` of the virtual shuffled array.
    function _lookup(uint256[] memory from, uint256[] memory to, uint256 used, uint256 pos)
        private
        pure
        returns (uint256)
    {
        for (uint256 i = used; i > 0; --i) {
            if (from[i - 1] == pos) return to[i - 1];
        }
        return pos;
    }

    function _isChosen(address[] storage mediators, address who) private view returns (bool) {
        for (uint256 i; i < mediators.length; ++i) {
            if (mediators[i] == who) return true;
        }
        return false;
    }

    /// @dev With a quorum the rewarded mediators are those who voted the winning hash; without one,
    ///      everyone who voted.
    function _resolve(uint256 jobId, Case storage cs, bool providerCorrect, bytes32 winning, bool quorum) private {
        cs.resolved = true;
        address[] memory mediators = cs.mediators;
        address[] memory rewarded = new address[](cs.votes);
        uint256 count;
        for (uint256 i; i < mediators.length; ++i) {
            bytes32 v = verdictOf[jobId][mediators[i]];
            if (v != bytes32(0) && (!quorum || v == winning)) rewarded[count++] = mediators[i];
        }
        assembly ("memory-safe") {
            mstore(rewarded, count)
        }
        emit MediationResolved(jobId, providerCorrect, quorum, rewarded);
        lilypad.resolveChallenge(jobId, providerCorrect, rewarded);
    }
}
