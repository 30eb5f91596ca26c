// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MediationCase} from "./ILilypad.sol";

/// @title IMediation
/// @notice A pluggable way to decide challenges. Lilypad calls {startMediation} when a client
///         challenges a result; the mediation later calls `Lilypad.resolveChallenge(jobId,
///         providerCorrect, rewardedMediators)`. Only the mediation contract recorded for that
///         challenge may resolve it. If it never does, anyone may close the challenge on Lilypad
///         after `deadline` plus a grace period (the result stands and the client's fee is refunded).
interface IMediation {
    /// @notice Opens mediation for `jobId`. Must revert if the mediation cannot take the case
    ///         (then the challenge itself reverts and the job can still be settled normally).
    function startMediation(uint256 jobId, MediationCase calldata mediationCase) external;
}
