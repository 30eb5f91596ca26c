// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {LilypadClient} from "../LilypadClient.sol";
import {JobRequest, JobResult, Outcome} from "../interfaces/ILilypad.sol";

/// @title Sha256Oracle
/// @notice Example oracle: asks a module to compute sha256 of some text off-chain and stores the
///         digest it prints (64 hex digits, optionally "0x"-prefixed, surrounding whitespace
///         ignored; or exactly 32 raw bytes) as a bytes32 the contract can use.
/// @dev The pattern for any "compute a small answer" oracle: a small maxOutputBytes, a small
///      callbackGasLimit, and a parser that refuses malformed output instead of storing it.
contract Sha256Oracle is LilypadClient, Ownable {
    using SafeERC20 for IERC20;

    enum AnswerState {
        None,
        Pending,
        Answered,
        Malformed,
        Failed
    }

    struct Answer {
        AnswerState state;
        Outcome outcome;
        bytes32 digest;
    }

    /// @notice The module and version the jobs run (as named in job-modules/).
    string public module;
    /// @notice The module's version.
    string public version;
    /// @notice The id of the module definition the jobs run (`lilypad module id sha256 1.0.0`); zero
    ///         until the owner sets it: jobs are then unpinned and cannot be challenged. The
    ///         module is deterministic, so a pinned job is marked so.
    bytes32 public moduleId;
    /// @notice What each job escrows.
    uint256 public maxPrice;
    /// @notice Each job's state, outcome and digest.
    mapping(uint256 jobId => Answer) public answers;

    /// @notice {digestOf} was asked for a job without a well-formed answer.
    error NoDigest(uint256 jobId, AnswerState state);

    event DigestRequested(uint256 indexed jobId, address indexed requester, string data);
    event DigestAnswered(uint256 indexed jobId, AnswerState state, bytes32 digest);

    /// @param lilypad_ the Lilypad contract
    /// @param owner_ who may sweep refunds and change the price
    /// @param module_ the sha256 module's name
    /// @param version_ its version
    /// @param maxPrice_ what each job escrows
    constructor(address lilypad_, address owner_, string memory module_, string memory version_, uint256 maxPrice_)
        LilypadClient(lilypad_)
        Ownable(owner_)
    {
        module = module_;
        version = version_;
        maxPrice = maxPrice_;
    }

    /// @notice Asks for sha256(`data`) (the module input `text`); the caller pays `maxPrice`
    ///         (approve this contract first).
    function requestDigest(string calldata data) external returns (uint256 jobId) {
        lilypadToken.safeTransferFrom(msg.sender, address(this), maxPrice);
        JobRequest memory request = _newRequest(module, version, maxPrice);
        request = _pinModule(request, moduleId, moduleId != bytes32(0));
        request = _withInput(request, "text", data);
        request.maxOutputBytes = 128;
        request.callbackGasLimit = 100_000;
        jobId = _sendRequest(request);
        answers[jobId].state = AnswerState.Pending;
        emit DigestRequested(jobId, msg.sender, data);
    }

    /// @notice The digest for a job; reverts unless the job answered with a well-formed digest.
    function digestOf(uint256 jobId) external view returns (bytes32) {
        Answer storage a = answers[jobId];
        if (a.state != AnswerState.Answered) revert NoDigest(jobId, a.state);
        return a.digest;
    }

    /// @notice Pins the module definition later jobs run, by id; zero unpins it (owner only).
    function setModuleId(bytes32 moduleId_) external onlyOwner {
        moduleId = moduleId_;
    }

    /// @notice Changes what each job escrows (owner only).
    function setMaxPrice(uint256 maxPrice_) external onlyOwner {
        maxPrice = maxPrice_;
    }

    /// @notice Withdraws refunds from Lilypad and sends this contract's tokens to `to` (owner only).
    function sweep(address to) external onlyOwner returns (uint256 amount) {
        _withdrawFromLilypad();
        amount = lilypadToken.balanceOf(address(this));
        lilypadToken.safeTransfer(to, amount);
    }

    function _onJobResult(uint256 jobId, JobResult calldata result) internal override {
        Answer storage a = answers[jobId];
        a.outcome = result.status;
        if (result.status == Outcome.Succeeded) {
            (bool ok, bytes32 digest) = parseDigest(result.output);
            a.state = ok ? AnswerState.Answered : AnswerState.Malformed;
            a.digest = digest;
        } else if (result.status == Outcome.OverturnedByMediation) {
            // The mediators found a different result: the stored digest is not to be trusted.
            a.state = AnswerState.Failed;
            a.digest = bytes32(0);
        } else if (result.status != Outcome.UpheldByMediation) {
            a.state = AnswerState.Failed;
        }
        emit DigestAnswered(jobId, a.state, a.digest);
    }

    /// @notice Parses 64 hex digits (optional "0x", surrounding whitespace ignored) or 32 raw bytes.
    function parseDigest(bytes calldata out) public pure returns (bool ok, bytes32 digest) {
        uint256 start;
        uint256 end = out.length;
        while (start < end && _isSpace(out[start])) ++start;
        while (end > start && _isSpace(out[end - 1])) --end;
        if (end - start >= 2 && out[start] == "0" && (out[start + 1] == "x" || out[start + 1] == "X")) start += 2;
        if (end - start == 64) {
            uint256 value;
            for (uint256 i = start; i < end; ++i) {
                uint8 nibble = _hexValue(out[i]);
                if (nibble == 0xff) return (false, bytes32(0));
                value = (value << 4) | nibble;
            }
            return (true, bytes32(value));
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        if (out.length == 32) return (true, bytes32(out)); // exactly 32 bytes: nothing truncated
        return (false, bytes32(0));
    }

    function _isSpace(bytes1 c) private pure returns (bool) {
        return c == " " || c == "\n" || c == "\r" || c == "\t";
    }

    function _hexValue(bytes1 c) private pure returns (uint8) {
        uint8 b = uint8(c);
        if (b >= 48 && b <= 57) return b - 48;
        if (b >= 97 && b <= 102) return b - 87;
        if (b >= 65 && b <= 70) return b - 55;
        return 0xff;
    }
}
