// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ILilypad, InputParam, JobRequest, Params, Reputation} from "../interfaces/ILilypad.sol";

/// @title LilypadChecks
/// @notice Validation of job requests and protocol parameters, and the limits they enforce. Every
///         failure reverts with the named {ILilypad} error. {checkParams} and {checkRecord} are
///         public: Lilypad calls them with DELEGATECALL (the library is linked at deployment),
///         which keeps the admin-only checks and those only some requests ask for out of
///         Lilypad's 24 KiB; the rest is internal (inlined into Lilypad).
library LilypadChecks {
    // ------------------------------------------------------------------ request limits
    uint256 internal constant MAX_MODULE_BYTES = 128;
    uint256 internal constant MAX_VERSION_BYTES = 64;
    uint256 internal constant MAX_INPUTS = 32;
    uint256 internal constant MAX_INPUT_KEY_BYTES = 64;
    uint256 internal constant MAX_INPUT_VALUE_BYTES = 4_096;
    uint256 internal constant MAX_TOTAL_INPUT_BYTES = 16_384;
    uint256 internal constant MAX_PROVIDERS = 16;

    // ------------------------------------------------------------------ parameter caps
    uint256 internal constant MAX_PROTOCOL_FEE_BPS = 1_000;
    uint256 internal constant MAX_MEDIATOR_SHARE_BPS = 5_000;
    uint256 internal constant MAX_CALLBACK_GAS = 5_000_000;
    uint256 internal constant MAX_OUTPUT_BYTES = 32_768;
    uint256 internal constant MAX_TIMEOUT = 365 days;
    uint256 internal constant MAX_COLLATERAL_BPS = 1_000_000;
    uint256 internal constant MAX_TAX_BPS = 5_000;
    uint256 internal constant MAX_JACKPOT_BPS = 5_000;
    uint256 internal constant BPS = 10_000;

    /// @notice The least results collateral multiplier (basis points of the price) that makes
    ///         cheating unprofitable when results are audited with chance `auditBps` / 10000:
    ///         (1/p - 1) x 10000, rounded up; 0 when audits are off (nothing deters then).
    function auditCollateralFloorBps(uint256 auditBps) internal pure returns (uint256) {
        if (auditBps == 0) return 0;
        return (BPS * (BPS - auditBps) + auditBps - 1) / auditBps;
    }

    /// @notice The commitment a result is judged by: what the contract stores for the job and what
    ///         mediators vote, `keccak256(abi.encode(uint8 status, int32 exitCode,
    ///         keccak256(resultCid), outputHash))` with `outputHash = keccak256(inlineOutput)`. It
    ///         covers everything a client acts on (the outcome, the exit code, the CID and the
    ///         inline output) and leaves out the job id (a mediator's re-run is judged on what it
    ///         produced) and the error text (its wording is the provider's, not the job's).
    function resultCommitment(uint8 status, int32 exitCode, bytes memory resultCid, bytes32 outputHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(status, exitCode, keccak256(resultCid), outputHash));
    }

    /// @notice Reverts unless `request` is well formed and its terms fit the parameters `p`.
    function checkRequest(JobRequest calldata request, Params memory p) internal pure {
        _checkStrings(request);
        _checkInputs(request.inputs);
        _checkTerms(request, p);
    }

    /// @notice Reverts with InvalidParam(name) unless every parameter is within its cap and every
    ///         min <= max.
    function checkParams(Params memory p) public pure {
        if (p.maxCallbackGas > MAX_CALLBACK_GAS) revert ILilypad.InvalidParam("maxCallbackGas");
        if (p.maxOutputBytes > MAX_OUTPUT_BYTES) revert ILilypad.InvalidParam("maxOutputBytes");
        if (p.minMatchTimeout == 0 || p.minMatchTimeout > p.maxMatchTimeout || p.maxMatchTimeout > MAX_TIMEOUT) {
            revert ILilypad.InvalidParam("matchTimeout");
        }
        if (
            p.minExecutionTimeout == 0 || p.minExecutionTimeout > p.maxExecutionTimeout
                || p.maxExecutionTimeout > MAX_TIMEOUT
        ) revert ILilypad.InvalidParam("executionTimeout");
        if (p.minChallengeWindow > p.maxChallengeWindow || p.maxChallengeWindow > MAX_TIMEOUT) {
            revert ILilypad.InvalidParam("challengeWindow");
        }
        if (p.minResultsCollateralBps > p.maxResultsCollateralBps || p.maxResultsCollateralBps > MAX_COLLATERAL_BPS) {
            revert ILilypad.InvalidParam("resultsCollateralBps");
        }
        if (p.minTimeoutCollateralBps > MAX_COLLATERAL_BPS) revert ILilypad.InvalidParam("minTimeoutCollateralBps");
        if (p.protocolFeeBps > MAX_PROTOCOL_FEE_BPS) revert ILilypad.InvalidParam("protocolFeeBps");
        if (p.mediatorShareBps > MAX_MEDIATOR_SHARE_BPS) revert ILilypad.InvalidParam("mediatorShareBps");
        // A challenge keeps its fee in 80 bits (beside the mediation and the share in one slot).
        if (p.mediationFee > type(uint80).max) revert ILilypad.InvalidParam("mediationFee");
        if (p.mediationTimeout == 0 || p.mediationTimeout > MAX_TIMEOUT) {
            revert ILilypad.InvalidParam("mediationTimeout");
        }
        // an audit rate whose collateral bound no request may reach would refuse every
        // deterministic request
        if (p.auditBps > BPS || auditCollateralFloorBps(p.auditBps) > p.maxResultsCollateralBps) {
            revert ILilypad.InvalidParam("auditBps");
        }
        if (p.taxBps > MAX_TAX_BPS) revert ILilypad.InvalidParam("taxBps");
        if (p.jackpotBps > MAX_JACKPOT_BPS) revert ILilypad.InvalidParam("jackpotBps");
    }

    function _checkStrings(JobRequest calldata request) private pure {
        uint256 len = bytes(request.module).length;
        if (len == 0) revert ILilypad.EmptyModule();
        if (len > MAX_MODULE_BYTES) revert ILilypad.ModuleTooLong(len, MAX_MODULE_BYTES);
        len = bytes(request.version).length;
        if (len == 0) revert ILilypad.EmptyVersion();
        if (len > MAX_VERSION_BYTES) revert ILilypad.VersionTooLong(len, MAX_VERSION_BYTES);
        if (request.deterministic && request.moduleId == bytes32(0)) revert ILilypad.UnpinnedDeterministicModule();
    }

    /// @dev Keys: 1-64 bytes of [A-Za-z0-9_.-], unique. Values: at most 4096 bytes each. Keys and
    ///      values together: at most 16 KiB. Values are not checked for UTF-8 on-chain.
    function _checkInputs(InputParam[] calldata inputs) private pure {
        uint256 count = inputs.length;
        if (count > MAX_INPUTS) revert ILilypad.TooManyInputs(count, MAX_INPUTS);
        bytes32[] memory keyHashes = new bytes32[](count);
        uint256 total;
        for (uint256 i; i < count; ++i) {
            bytes calldata key = bytes(inputs[i].key);
            uint256 keyLen = key.length;
            if (keyLen == 0) revert ILilypad.EmptyInputKey(i);
            if (keyLen > MAX_INPUT_KEY_BYTES) revert ILilypad.InputKeyTooLong(i, keyLen, MAX_INPUT_KEY_BYTES);
            for (uint256 j; j < keyLen; ++j) {
                if (!_isKeyChar(key[j])) revert ILilypad.InvalidInputKey(i, j);
            }
            uint256 valueLen = bytes(inputs[i].value).length;
            if (valueLen > MAX_INPUT_VALUE_BYTES) revert ILilypad.InputTooLarge(i, valueLen, MAX_INPUT_VALUE_BYTES);
            total += keyLen + valueLen;
            bytes32 keyHash = keccak256(key);
            for (uint256 j; j < i; ++j) {
                if (keyHashes[j] == keyHash) revert ILilypad.DuplicateInputKey(i);
            }
            keyHashes[i] = keyHash;
        }
        if (total > MAX_TOTAL_INPUT_BYTES) revert ILilypad.InputsTooLarge(total, MAX_TOTAL_INPUT_BYTES);
    }

    function _isKeyChar(bytes1 c) private pure returns (bool) {
        return
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
                || c == ".";
    }

    function _checkTerms(JobRequest calldata r, Params memory p) private pure {
        if (r.maxPrice > type(uint96).max) revert ILilypad.AmountTooLarge(r.maxPrice, type(uint96).max);
        if (r.callbackGasLimit > p.maxCallbackGas) {
            revert ILilypad.CallbackGasTooHigh(r.callbackGasLimit, p.maxCallbackGas);
        }
        if (r.maxOutputBytes > p.maxOutputBytes) {
            revert ILilypad.MaxOutputBytesTooHigh(r.maxOutputBytes, p.maxOutputBytes);
        }
        if (r.matchTimeout < p.minMatchTimeout || r.matchTimeout > p.maxMatchTimeout) {
            revert ILilypad.MatchTimeoutOutOfRange(r.matchTimeout, p.minMatchTimeout, p.maxMatchTimeout);
        }
        if (r.executionTimeout < p.minExecutionTimeout || r.executionTimeout > p.maxExecutionTimeout) {
            revert ILilypad.ExecutionTimeoutOutOfRange(r.executionTimeout, p.minExecutionTimeout, p.maxExecutionTimeout);
        }
        if (r.challengeWindow < p.minChallengeWindow || r.challengeWindow > p.maxChallengeWindow) {
            revert ILilypad.ChallengeWindowOutOfRange(r.challengeWindow, p.minChallengeWindow, p.maxChallengeWindow);
        }
        uint32 m = r.resultsCollateralMultiplierBps;
        if (m < p.minResultsCollateralBps || m > p.maxResultsCollateralBps) {
            revert ILilypad.ResultsCollateralMultiplierOutOfRange(
                m, p.minResultsCollateralBps, p.maxResultsCollateralBps
            );
        }
        uint256 extra = r.extraAuditBps;
        if (r.deterministic) {
            uint256 auditBps = p.auditBps + extra;
            if (auditBps > BPS) revert ILilypad.ExtraAuditOutOfRange(extra, BPS - p.auditBps);
            uint256 floor = auditCollateralFloorBps(auditBps);
            if (m < floor) revert ILilypad.CollateralBelowAuditBound(m, floor);
        } else if (extra != 0) {
            revert ILilypad.ExtraAuditOutOfRange(extra, 0);
        }
        if (r.providers.length > MAX_PROVIDERS) revert ILilypad.TooManyProviders(r.providers.length, MAX_PROVIDERS);
        if (r.minReliabilityBps > BPS) revert ILilypad.ReliabilityOutOfRange(r.minReliabilityBps);
    }

    /// @notice Reverts with RecordBelowMinimum unless `record` has at least `minDelivered`
    ///         results delivered (Succeeded + JobFailed), and at least `minReliabilityBps` of its
    ///         deals (results + timeouts) ended without a fault (ProviderError + timed out +
    ///         overturned). No deal meets any reliability.
    function checkRecord(Reputation storage record, uint256 minDelivered, uint256 minReliabilityBps, address provider)
        public
        view
    {
        uint256 delivered = uint256(record.succeeded) + record.failed;
        uint256 deals = delivered + record.providerErrors + record.timedOut;
        uint256 faults = uint256(record.providerErrors) + record.timedOut + record.overturned;
        uint256 reliability = deals == 0 ? BPS : faults >= deals ? 0 : (deals - faults) * BPS / deals;
        if (delivered < minDelivered || reliability < minReliabilityBps) {
            revert ILilypad.RecordBelowMinimum(provider, delivered, reliability);
        }
    }
}
