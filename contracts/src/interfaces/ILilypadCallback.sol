// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {JobResult} from "./ILilypad.sol";

/// @title ILilypadCallback
/// @notice What a client contract implements to hear about its jobs. Lilypad calls it with exactly
///         the `callbackGasLimit` the request asked for; a revert or out-of-gas is recorded in a
///         `CallbackFailed` event and changes nothing else. Inherit {LilypadClient} rather than
///         implementing this directly: it checks that only Lilypad calls.
interface ILilypadCallback {
    /// @notice Lilypad reports the outcome of `jobId`.
    function onJobResult(uint256 jobId, JobResult calldata result) external;
}
