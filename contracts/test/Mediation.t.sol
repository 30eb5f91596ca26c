// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {ConsortiumMediation} from "../src/mediation/ConsortiumMediation.sol";
import {IMediation} from "../src/interfaces/IMediation.sol";
import {
    ILilypad,
    JobStatus,
    Outcome,
    MediationCase,
    Challenge,
    Params,
    ResultData
} from "../src/interfaces/ILilypad.sol";

/// @dev A mediation that takes every case and never answers.
contract SilentMediation is IMediation {
    uint256 public started;

    function startMediation(uint256, MediationCase calldata) external {
        ++started;
    }
}

contract MediationTest is LilypadTestBase {
    /// @dev What an honest re-run of the job commits to: the provider's result, as submitted.
    bytes32 internal providerHash = _commitment(_result(0), OUTPUT);
    bytes32 internal otherHash = keccak256("bafyother");

    function _fee(uint256 price) internal pure returns (uint256) {
        return price * FEE_BPS / 10_000;
    }

    function _challenged() internal returns (uint256 jobId, address[] memory chosen) {
        jobId = _jobWithResult();
        client.challenge(jobId);
        chosen = consortium.mediatorsOf(jobId);
    }

    function _vote(uint256 jobId, address m, bytes32 h) internal {
        vm.prank(m);
        consortium.submitVerdict(jobId, h);
    }

    /// @dev A job whose provider submitted `r` (its job id filled in) with inline output `output`,
    ///      properly signed, then challenged by the client.
    function _challengedWith(ResultData memory r, bytes memory output)
        internal
        returns (uint256 jobId, address[] memory chosen)
    {
        jobId = _requestJob();
        _agree(jobId);
        r.jobId = jobId;
        vm.prank(relayer);
        lilypad.submitResult(r, output, _signResult(providerKey, r, output));
        client.challenge(jobId);
        chosen = consortium.mediatorsOf(jobId);
    }

    /// @dev Two of the three drawn mediators vote `h`, the commitment of their own re-run.
    function _twoVote(uint256 jobId, address[] memory chosen, bytes32 h) internal {
        _vote(jobId, chosen[0], h);
        _vote(jobId, chosen[1], h);
    }

    // ------------------------------------------------------------------ what mediators compare

    function test_HonestResult_UpheldWhenMediatorsReproduceItsWholeCommitment() public {
        (uint256 jobId, address[] memory chosen) = _challengedWith(_result(0), OUTPUT);
        _twoVote(jobId, chosen, _commitment(_result(0), OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.UpheldByMediation));
    }

    function test_ForgedInlineOutputBesideTheRightCid_IsOverturned() public {
        (uint256 jobId, address[] memory chosen) = _challengedWith(_result(0), "forged answer");
        bytes32 rerun = _commitment(_result(0), OUTPUT);
        assertTrue(lilypad.getJob(jobId).resultHash != rerun, "a forged output commits to another result");
        _twoVote(jobId, chosen, rerun);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
    }

    function test_ForgedExitCode_IsOverturned() public {
        ResultData memory claimed = _result(0);
        claimed.status = uint8(Outcome.JobFailed);
        claimed.exitCode = 2;
        ResultData memory rerun = _result(0);
        rerun.status = uint8(Outcome.JobFailed);
        rerun.exitCode = 3;
        (uint256 jobId, address[] memory chosen) = _challengedWith(claimed, OUTPUT);
        _twoVote(jobId, chosen, _commitment(rerun, OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
    }

    function test_ForgedStatus_IsOverturned() public {
        // The provider claims it could not run the job; a re-run succeeds with the same CID and output.
        ResultData memory claimed = _result(0);
        claimed.status = uint8(Outcome.ProviderError);
        claimed.error = "out of memory";
        (uint256 jobId, address[] memory chosen) = _challengedWith(claimed, OUTPUT);
        _twoVote(jobId, chosen, _commitment(_result(0), OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
    }

    function test_ErrorTextIsNotPartOfTheCommitment() public {
        // Two honest runs that fail alike may word the error differently: the provider is upheld.
        ResultData memory claimed = _result(0);
        claimed.status = uint8(Outcome.ProviderError);
        claimed.error = "BadInput: message is required";
        ResultData memory rerun = claimed;
        rerun.error = "BadInput: the input message is missing";
        (uint256 jobId, address[] memory chosen) = _challengedWith(claimed, OUTPUT);
        _twoVote(jobId, chosen, _commitment(rerun, OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
    }

    // ------------------------------------------------------------------ challenge

    function test_Challenge_PullsFeeAndDrawsMediators() public {
        uint256 jobId = _jobWithResult();
        uint256 before = token.balanceOf(address(client));
        uint64 deadline = uint64(block.timestamp + 1 days);
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobChallenged(jobId, address(client), address(consortium), MEDIATION_FEE, deadline);
        client.challenge(jobId);

        assertEq(token.balanceOf(address(client)), before - MEDIATION_FEE);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Challenged));
        assertEq(lilypad.getJob(jobId).deadline, deadline);
        Challenge memory c = lilypad.getChallenge(jobId);
        assertEq(c.mediation, address(consortium));
        assertEq(c.fee, MEDIATION_FEE);

        address[] memory chosen = consortium.mediatorsOf(jobId);
        assertEq(chosen.length, 3);
        for (uint256 i; i < 3; ++i) {
            assertTrue(lilypad.isEligibleMediator(chosen[i]));
            for (uint256 j; j < i; ++j) {
                assertTrue(chosen[i] != chosen[j], "mediator drawn twice");
            }
        }
        (bytes32 ph, uint64 d, uint8 votes, uint8 k, bool resolved) = consortium.caseOf(jobId);
        assertEq(ph, providerHash);
        assertEq(d, deadline);
        assertEq(votes, 0);
        assertEq(k, 2);
        assertFalse(resolved);
        // the provider's collateral stays locked during mediation
        assertEq(_locked(provider), 2 * PRICE);
    }

    function test_RevertWhen_ChallengeByStranger() public {
        uint256 jobId = _jobWithResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotClient.selector, alice));
        vm.prank(alice);
        lilypad.challenge(jobId);
    }

    function test_RevertWhen_ChallengeAfterWindow() public {
        uint256 jobId = _jobWithResult();
        uint256 deadline = block.timestamp + CHALLENGE_WINDOW;
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlinePassed.selector, jobId, deadline));
        client.challenge(jobId);
    }

    function test_RevertWhen_ChallengeTwiceOrBeforeResult() public {
        uint256 jobId = _requestJob();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Requested));
        client.challenge(jobId);
        _agree(jobId);
        _submit(jobId);
        client.challenge(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Challenged));
        client.challenge(jobId);
    }

    function test_RevertWhen_NotEnoughMediators() public {
        uint256 jobId = _jobWithResult();
        for (uint256 i; i < 3; ++i) {
            vm.prank(mediators[i]);
            lilypad.deregisterMediator();
        }
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotEnoughMediators.selector, 2, 3));
        client.challenge(jobId);
        // nothing changed: the job can still settle normally
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
        client.accept(jobId);
    }

    function test_Draw_TakesEveryEligibleMediatorWhenPoolIsTight() public {
        // five mediators, two made ineligible (one withdrew collateral, one is the provider)
        vm.prank(mediators[0]);
        lilypad.withdrawCollateral(1);
        vm.startPrank(provider);
        lilypad.registerMediator("https://provider.example/");
        vm.stopPrank();
        vm.prank(mediators[1]);
        lilypad.deregisterMediator();
        // eligible and not a party: mediators 2, 3, 4 -> exactly N = 3
        for (uint256 round; round < 10; ++round) {
            vm.prevrandao(bytes32(round * 7919 + 1));
            (uint256 jobId, address[] memory chosen) = _challenged();
            for (uint256 i; i < 3; ++i) {
                assertTrue(chosen[i] != provider, "provider drawn as its own mediator");
                assertTrue(chosen[i] != mediators[0] && chosen[i] != mediators[1]);
            }
            jobId;
        }
    }

    function test_Draw_DependsOnPrevrandao() public {
        bool differs;
        address[] memory first;
        for (uint256 round; round < 8; ++round) {
            vm.prevrandao(bytes32(round + 1));
            (, address[] memory chosen) = _challenged();
            if (round == 0) first = chosen;
            else if (keccak256(abi.encode(chosen)) != keccak256(abi.encode(first))) differs = true;
        }
        assertTrue(differs);
    }

    // ------------------------------------------------------------------ verdicts

    function test_Upheld_ByQuorumPaysProviderAndVotingMediators() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen[0], providerHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Challenged));
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, true, false, 0, MEDIATION_FEE);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.UpheldByMediation);
        _vote(jobId, chosen[1], providerHash);

        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE);
        assertEq(lilypad.balanceOf(chosen[0]), MEDIATION_FEE / 2);
        assertEq(lilypad.balanceOf(chosen[1]), MEDIATION_FEE / 2);
        assertEq(lilypad.balanceOf(chosen[2]), 0);
        assertEq(_locked(provider), 0);
        // exactly two callbacks: the result, then the verdict
        Outcome[] memory seen = client.outcomes(jobId);
        assertEq(seen.length, 2);
        assertEq(uint8(seen[0]), uint8(Outcome.Succeeded));
        assertEq(uint8(seen[1]), uint8(Outcome.UpheldByMediation));

        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyResolved.selector, jobId));
        _vote(jobId, chosen[2], otherHash);
    }

    function test_Overturned_SlashesResultsCollateral() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        uint256 slashed = 2 * PRICE;
        uint256 share = slashed * 2_000 / 10_000;
        _vote(jobId, chosen[0], otherHash);
        _vote(jobId, chosen[1], providerHash);
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, false, false, MAX_PRICE + slashed - share, MEDIATION_FEE + share);
        _vote(jobId, chosen[2], otherHash);

        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(lilypad.balanceOf(provider), 0);
        assertEq(lilypad.balanceOf(treasury), 0);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + slashed - share);
        assertEq(lilypad.balanceOf(chosen[0]), (MEDIATION_FEE + share) / 2);
        assertEq(lilypad.balanceOf(chosen[2]), (MEDIATION_FEE + share) / 2);
        assertEq(lilypad.balanceOf(chosen[1]), 0);
        assertEq(_locked(provider), 0);
        assertEq(_free(provider), PROVIDER_COLLATERAL - slashed);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.OverturnedByMediation));
        assertEq(client.callbackCount(jobId), 2);
    }

    function test_SplitVotes_FallBackToUpheldOnceAllVoted() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen[0], otherHash);
        _vote(jobId, chosen[1], keccak256("third"));
        _vote(jobId, chosen[2], providerHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        // everyone who voted shares the fee; the remainder of the division goes to the first
        uint256 each = MEDIATION_FEE / 3;
        assertEq(lilypad.balanceOf(chosen[0]), MEDIATION_FEE - 2 * each);
        assertEq(lilypad.balanceOf(chosen[1]), each);
        assertEq(lilypad.balanceOf(chosen[2]), each);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.UpheldByMediation));
    }

    function test_Finalize_AfterDeadlineWithOneVote() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen[1], otherHash);
        (, uint64 deadline,,,) = consortium.caseOf(jobId);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.VotingOpen.selector, jobId, deadline));
        consortium.finalize(jobId);
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.VotingClosed.selector, jobId, deadline));
        _vote(jobId, chosen[0], otherHash);
        vm.prank(alice);
        consortium.finalize(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(chosen[1]), MEDIATION_FEE);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyResolved.selector, jobId));
        consortium.finalize(jobId);
    }

    function test_Finalize_NoVotesRefundsFee() public {
        (uint256 jobId,) = _challenged();
        vm.warp(block.timestamp + 1 days);
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, true, false, MEDIATION_FEE, 0);
        consortium.finalize(jobId);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE + MEDIATION_FEE);
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
    }

    function test_RevertWhen_VerdictFromWrongMediatorOrTwice() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        address outsider;
        for (uint256 i; i < mediators.length; ++i) {
            bool picked;
            for (uint256 j; j < 3; ++j) {
                if (chosen[j] == mediators[i]) picked = true;
            }
            if (!picked) outsider = mediators[i];
        }
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotSelected.selector, jobId, outsider));
        _vote(jobId, outsider, providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotSelected.selector, jobId, provider));
        _vote(jobId, provider, providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.ZeroResultHash.selector));
        _vote(jobId, chosen[0], bytes32(0));
        _vote(jobId, chosen[0], providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyVoted.selector, jobId, chosen[0]));
        _vote(jobId, chosen[0], otherHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.UnknownCase.selector, 999));
        _vote(999, chosen[0], otherHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.UnknownCase.selector, 999));
        consortium.finalize(999);
    }

    function test_RevertWhen_StrangerStartsMediation() public {
        MediationCase memory c;
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.OnlyLilypad.selector, alice));
        vm.prank(alice);
        consortium.startMediation(1, c);
    }

    function test_RevertWhen_CaseStartedTwice() public {
        (uint256 jobId,) = _challenged();
        MediationCase memory c;
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.CaseExists.selector, jobId));
        vm.prank(address(lilypad));
        consortium.startMediation(jobId, c);
    }

    function test_SetConsortium_Bounds() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        consortium.setConsortium(5, 3);
        uint8[2][5] memory bad = [[0, 0], [16, 9], [3, 4], [4, 2], [3, 1]];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(ConsortiumMediation.InvalidConsortium.selector, bad[i][0], bad[i][1])
            );
            vm.prank(owner);
            consortium.setConsortium(bad[i][0], bad[i][1]);
        }
        vm.prank(owner);
        consortium.setConsortium(5, 3);
        (uint256 jobId, address[] memory chosen) = _challenged();
        assertEq(chosen.length, 5);
        _vote(jobId, chosen[0], otherHash);
        _vote(jobId, chosen[1], otherHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Challenged));
        _vote(jobId, chosen[2], otherHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
    }

    function test_ChallengeKeepsItsMediationAndFee() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        SilentMediation silent = new SilentMediation();
        vm.startPrank(owner);
        lilypad.setMediation(address(silent), 0);
        Params memory p = lilypad.params();
        p.mediationFee = 5 ether;
        lilypad.setParams(p);
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotMediation.selector, address(silent)));
        vm.prank(address(silent));
        lilypad.resolveChallenge(jobId, false, new address[](0));
        _vote(jobId, chosen[0], providerHash);
        _vote(jobId, chosen[1], providerHash);
        assertEq(lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]), MEDIATION_FEE);
    }

    function test_ChallengeKeepsTheMediatorShareItWasOpenedWith() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        // The owner cuts the mediators' share while the case is open: this case keeps 20%.
        Params memory p = lilypad.params();
        p.mediatorShareBps = 0;
        vm.prank(owner);
        lilypad.setParams(p);
        uint256 share = 2 * PRICE * 2_000 / 10_000;
        _vote(jobId, chosen[0], otherHash);
        _vote(jobId, chosen[1], otherHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]), MEDIATION_FEE + share);
        assertEq(lilypad.getChallenge(jobId).mediatorShareBps, 2_000);
    }

    function test_RevertWhen_MediationFeeDoesNotFitAChallenge() public {
        Params memory p = lilypad.params();
        p.mediationFee = uint96(type(uint80).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidParam.selector, "mediationFee"));
        vm.prank(owner);
        lilypad.setParams(p);
    }

    function test_StaleChallenge_ClosedByAnyoneAfterGrace() public {
        SilentMediation silent = new SilentMediation();
        vm.prank(owner);
        lilypad.setMediation(address(silent), 0);
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        assertEq(silent.started(), 1);
        uint256 openAt = block.timestamp + 1 days + 1 days;
        vm.warp(openAt - 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, openAt));
        lilypad.resolveStaleChallenge(jobId);
        vm.warp(openAt);
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, true, true, MEDIATION_FEE, 0);
        vm.prank(relayer);
        lilypad.resolveStaleChallenge(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE + MEDIATION_FEE);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.UpheldByMediation));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        lilypad.resolveStaleChallenge(jobId);
    }

    function test_OverturnedWithoutRewardeesGivesClientEverything() public {
        SilentMediation silent = new SilentMediation();
        vm.prank(owner);
        lilypad.setMediation(address(silent), 0);
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.prank(address(silent));
        lilypad.resolveChallenge(jobId, false, new address[](0));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + 2 * PRICE + MEDIATION_FEE);
        assertEq(_locked(provider), 0);
    }

    function test_RevertWhen_TooManyRewardees() public {
        SilentMediation silent = new SilentMediation();
        vm.prank(owner);
        lilypad.setMediation(address(silent), 0);
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.TooManyRewardees.selector, 33, 32));
        vm.prank(address(silent));
        lilypad.resolveChallenge(jobId, true, new address[](33));
    }

    function test_RevertWhen_ResolvingUnchallengedJob() public {
        uint256 jobId = _jobWithResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.ResultSubmitted));
        vm.prank(address(consortium));
        lilypad.resolveChallenge(jobId, true, new address[](0));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.ResultSubmitted));
        lilypad.resolveStaleChallenge(jobId);
    }

    function test_ConsortiumCannotResolveAfterStaleClose() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        vm.warp(block.timestamp + 2 days);
        lilypad.resolveStaleChallenge(jobId);
        // the consortium's own fallback now fails cleanly: the job is already settled
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        consortium.finalize(jobId);
        chosen;
    }

    function testFuzz_Overturned_Split(uint16 shareBps, uint96 price) public {
        shareBps = uint16(bound(shareBps, 0, 5_000));
        price = uint96(bound(price, 0, MAX_PRICE));
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.mediatorShareBps = shareBps;
        lilypad.setParams(p);
        vm.stopPrank();
        uint256 jobId = _requestJob();
        lilypad.agreeDeal(_deal(jobId, provider, price), _signDeal(providerKey, _deal(jobId, provider, price)));
        _submit(jobId);
        client.challenge(jobId);
        address[] memory chosen = consortium.mediatorsOf(jobId);
        _vote(jobId, chosen[0], otherHash);
        _vote(jobId, chosen[1], otherHash);
        uint256 slashed = 2 * uint256(price);
        uint256 share = slashed * shareBps / 10_000;
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + slashed - share);
        assertEq(lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]), MEDIATION_FEE + share);
    }
}
