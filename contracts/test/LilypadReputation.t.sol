// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {Outcome, Reputation} from "../src/interfaces/ILilypad.sol";

/// @notice A provider's on-chain record changes exactly as its jobs go: one test per outcome.
contract LilypadReputationTest is LilypadTestBase {
    bytes32 internal honest = _commitment(_result(0), OUTPUT);
    bytes32 internal other = keccak256("a different result");

    function _record() internal view returns (Reputation memory) {
        return lilypad.reputationOf(provider);
    }

    /// @dev The record as a list, for comparing all of it at once.
    function _counts(Reputation memory r) internal pure returns (uint256[8] memory c) {
        c = [
            uint256(r.succeeded), r.failed, r.providerErrors, r.timedOut, r.mediated, r.upheld, r.overturned, r.slashed
        ];
    }

    function _expect(uint256[8] memory wanted) internal view {
        uint256[8] memory got = _counts(_record());
        for (uint256 i; i < 8; ++i) {
            assertEq(got[i], wanted[i], string.concat("field ", vm.toString(i)));
        }
    }

    function _challengedAndVoted(bytes32 vote) internal returns (uint256 jobId) {
        jobId = _jobWithResult();
        client.challenge(jobId);
        address[] memory chosen = _draw(jobId);
        _vote(jobId, chosen, _votes(vote, vote, vote));
    }

    function test_Reputation_StartsEmpty() public view {
        _expect([uint256(0), 0, 0, 0, 0, 0, 0, 0]);
    }

    function test_Reputation_ASucceededResultCounts() public {
        uint256 jobId = _jobWithOutcome(Outcome.Succeeded);
        _expect([uint256(1), 0, 0, 0, 0, 0, 0, 0]);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        _expect([uint256(1), 0, 0, 0, 0, 0, 0, 0]);
    }

    function test_Reputation_AJobFailedResultCounts() public {
        _jobWithOutcome(Outcome.JobFailed);
        _expect([uint256(0), 1, 0, 0, 0, 0, 0, 0]);
    }

    function test_Reputation_AProviderErrorCounts() public {
        _jobWithOutcome(Outcome.ProviderError);
        _expect([uint256(0), 0, 1, 0, 0, 0, 0, 0]);
    }

    function test_Reputation_ATimeoutCountsAndItsSlashedCollateral() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        lilypad.timeout(jobId);
        // the timeout collateral is 1x the price
        _expect([uint256(0), 0, 0, 1, 0, 0, 0, PRICE]);
    }

    function test_Reputation_AnUpheldChallengeCounts() public {
        _challengedAndVoted(honest);
        _expect([uint256(1), 0, 0, 0, 1, 1, 0, 0]);
    }

    function test_Reputation_AnOverturnedChallengeCountsAndItsSlashedCollateral() public {
        uint256 jobId = _challengedAndVoted(other);
        uint256 slashed = PRICE * lilypad.getJob(jobId).resultsCollateralBps / 10_000;
        _expect([uint256(1), 0, 0, 0, 1, 0, 1, slashed]);
    }

    function test_Reputation_AStaleChallengeClosedInItsFavourCountsAsUpheld() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.warp(lilypad.getJob(jobId).deadline + lilypad.STALE_CHALLENGE_GRACE());
        lilypad.resolveStaleChallenge(jobId);
        _expect([uint256(1), 0, 0, 0, 1, 1, 0, 0]);
    }

    function test_Reputation_IsPerProvider() public {
        _jobWithOutcome(Outcome.Succeeded);
        Reputation memory stranger = lilypad.reputationOf(alice);
        assertEq(stranger.succeeded, 0);
    }
}
