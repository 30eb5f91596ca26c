// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {
    ILilypad,
    JobResult,
    Outcome,
    AuditState,
    Terms,
    JobStatus,
    Job,
    Challenge,
    FailedCallback,
    Params,
    Reputation
} from "./interfaces/ILilypad.sol";
import {ILilypadCallback} from "./interfaces/ILilypadCallback.sol";
import {Account} from "./libraries/LilypadRegistry.sol";

/// @title LilypadCore
/// @notice Lilypad's storage and the steps {Lilypad} and {LilypadDisputes} share: settling a job
///         and calling its client back.
/// @dev {Lilypad} runs {LilypadDisputes}' code on its own storage (delegatecall), so both inherit
///      this contract first: its variables are the first slots of both, in the same order. Add
///      storage here only, and only at the end.
abstract contract LilypadCore is ReentrancyGuardTransient {
    uint256 internal constant BPS = 10_000;
    /// @notice Most mediators one verdict can reward.
    uint256 public constant MAX_REWARDEES = 32;
    /// @notice After a challenge's mediation deadline plus this, anyone may close it.
    uint256 public constant STALE_CHALLENGE_GRACE = 1 days;
    /// @notice Blocks between a result and the block whose hash draws its audit: the provider
    ///         cannot know it when it submits.
    uint256 public constant AUDIT_SEED_DELAY = 2;
    /// @notice How far back the EVM keeps block hashes; an audit draw whose hash is gone audits.
    uint256 public constant BLOCKHASH_WINDOW = 256;
    /// @notice The EIP-2935 history contract (Prague): on a chain that has it, an audit draw's
    ///         hash is read from it for HISTORY_WINDOW blocks instead of BLOCKHASH_WINDOW.
    address public constant BLOCK_HISTORY = 0x0000F90827F1C53a10cb7A02335B175320002935;
    /// @notice How many block hashes the history contract keeps.
    uint256 public constant HISTORY_WINDOW = 8_191;
    /// @dev A job's `executionTimeout` once its audit draw passed it over and that was recorded.
    uint32 internal constant DRAW_PASSED = type(uint32).max;
    /// @notice Gas kept back around a callback: the CALL itself, the event after it and, when it
    ///         failed, recording the failure (a new slot) for {ILilypad-redeliverCallback}.
    uint256 public constant CALLBACK_GAS_RESERVE = 35_000;

    IERC20 internal immutable _token;
    uint64 internal _requestCount;
    /// the id of the terms new jobs take (the latest {Terms} appended)
    uint16 internal _termsId;
    Params internal _params;
    address internal _treasury;
    address internal _mediation;
    mapping(uint256 jobId => Job) internal _jobs;
    mapping(uint256 jobId => Challenge) internal _challenges;
    mapping(address account => uint256) internal _balances;
    mapping(address account => Account) internal _accounts;
    mapping(address account => string) internal _metadataUrls;
    EnumerableSet.AddressSet internal _providerSet;
    mapping(uint256 jobId => FailedCallback) internal _failedCallbacks;
    mapping(address provider => Reputation) internal _reputations;
    /// audit taxes paid in, audit fees paid out
    uint128 internal _auditFund;
    /// shares of slashed collateral not yet paid to an exposer
    uint128 internal _jackpot;
    mapping(uint16 id => Terms) internal _terms;
    /// the providers a job's request names
    mapping(uint256 jobId => mapping(address provider => bool)) internal _accepted;

    constructor(IERC20 token_) {
        _token = token_;
    }

    // ================================================================== checks

    function _requireStatus(Job storage job, uint256 jobId, JobStatus expected) internal view {
        JobStatus status = job.status;
        if (status != expected) {
            if (status == JobStatus.None) revert ILilypad.JobNotFound(jobId);
            revert ILilypad.InvalidJobStatus(jobId, status);
        }
    }

    /// @dev price x the client's results collateral multiplier.
    function _resultsCollateral(Job storage job) internal view returns (uint256) {
        return uint256(job.price) * job.resultsCollateralBps / BPS;
    }

    /// @dev price x the job's timeout collateral multiplier (fixed when the job was requested).
    function _timeoutCollateral(Job storage job) internal view returns (uint256) {
        return uint256(job.price) * job.timeoutCollateralBps / BPS;
    }

    /// @dev The block whose hash draws the job's audit (the result's block is kept in
    ///      `executionTimeout` once the result is in).
    function _auditSeedBlock(Job storage job) internal view returns (uint256) {
        return uint256(job.executionTimeout) + AUDIT_SEED_DELAY;
    }

    /// @dev A result is audited with chance `auditBps` / 10000, drawn from the hash of its seed
    ///      block, or for sure when that hash is gone: nobody gains by waiting the draw out.
    function _auditState(uint256 jobId, Job storage job) internal view returns (AuditState) {
        uint256 auditBps = job.auditBps;
        if (auditBps == 0 || job.status != JobStatus.ResultSubmitted || job.executionTimeout == DRAW_PASSED) {
            return AuditState.None;
        }
        uint256 seedBlock = _auditSeedBlock(job);
        if (block.number <= seedBlock) return AuditState.Pending;
        bytes32 seed = _blockHash(seedBlock);
        if (seed == bytes32(0)) return AuditState.Due;
        uint256 draw = uint256(keccak256(abi.encode(seed, block.chainid, address(this), jobId)));
        return draw % BPS < auditBps ? AuditState.Due : AuditState.Clear;
    }

    /// @dev The hash of past block `number`: from the EVM for BLOCKHASH_WINDOW blocks, then from
    ///      the EIP-2935 history contract where it has code (a chain before Prague has none, and
    ///      one that has it without the fork serves zeros) for HISTORY_WINDOW; zero once gone.
    function _blockHash(uint256 number) internal view returns (bytes32 hash) {
        uint256 age = block.number - number;
        if (age <= BLOCKHASH_WINDOW) return blockhash(number);
        if (age > HISTORY_WINDOW || BLOCK_HISTORY.code.length == 0) return bytes32(0);
        (bool ok, bytes memory data) = BLOCK_HISTORY.staticcall(abi.encode(number));
        if (ok && data.length == 32) hash = abi.decode(data, (bytes32));
    }

    /// @dev A job that may be audited settles only once the draw passed it over.
    function _requireNoAudit(uint256 jobId, Job storage job) internal view {
        if (job.auditBps == 0) return;
        AuditState state = _auditState(jobId, job);
        if (state == AuditState.Pending) revert ILilypad.AuditPending(jobId, _auditSeedBlock(job));
        if (state == AuditState.Due) revert ILilypad.AuditRequired(jobId);
    }

    // ================================================================== money

    /// @dev What the client paid for the audit rate it bought on top of the `terms`' (0 for
    ///      none), escrowed until the job ends.
    function _auditPremium(Job storage job, Terms storage terms) internal view returns (uint256) {
        uint256 auditBps = job.auditBps;
        if (auditBps == 0) return 0;
        return _premium(auditBps - terms.auditBps, terms.mediationFee);
    }

    /// @dev `extraAuditBps` x `mediationFee` / 10000, rounded up.
    function _premium(uint256 extraAuditBps, uint256 mediationFee) internal pure returns (uint256) {
        return (extraAuditBps * mediationFee + BPS - 1) / BPS;
    }

    /// @dev Takes `amount` of `provider`'s locked collateral (the caller credits it) and counts
    ///      it in its record.
    function _slash(address provider, uint256 amount) internal returns (Reputation storage record) {
        // forge-lint: disable-next-line(unsafe-typecast)
        _accounts[provider].locked -= uint120(amount);
        record = _reputations[provider];
        // forge-lint: disable-next-line(unsafe-typecast)
        record.slashed += uint128(amount); // below 2^116 (see Account)
    }

    /// @dev Provider paid price minus fee and tax, treasury the fee, audit fund the tax (a
    ///      deterministic job's) and the premium of the client's extra audit rate, client
    ///      refunded maxPrice - price, results collateral freed. A
    ///      ProviderError result earns nothing: the price counts as zero, so the client gets all
    ///      of maxPrice back and no fee or tax is taken. Credits only: nothing leaves here.
    function _settle(uint256 jobId, Job storage job) internal {
        job.status = JobStatus.Settled;
        address provider = job.provider;
        uint256 price = job.providerError ? 0 : job.price;
        Terms storage terms = _terms[job.terms];
        uint256 fee = price * terms.feeBps / BPS;
        uint256 refund = job.maxPrice - price;
        uint256 payout = price - fee;
        if (job.deterministic) {
            uint256 tax = price * terms.taxBps / BPS; // fee + tax <= 60% of the price
            if (tax != 0) {
                payout -= tax;
                emit ILilypad.AuditTaxPaid(jobId, tax);
            }
            uint256 toFund = tax + _auditPremium(job, terms);
            // forge-lint: disable-next-line(unsafe-typecast)
            if (toFund != 0) _auditFund += uint128(toFund); // shares of a uint96 price and fee
        }
        uint256 collateral = _resultsCollateral(job);
        Account storage account = _accounts[provider];
        // forge-lint: disable-next-line(unsafe-typecast)
        account.locked -= uint120(collateral);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free += uint120(collateral);
        if (payout != 0) _balances[provider] += payout;
        if (fee != 0) _balances[_treasury] += fee;
        if (refund != 0) _balances[job.client] += refund;
        emit ILilypad.JobSettled(jobId, provider, payout, fee, refund);
    }

    // ================================================================== callbacks

    function _callbackEmpty(uint256 jobId, address client, uint256 gasLimit, Outcome status) internal {
        _callback(
            jobId, client, gasLimit, JobResult({status: status, resultCid: "", output: "", exitCode: 0, error: ""})
        );
    }

    /// @dev Calls `client.onJobResult` with exactly `gasLimit` gas and copies no return data, so a
    ///      callback that reverts, loops or returns a huge payload only changes which event is
    ///      emitted. The caller must leave enough gas for the callee to get all of `gasLimit` after
    ///      the 63/64 rule (EIP-150), or the whole call reverts: a relayer cannot starve it.
    function _callback(uint256 jobId, address client, uint256 gasLimit, JobResult memory result) internal {
        if (!_tryCallback(jobId, client, gasLimit, result)) {
            _failedCallbacks[jobId] = FailedCallback({status: result.status, redelivered: false});
        }
    }

    /// @dev The call itself (see {_callback}); false when it failed.
    function _tryCallback(uint256 jobId, address client, uint256 gasLimit, JobResult memory result)
        internal
        returns (bool ok)
    {
        if (gasLimit == 0) {
            emit ILilypad.CallbackSkipped(jobId, result.status);
            return true;
        }
        bytes memory payload = abi.encodeCall(ILilypadCallback.onJobResult, (jobId, result));
        uint256 required = gasLimit + gasLimit / 63 + CALLBACK_GAS_RESERVE;
        if (gasleft() < required) revert ILilypad.InsufficientGasForCallback(gasleft(), required);
        assembly ("memory-safe") {
            ok := call(gasLimit, client, 0, add(payload, 0x20), mload(payload), 0, 0)
        }
        if (ok) emit ILilypad.CallbackDelivered(jobId, result.status);
        else emit ILilypad.CallbackFailed(jobId, result.status);
    }
}
