// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {ILilypad, InputParam, JobRequest, JobResult} from "./interfaces/ILilypad.sol";
import {ILilypadCallback} from "./interfaces/ILilypadCallback.sol";

/// @title LilypadClient
/// @notice Inherit this to run Lilypad jobs from a contract, the way FunctionsClient works for
///         Chainlink Functions: build a request with {_newRequest} and {_withInput}, send it with
///         {_sendRequest} (it approves and escrows the max price from this contract's own token
///         balance), and override {_onJobResult} to receive the outcome. Only the Lilypad contract
///         can call {onJobResult}.
/// @dev Refunds and slashed collateral are credited to this contract inside Lilypad; take them out
///      with {_withdrawFromLilypad}. Lilypad blocks re-entry, so a job cannot be requested from
///      inside {_onJobResult}: request the next one in a later transaction.
abstract contract LilypadClient is ILilypadCallback {
    using SafeERC20 for IERC20;

    /// @notice The Lilypad contract this client talks to.
    ILilypad public immutable lilypad;
    /// @notice The token Lilypad is paid in.
    IERC20 public immutable lilypadToken;

    /// @notice {onJobResult} was called by someone other than Lilypad.
    error OnlyLilypad(address caller);

    /// @param lilypad_ the Lilypad contract on this chain
    constructor(address lilypad_) {
        lilypad = ILilypad(lilypad_);
        lilypadToken = ILilypad(lilypad_).token();
    }

    /// @inheritdoc ILilypadCallback
    /// @dev Reverts with OnlyLilypad for any other caller, then hands over to {_onJobResult}.
    function onJobResult(uint256 jobId, JobResult calldata result) external {
        if (msg.sender != address(lilypad)) revert OnlyLilypad(msg.sender);
        _onJobResult(jobId, result);
    }

    /// @notice Override to act on a job's outcome. Runs with the request's callbackGasLimit; if it
    ///         reverts or runs out of gas the outcome is only in Lilypad's events and storage.
    function _onJobResult(uint256 jobId, JobResult calldata result) internal virtual;

    /// @notice Escrows `request.maxPrice` (and the premium of its extra audit rate, if any) from
    ///         this contract's tokens and requests the job.
    function _sendRequest(JobRequest memory request) internal returns (uint256 jobId) {
        uint256 premium = request.extraAuditBps == 0 ? 0 : lilypad.auditPremium(request.extraAuditBps);
        lilypadToken.forceApprove(address(lilypad), request.maxPrice + premium);
        jobId = lilypad.runJob(request);
    }

    /// @notice Challenges a result within its window, paying the mediation fee from this contract.
    function _challenge(uint256 jobId) internal {
        lilypadToken.forceApprove(address(lilypad), lilypad.params().mediationFee);
        lilypad.challenge(jobId);
    }

    /// @notice Accepts a result before its challenge window closes, so the job settles now.
    function _acceptResult(uint256 jobId) internal {
        lilypad.acceptResult(jobId);
    }

    /// @notice Moves everything Lilypad credited to this contract into this contract's balance.
    /// @return amount what was withdrawn (0 if nothing was owed)
    function _withdrawFromLilypad() internal returns (uint256 amount) {
        if (lilypad.balanceOf(address(this)) == 0) return 0;
        amount = lilypad.withdraw();
    }

    /// @notice A request with no inputs and defaults that fit Lilypad's default parameters: match
    ///         and execution timeouts of 10 minutes, 300k callback gas, 256 bytes of inline output,
    ///         results collateral of 2x the price and a 1 hour challenge window. The gas is enough
    ///         for a callback that stores the whole inline output and the CID (measured in
    ///         test/Docs.t.sol; about 275k); raise both together, by the table in docs/solidity.md.
    ///         The module is unpinned (`moduleId` zero, not deterministic, so the result cannot be
    ///         challenged) until {_pinModule} pins it. Change any field before sending.
    function _newRequest(string memory module, string memory version, uint256 maxPrice)
        internal
        pure
        returns (JobRequest memory request)
    {
        request.module = module;
        request.version = version;
        request.inputs = new InputParam[](0);
        request.maxPrice = maxPrice;
        request.matchTimeout = 10 minutes;
        request.executionTimeout = 10 minutes;
        request.callbackGasLimit = 300_000;
        request.maxOutputBytes = 256;
        request.resultsCollateralMultiplierBps = 20_000;
        request.challengeWindow = 1 hours;
    }

    /// @notice Returns `request` pinned to the module definition whose id is `moduleId` (print it
    ///         with `lilypad module id <name> <version>`; keep it as a constant) and marked
    ///         `deterministic` as that definition says. Only a deterministic request can be
    ///         challenged; a provider or mediator whose definition has another id refuses it.
    function _pinModule(JobRequest memory request, bytes32 moduleId, bool deterministic)
        internal
        pure
        returns (JobRequest memory)
    {
        request.moduleId = moduleId;
        request.deterministic = deterministic;
        return request;
    }

    /// @notice Returns `request` restricted to the providers in `accepted` (at most 16), each of
    ///         which must also have delivered at least `minDelivered` results with at least
    ///         `minReliabilityBps` of its deals ended without its fault (0, 0: any record). A deal
    ///         with any other provider is refused on-chain, and the solver offers only these.
    function _onlyProviders(
        JobRequest memory request,
        address[] memory accepted,
        uint32 minDelivered,
        uint16 minReliabilityBps
    ) internal pure returns (JobRequest memory) {
        request.providers = accepted;
        request.minDelivered = minDelivered;
        request.minReliabilityBps = minReliabilityBps;
        return request;
    }

    /// @notice Returns `request` with an audit rate of `extraAuditBps` bought on top of the
    ///         protocol's: the job is more likely audited, so its results collateral may be lower
    ///         (the floor falls with the rate), and {_sendRequest} pays its premium.
    function _withExtraAudits(JobRequest memory request, uint16 extraAuditBps)
        internal
        pure
        returns (JobRequest memory)
    {
        request.extraAuditBps = extraAuditBps;
        return request;
    }

    /// @notice Returns `request` with one more input appended.
    function _withInput(JobRequest memory request, string memory key, string memory value)
        internal
        pure
        returns (JobRequest memory)
    {
        uint256 n = request.inputs.length;
        InputParam[] memory inputs = new InputParam[](n + 1);
        for (uint256 i; i < n; ++i) {
            inputs[i] = request.inputs[i];
        }
        inputs[n] = InputParam({key: key, value: value});
        request.inputs = inputs;
        return request;
    }
}
