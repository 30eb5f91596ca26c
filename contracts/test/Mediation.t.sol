// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
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

    /// @dev A job with a result, challenged, drawn with its seed block's hash set to `seed`.
    function _challengedWithSeed(bytes32 seed) internal returns (uint256 jobId, address[] memory chosen) {
        jobId = _jobWithResult();
        client.challenge(jobId);
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, seed);
        consortium.draw(jobId);
        chosen = consortium.mediatorsOf(jobId);
    }

    function _challenged() internal returns (uint256 jobId, address[] memory chosen) {
        jobId = _jobWithResult();
        client.challenge(jobId);
        chosen = _draw(jobId);
    }

    /// @dev A job whose provider submitted `r` (its job id filled in) with inline output `output`,
    ///      properly signed, then challenged by the client and its mediators drawn.
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
        chosen = _draw(jobId);
    }

    /// @dev All three drawn mediators vote `h`, the commitment of their own re-run.
    function _allVote(uint256 jobId, address[] memory chosen, bytes32 h) internal {
        _vote(jobId, chosen, _votes(h, h, h));
    }

    function _stakeFree(address m) internal view returns (uint256 free) {
        (free,) = consortium.stakeOf(m);
    }

    function _stakeLocked(address m) internal view returns (uint256 locked) {
        (, locked) = consortium.stakeOf(m);
    }

    /// @dev A mediator registered in the consortium that was not drawn for the job.
    function _outsider(address[] memory chosen) internal view returns (address outsider) {
        for (uint256 i; i < mediators.length; ++i) {
            bool picked;
            for (uint256 j; j < chosen.length; ++j) {
                if (chosen[j] == mediators[i]) picked = true;
            }
            if (!picked) return mediators[i];
        }
    }

    // ------------------------------------------------------------------ what mediators compare

    function test_HonestResult_UpheldWhenMediatorsReproduceItsWholeCommitment() public {
        (uint256 jobId, address[] memory chosen) = _challengedWith(_result(0), OUTPUT);
        _allVote(jobId, chosen, _commitment(_result(0), OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.UpheldByMediation));
    }

    function test_ForgedInlineOutputBesideTheRightCid_IsOverturned() public {
        (uint256 jobId, address[] memory chosen) = _challengedWith(_result(0), "forged answer");
        bytes32 rerun = _commitment(_result(0), OUTPUT);
        assertTrue(lilypad.getJob(jobId).resultHash != rerun, "a forged output commits to another result");
        _allVote(jobId, chosen, rerun);
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
        _allVote(jobId, chosen, _commitment(rerun, OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
    }

    function test_ForgedStatus_IsOverturned() public {
        // The provider claims it could not run the job; a re-run succeeds with the same CID and output.
        ResultData memory claimed = _result(0);
        claimed.status = uint8(Outcome.ProviderError);
        claimed.error = "out of memory";
        (uint256 jobId, address[] memory chosen) = _challengedWith(claimed, OUTPUT);
        _allVote(jobId, chosen, _commitment(_result(0), OUTPUT));
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
        _allVote(jobId, chosen, _commitment(rerun, OUTPUT));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
    }

    // ------------------------------------------------------------------ mediators and stake

    function test_RegisterMediator_DrawableOnlyWithStake() public {
        address carol = makeAddr("carol");
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.MediatorRegistered(carol, "https://carol.example/m.json");
        vm.prank(carol);
        consortium.registerMediator("https://carol.example/m.json");
        assertTrue(consortium.isMediator(carol));
        assertEq(consortium.metadataUrl(carol), "https://carol.example/m.json");
        assertFalse(consortium.isDrawable(carol), "no stake yet");
        assertEq(consortium.drawableCount(), 5);

        _fund(carol, MEDIATOR_STAKE);
        vm.startPrank(carol);
        token.approve(address(consortium), MEDIATOR_STAKE);
        consortium.depositStake(MEDIATOR_STAKE);
        assertTrue(consortium.isDrawable(carol));
        assertEq(consortium.drawableCount(), 6);
        assertEq(consortium.drawableAt(5), carol);

        consortium.requestUnbond(1);
        assertFalse(consortium.isDrawable(carol), "below the stake");
        assertEq(consortium.drawableCount(), 5);
        consortium.requestUnbond(MEDIATOR_STAKE - 1);
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        consortium.completeUnbond();
        assertEq(token.balanceOf(carol), MEDIATOR_STAKE);
        assertEq(consortium.poolSize(), 5);

        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.MediatorDeregistered(carol);
        consortium.deregisterMediator();
        assertFalse(consortium.isMediator(carol));
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotRegistered.selector, carol));
        consortium.deregisterMediator();
        vm.stopPrank();
    }

    function test_Deregister_LeavesTheDrawableSetDense() public {
        vm.prank(mediators[1]);
        consortium.deregisterMediator();
        assertEq(consortium.drawableCount(), 4);
        assertEq(consortium.poolSize(), 5, "in the pool for older cases until it is paid");
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        vm.prank(mediators[1]);
        consortium.completeUnbond();
        assertEq(consortium.poolSize(), 4);
        for (uint256 i; i < 4; ++i) {
            address m = consortium.drawableAt(i);
            assertTrue(m != mediators[1]);
            assertTrue(consortium.isDrawable(m));
        }
    }

    function test_RevertWhen_MediatorMetadataUrlEmptyOrTooLong() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.EmptyMetadataUrl.selector));
        consortium.registerMediator("");
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.MetadataUrlTooLong.selector, 513, 512));
        consortium.registerMediator(string(new bytes(513)));
        vm.stopPrank();
    }

    function test_RevertWhen_WithdrawingLockedStake() public {
        (, address[] memory chosen) = _challenged();
        address m = chosen[0];
        uint256 free = MEDIATOR_COLLATERAL - MEDIATOR_STAKE;
        vm.expectRevert(
            abi.encodeWithSelector(ConsortiumMediation.InsufficientStake.selector, m, MEDIATOR_COLLATERAL, free)
        );
        vm.prank(m);
        consortium.requestUnbond(MEDIATOR_COLLATERAL);
    }

    // ------------------------------------------------------------------ unbonding

    function test_RequestUnbond_SetsStakeAsideForTheDelay() public {
        address m = mediators[0];
        uint256 readyAt = block.timestamp + consortium.UNBONDING_DELAY();
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.UnbondRequested(m, 30 ether, uint64(readyAt));
        vm.prank(m);
        consortium.requestUnbond(30 ether);
        assertEq(_stakeFree(m), MEDIATOR_COLLATERAL - 30 ether);
        (uint256 amount, uint256 at) = consortium.unbondingOf(m);
        assertEq(amount, 30 ether);
        assertEq(at, readyAt);
        assertEq(token.balanceOf(m), 0, "nothing paid yet");
        assertTrue(consortium.isDrawable(m), "still a stake free");
    }

    function test_RevertWhen_CompletingUnbondBeforeTheDelay() public {
        address m = mediators[0];
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NothingUnbonding.selector, m));
        vm.prank(m);
        consortium.completeUnbond();
        vm.prank(m);
        consortium.requestUnbond(MEDIATOR_COLLATERAL);
        uint256 readyAt = block.timestamp + consortium.UNBONDING_DELAY();
        vm.warp(readyAt - 1);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.UnbondingNotReady.selector, m, readyAt));
        vm.prank(m);
        consortium.completeUnbond();
    }

    function test_CompleteUnbond_PaysAfterTheDelay() public {
        address m = mediators[0];
        vm.prank(m);
        consortium.requestUnbond(MEDIATOR_COLLATERAL);
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.StakeWithdrawn(m, MEDIATOR_COLLATERAL);
        vm.prank(m);
        assertEq(consortium.completeUnbond(), MEDIATOR_COLLATERAL);
        assertEq(token.balanceOf(m), MEDIATOR_COLLATERAL);
        (uint256 amount,) = consortium.unbondingOf(m);
        assertEq(amount, 0);
        assertEq(consortium.poolSize(), 4, "out of the pool once paid");
    }

    function test_RevertWhen_UnbondingStakeLockedInACase() public {
        (, address[] memory chosen) = _challenged();
        address m = chosen[0];
        uint256 free = MEDIATOR_COLLATERAL - MEDIATOR_STAKE;
        vm.startPrank(m);
        consortium.requestUnbond(free);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.InsufficientStake.selector, m, 1, 0));
        consortium.requestUnbond(1);
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        assertEq(consortium.completeUnbond(), free);
        vm.stopPrank();
        assertEq(_stakeLocked(m), MEDIATOR_STAKE, "the case's stake stays until it resolves");
    }

    function test_Unbond_ALeavingMediatorIsNotDrawnForCasesOpenedAfterItsRequest() public {
        vm.prank(mediators[3]);
        consortium.requestUnbond(MEDIATOR_COLLATERAL - 1);
        vm.prank(mediators[4]);
        consortium.deregisterMediator();
        for (uint256 round; round < 10; ++round) {
            (uint256 jobId, address[] memory chosen) = _challengedWithSeed(keccak256(abi.encode("round", round)));
            for (uint256 i; i < 3; ++i) {
                assertTrue(chosen[i] != mediators[3] && chosen[i] != mediators[4], "drawn after leaving");
            }
            _allVote(jobId, chosen, providerHash);
        }
    }

    function test_Unbond_LeavingAfterTheChallengeDoesNotChangeItsDraw() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, keccak256("a known seed"));
        uint256 snapshot = vm.snapshotState();
        consortium.draw(jobId);
        address[] memory expected = consortium.mediatorsOf(jobId);
        vm.revertToState(snapshot);

        // every drawn mediator sees the seed hash and tries to leave before the draw
        for (uint256 i; i < expected.length; ++i) {
            vm.prank(expected[i]);
            consortium.deregisterMediator();
        }
        consortium.draw(jobId);
        assertEq(keccak256(abi.encode(consortium.mediatorsOf(jobId))), keccak256(abi.encode(expected)));
        for (uint256 i; i < expected.length; ++i) {
            assertEq(_stakeLocked(expected[i]), MEDIATOR_STAKE, "locked from the unbonding stake");
        }
    }

    // ------------------------------------------------------------------ joining the pool

    /// @dev Draws the challenged `jobId` with its seed block's hash set to `seed`, records who was
    ///      drawn and rolls the draw back, so one case can be drawn under many seeds.
    function _drawnUnder(uint256 jobId, bytes32 seed) internal returns (address[] memory chosen) {
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        uint256 snapshot = vm.snapshotState();
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, seed);
        consortium.draw(jobId);
        chosen = consortium.mediatorsOf(jobId);
        vm.revertToState(snapshot);
    }

    function test_Join_MediatorsJoiningAfterTheChallengeAreNotDrawnForIt() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        // the seed hash is known: twenty accounts stake to flood the pool before the draw
        address[] memory late = new address[](20);
        for (uint256 i; i < late.length; ++i) {
            late[i] = makeAddr(string.concat("late", vm.toString(i)));
            _registerMediator(late[i], MEDIATOR_COLLATERAL);
            assertTrue(consortium.isDrawable(late[i]), "drawable for cases opened from now on");
        }
        for (uint256 round; round < 8; ++round) {
            address[] memory chosen = _drawnUnder(jobId, keccak256(abi.encode("seed", round)));
            for (uint256 i; i < chosen.length; ++i) {
                for (uint256 j; j < late.length; ++j) {
                    assertTrue(chosen[i] != late[j], "a mediator that joined after the challenge was drawn for it");
                }
            }
        }
    }

    function test_Join_AMediatorJoiningBeforeAChallengeIsDrawnForIt() public {
        // four of the five original mediators leave and are paid; three newcomers join
        for (uint256 i = 1; i < 5; ++i) {
            vm.prank(mediators[i]);
            consortium.deregisterMediator();
        }
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        for (uint256 i = 1; i < 5; ++i) {
            vm.prank(mediators[i]);
            consortium.completeUnbond();
        }
        address[] memory joined = new address[](3);
        for (uint256 i; i < 3; ++i) {
            joined[i] = makeAddr(string.concat("joined", vm.toString(i)));
            _registerMediator(joined[i], MEDIATOR_COLLATERAL);
        }
        (, address[] memory chosen) = _challenged();
        uint256 newcomers;
        for (uint256 i; i < chosen.length; ++i) {
            for (uint256 j; j < joined.length; ++j) {
                if (chosen[i] == joined[j]) ++newcomers;
            }
        }
        assertGe(newcomers, 2, "three drawn from four: at least two newcomers");
    }

    function test_Join_ALeavingMediatorCannotComeBackByADepositBeforeItsUnbondingIsPaid() public {
        address m = mediators[0];
        vm.startPrank(m);
        consortium.deregisterMediator();
        consortium.registerMediator("https://mediator.example/back");
        vm.stopPrank();
        _fund(m, MEDIATOR_COLLATERAL);
        vm.startPrank(m);
        token.approve(address(consortium), MEDIATOR_COLLATERAL);
        consortium.depositStake(MEDIATOR_COLLATERAL);
        assertFalse(consortium.isDrawable(m), "back in the pool while its unbonding is unpaid");
        assertEq(consortium.drawableCount(), 4);
        vm.warp(block.timestamp + consortium.UNBONDING_DELAY());
        consortium.completeUnbond();
        vm.stopPrank();
        assertTrue(consortium.isDrawable(m), "drawable again once paid");
        assertEq(consortium.drawableCount(), 5);
    }

    // ------------------------------------------------------------------ challenge and draw

    function test_Challenge_PullsFeeAndSetsAFutureSeedBlock() public {
        uint256 jobId = _jobWithResult();
        uint256 before = token.balanceOf(address(client));
        uint64 deadline = uint64(block.timestamp + 1 days);
        uint64 seedBlock = uint64(block.number + consortium.SEED_DELAY());
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobChallenged(jobId, address(client), address(consortium), MEDIATION_FEE, deadline);
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.MediationStarted(jobId, providerHash, seedBlock);
        client.challenge(jobId);

        assertEq(token.balanceOf(address(client)), before - MEDIATION_FEE);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Challenged));
        Challenge memory c = lilypad.getChallenge(jobId);
        assertEq(c.mediation, address(consortium));
        assertEq(c.fee, MEDIATION_FEE);
        ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
        assertEq(cs.providerHash, providerHash);
        assertEq(cs.seedBlock, seedBlock);
        assertEq(cs.n, 3);
        assertEq(cs.k, 2);
        assertEq(cs.stake, MEDIATOR_STAKE);
        assertEq(cs.commitPeriod, COMMIT_PERIOD);
        assertEq(cs.revealPeriod, REVEAL_PERIOD);
        assertEq(cs.mediators.length, 0, "nobody is drawn before the seed block exists");
        // the provider's collateral stays locked during mediation
        assertEq(_locked(provider), 2 * PRICE);
    }

    function test_RevertWhen_DrawBeforeTheSeedBlockExists() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        vm.roll(seedBlock);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.SeedBlockNotReached.selector, jobId, seedBlock));
        consortium.draw(jobId);
    }

    function test_Draw_LocksTheStakeOfEachDrawnMediator() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.roll(consortium.caseOf(jobId).seedBlock + 1);
        vm.prank(alice); // anyone may draw
        assertTrue(consortium.draw(jobId));
        address[] memory chosen = consortium.mediatorsOf(jobId);
        assertEq(chosen.length, 3);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stakeLocked(chosen[i]), MEDIATOR_STAKE);
            assertEq(_stakeFree(chosen[i]), MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
            for (uint256 j; j < i; ++j) {
                assertTrue(chosen[i] != chosen[j], "mediator drawn twice");
            }
        }
        ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
        assertEq(cs.seedBlock, 0);
        assertEq(cs.commitDeadline, block.timestamp + COMMIT_PERIOD);
        assertEq(cs.revealDeadline, block.timestamp + COMMIT_PERIOD + REVEAL_PERIOD);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyDrawn.selector, jobId));
        consortium.draw(jobId);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.UnknownCase.selector, 999));
        consortium.draw(999);
    }

    function test_Draw_EmitsMediatorsDrawn() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.roll(consortium.caseOf(jobId).seedBlock + 1);
        vm.recordLogs();
        consortium.draw(jobId);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 topic = ConsortiumMediation.MediatorsDrawn.selector;
        bool seen;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != topic) continue;
            seen = true;
            assertEq(uint256(logs[i].topics[1]), jobId);
            (address[] memory drawn,,) = abi.decode(logs[i].data, (address[], uint64, uint64));
            assertEq(keccak256(abi.encode(drawn)), keccak256(abi.encode(consortium.mediatorsOf(jobId))));
        }
        assertTrue(seen);
    }

    function test_Draw_AMediatorWithoutFreeStakeLeftLeavesTheDrawableSet() public {
        // Five mediators holding exactly one stake each: the three drawn leave the set.
        for (uint256 i; i < 5; ++i) {
            vm.prank(mediators[i]);
            consortium.requestUnbond(MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
        }
        (, address[] memory chosen) = _challenged();
        assertEq(consortium.drawableCount(), 2);
        for (uint256 i; i < 3; ++i) {
            assertFalse(consortium.isDrawable(chosen[i]));
        }
        // with only two drawable mediators the next challenge cannot be taken
        uint256 next = _jobWithResult();
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotEnoughMediators.selector, 2, 3));
        client.challenge(next);
    }

    function test_Draw_RescheduledWhenTheSeedBlockHashIsGone() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        vm.roll(seedBlock + 257);
        uint64 next = uint64(block.number + consortium.SEED_DELAY());
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.DrawRescheduled(jobId, next);
        assertFalse(consortium.draw(jobId));
        assertEq(consortium.caseOf(jobId).seedBlock, next);
        assertEq(consortium.mediatorsOf(jobId).length, 0);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.SeedBlockNotReached.selector, jobId, next));
        consortium.draw(jobId);
        vm.roll(next + 1);
        assertTrue(consortium.draw(jobId));
        assertEq(consortium.mediatorsOf(jobId).length, 3);
    }

    function test_Draw_DependsOnTheSeedBlockHash() public {
        bool differs;
        address[] memory first;
        for (uint256 round; round < 8; ++round) {
            (, address[] memory chosen) = _challengedWithSeed(keccak256(abi.encode("seed", round)));
            if (round == 0) first = chosen;
            else if (keccak256(abi.encode(chosen)) != keccak256(abi.encode(first))) differs = true;
        }
        assertTrue(differs);
    }

    function test_Draw_NeverPicksTheProviderOrTheClient() public {
        // the provider stakes as a mediator; two honest mediators leave: the pool is 3 honest + provider
        _registerMediator(provider, MEDIATOR_COLLATERAL);
        for (uint256 i; i < 2; ++i) {
            vm.prank(mediators[i]);
            consortium.deregisterMediator();
        }
        for (uint256 round; round < 10; ++round) {
            (, address[] memory chosen) = _challengedWithSeed(keccak256(abi.encode(round)));
            for (uint256 i; i < 3; ++i) {
                assertTrue(chosen[i] != provider, "provider drawn as its own mediator");
                assertTrue(chosen[i] != mediators[0] && chosen[i] != mediators[1]);
            }
        }
    }

    function test_RevertWhen_NotEnoughMediators() public {
        uint256 jobId = _jobWithResult();
        for (uint256 i; i < 3; ++i) {
            vm.prank(mediators[i]);
            consortium.deregisterMediator();
        }
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotEnoughMediators.selector, 2, 3));
        client.challenge(jobId);
        // nothing changed: the job can still settle normally
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
        client.accept(jobId);
    }

    function test_SybilMediatorsWithoutStakeCannotBlockAChallenge() public {
        // A provider registers 300 empty mediator accounts (and some with less than a stake) hoping
        // the draw meets only them and fails.
        for (uint256 i; i < 300; ++i) {
            address sybil = address(uint160(0x5000 + i));
            if (i % 10 == 0) {
                _registerMediator(sybil, MEDIATOR_STAKE - 1);
            } else {
                vm.prank(sybil);
                consortium.registerMediator("https://sybil.example/");
            }
        }
        assertEq(consortium.drawableCount(), 5);
        (uint256 jobId, address[] memory chosen) = _challenged();
        assertEq(chosen.length, 3);
        for (uint256 i; i < 3; ++i) {
            assertTrue(uint160(chosen[i]) < 0x5000 || uint160(chosen[i]) >= 0x5000 + 300, "a sybil was drawn");
            assertEq(_stakeLocked(chosen[i]), MEDIATOR_STAKE);
        }
        _allVote(jobId, chosen, providerHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
    }

    function test_ParallelCases_LockOneStakeEach() public {
        (, address[] memory a) = _challenged();
        (, address[] memory b) = _challenged();
        for (uint256 i; i < mediators.length; ++i) {
            uint256 cases;
            for (uint256 j; j < 3; ++j) {
                if (a[j] == mediators[i]) ++cases;
                if (b[j] == mediators[i]) ++cases;
            }
            assertEq(_stakeLocked(mediators[i]), cases * MEDIATOR_STAKE);
        }
    }

    // ------------------------------------------------------------------ mediators' records

    function _mediatorRecord(address m) internal view returns (uint256[4] memory r) {
        (r[0], r[1], r[2], r[3]) = consortium.recordOf(m);
    }

    function test_Record_ADrawnMediatorIsCountedUntilItsCaseResolves() public {
        (, address[] memory chosen) = _challenged();
        for (uint256 i; i < 3; ++i) {
            uint256[4] memory r = _mediatorRecord(chosen[i]);
            assertEq(r[0], 1, "drawn");
            assertEq(r[1] + r[2], 0, "not resolved yet");
        }
        uint256[4] memory outsider = _mediatorRecord(_outsider(chosen));
        assertEq(outsider[0], 0, "not drawn");
    }

    function test_Record_VotingWithTheDecisionIsRewarded() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _allVote(jobId, chosen, providerHash);
        for (uint256 i; i < 3; ++i) {
            uint256[4] memory r = _mediatorRecord(chosen[i]);
            assertEq(r[1], 1, "rewarded");
            assertEq(r[2], 0, "never slashed");
        }
    }

    function test_Record_ADissenterIsSlashedAndItsLossCounted() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen, _votes(providerHash, providerHash, otherHash));
        uint256[4] memory dissenter = _mediatorRecord(chosen[2]);
        assertEq(dissenter[0], 1);
        assertEq(dissenter[1], 0);
        assertEq(dissenter[2], 1, "slashed once");
        assertEq(dissenter[3], MEDIATOR_STAKE, "its locked stake lost");
        assertEq(_mediatorRecord(chosen[0])[1], 1);
    }

    function test_Record_AMediatorThatDoesNotVoteIsSlashed() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen, _votes(providerHash, providerHash, bytes32(0)));
        uint256[4] memory silent = _mediatorRecord(chosen[2]);
        assertEq(silent[2], 1);
        assertEq(silent[3], MEDIATOR_STAKE);
    }

    // ------------------------------------------------------------------ commit and reveal

    function test_Upheld_ByQuorumReleasesStakesAndPaysTheFee() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        for (uint256 i; i < 3; ++i) {
            bytes32 c = consortium.commitmentFor(providerHash, _salt(chosen[i]), chosen[i]);
            vm.expectEmit(address(consortium));
            emit ConsortiumMediation.VoteCommitted(jobId, chosen[i], c);
            vm.prank(chosen[i]);
            consortium.commit(jobId, c);
        }
        assertEq(consortium.caseOf(jobId).commitDeadline, block.timestamp, "all committed: reveals open now");
        _revealVote(jobId, chosen[0], providerHash);
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.VoteRevealed(jobId, chosen[1], providerHash);
        _revealVote(jobId, chosen[1], providerHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Challenged), "waits for every commitment");
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, true, false, 0, MEDIATION_FEE);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.UpheldByMediation);
        _revealVote(jobId, chosen[2], providerHash);

        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE);
        uint256 each = MEDIATION_FEE / 3;
        assertEq(lilypad.balanceOf(chosen[0]), MEDIATION_FEE - 2 * each);
        assertEq(lilypad.balanceOf(chosen[1]), each);
        assertEq(lilypad.balanceOf(chosen[2]), each);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stakeLocked(chosen[i]), 0);
            assertEq(_stakeFree(chosen[i]), MEDIATOR_COLLATERAL);
        }
        assertEq(_locked(provider), 0);
        Outcome[] memory seen = client.outcomes(jobId);
        assertEq(seen.length, 2);
        assertEq(uint8(seen[1]), uint8(Outcome.UpheldByMediation));
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyResolved.selector, jobId));
        consortium.finalize(jobId);
    }

    function test_Overturned_SlashesResultsCollateralAndTheDissenter() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        uint256 slashed = 2 * PRICE;
        uint256 share = slashed * 2_000 / 10_000;
        _commitVote(jobId, chosen[0], otherHash);
        _commitVote(jobId, chosen[1], providerHash);
        _commitVote(jobId, chosen[2], otherHash);
        _revealVote(jobId, chosen[0], otherHash);
        _revealVote(jobId, chosen[1], providerHash);
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.MediatorSlashed(jobId, chosen[1], MEDIATOR_STAKE);
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, false, false, MAX_PRICE + slashed - share, MEDIATION_FEE + share);
        _revealVote(jobId, chosen[2], otherHash);

        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(lilypad.balanceOf(provider), 0);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + slashed - share);
        assertEq(lilypad.balanceOf(chosen[0]), (MEDIATION_FEE + share) / 2);
        assertEq(lilypad.balanceOf(chosen[2]), (MEDIATION_FEE + share) / 2);
        assertEq(lilypad.balanceOf(chosen[1]), 0);
        assertEq(_locked(provider), 0);
        assertEq(_free(provider), PROVIDER_COLLATERAL - slashed);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.OverturnedByMediation));
        assertEq(client.callbackCount(jobId), 2);
    }

    function test_MediatorVotingAgainstTheConsensusIsSlashed() public {
        // The provider forged its inline output; a lazy mediator votes the provider's public hash
        // without re-running, the other two re-run.
        (uint256 jobId, address[] memory chosen) = _challengedWith(_result(0), "forged answer");
        bytes32 claimed = lilypad.getJob(jobId).resultHash;
        bytes32 rerun = _commitment(_result(0), OUTPUT);
        _vote(jobId, chosen, _votes(rerun, claimed, rerun));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        // the lazy one lost its stake to the two honest ones
        assertEq(_stakeLocked(chosen[1]), 0);
        assertEq(_stakeFree(chosen[1]), MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
        assertEq(consortium.balanceOf(chosen[1]), 0);
        assertEq(consortium.balanceOf(chosen[0]), MEDIATOR_STAKE / 2);
        assertEq(consortium.balanceOf(chosen[2]), MEDIATOR_STAKE / 2);
        assertEq(_stakeFree(chosen[0]), MEDIATOR_COLLATERAL);
        vm.prank(chosen[0]);
        assertEq(consortium.withdraw(), MEDIATOR_STAKE / 2);
        assertEq(token.balanceOf(chosen[0]), MEDIATOR_STAKE / 2);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NothingToWithdraw.selector));
        vm.prank(chosen[0]);
        consortium.withdraw();
    }

    function test_CopiedCommitmentCannotBeRevealed() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        // chosen[0] commits; chosen[1] copies the commitment bytes it saw in the mempool
        _commitVote(jobId, chosen[0], providerHash);
        bytes32 seen = consortium.commitmentOf(jobId, chosen[0]);
        vm.prank(chosen[1]);
        consortium.commit(jobId, seen);
        _commitVote(jobId, chosen[2], providerHash);
        _revealVote(jobId, chosen[0], providerHash);
        // even knowing the hash and salt chosen[0] revealed, the copy binds chosen[0]'s address
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.CommitmentMismatch.selector, jobId, chosen[1]));
        vm.prank(chosen[1]);
        consortium.reveal(jobId, providerHash, _salt(chosen[0]));
    }

    function test_RevertWhen_RevealBeforeTheCommitPhaseEnds() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _commitVote(jobId, chosen[0], providerHash);
        uint256 deadline = consortium.caseOf(jobId).commitDeadline;
        // a copier would need the hash now, while others can still commit: nobody can reveal yet
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.RevealNotOpen.selector, jobId, deadline));
        _revealVote(jobId, chosen[0], providerHash);
    }

    function test_NonRevealerIsSlashed() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        for (uint256 i; i < 3; ++i) {
            _commitVote(jobId, chosen[i], providerHash);
        }
        _revealVote(jobId, chosen[0], providerHash);
        _revealVote(jobId, chosen[2], providerHash);
        uint256 deadline = consortium.caseOf(jobId).revealDeadline;
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.VotingOpen.selector, jobId, deadline));
        consortium.finalize(jobId);
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.RevealClosed.selector, jobId, deadline));
        _revealVote(jobId, chosen[1], providerHash);
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.MediatorSlashed(jobId, chosen[1], MEDIATOR_STAKE);
        vm.prank(alice);
        consortium.finalize(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(_stakeLocked(chosen[1]), 0);
        assertEq(_stakeFree(chosen[1]), MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
        assertEq(consortium.balanceOf(chosen[0]) + consortium.balanceOf(chosen[2]), MEDIATOR_STAKE);
        assertEq(lilypad.balanceOf(chosen[1]), 0, "no fee for the non-revealer");
        assertEq(lilypad.balanceOf(chosen[0]), MEDIATION_FEE / 2);
    }

    function test_NonCommitterIsSlashed() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        uint256 deadline = consortium.caseOf(jobId).commitDeadline;
        _commitVote(jobId, chosen[0], otherHash);
        _commitVote(jobId, chosen[1], otherHash);
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.CommitClosed.selector, jobId, deadline));
        _commitVote(jobId, chosen[2], otherHash);
        _revealVote(jobId, chosen[0], otherHash);
        _revealVote(jobId, chosen[1], otherHash); // every commitment revealed: resolves
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(_stakeLocked(chosen[2]), 0);
        assertEq(_stakeFree(chosen[2]), MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
        assertEq(consortium.balanceOf(chosen[0]), MEDIATOR_STAKE / 2);
    }

    function test_StaleCase_AdvancedByAnyone_SlashesToTheClientWhenNobodyVoted() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        uint256 deadline = consortium.caseOf(jobId).commitDeadline;
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.VotingOpen.selector, jobId, deadline));
        consortium.finalize(jobId);
        vm.warp(deadline); // nobody committed: no reveal phase to wait for
        vm.expectEmit(address(lilypad));
        emit ILilypad.ChallengeResolved(jobId, true, false, MEDIATION_FEE, 0);
        vm.prank(alice);
        consortium.finalize(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(consortium.balanceOf(address(client)), 3 * MEDIATOR_STAKE);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE + MEDIATION_FEE);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stakeLocked(chosen[i]), 0);
        }
    }

    function test_SplitReveals_WithoutQuorumUpholdAndReleaseEveryRevealer() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _vote(jobId, chosen, _votes(otherHash, keccak256("third"), providerHash));
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        uint256 each = MEDIATION_FEE / 3;
        assertEq(lilypad.balanceOf(chosen[0]), MEDIATION_FEE - 2 * each);
        assertEq(lilypad.balanceOf(chosen[1]), each);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stakeFree(chosen[i]), MEDIATOR_COLLATERAL);
        }
    }

    function test_RevertWhen_VoteFromWrongMediatorTwiceOrEmpty() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotDrawn.selector, jobId));
        consortium.commit(jobId, keccak256("x"));
        address[] memory chosen = _draw(jobId);
        address outsider = _outsider(chosen);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotSelected.selector, jobId, outsider));
        _commitVote(jobId, outsider, providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotSelected.selector, jobId, provider));
        _commitVote(jobId, provider, providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.ZeroCommitment.selector));
        vm.prank(chosen[0]);
        consortium.commit(jobId, bytes32(0));
        _commitVote(jobId, chosen[0], providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyCommitted.selector, jobId, chosen[0]));
        _commitVote(jobId, chosen[0], otherHash);
        _commitVote(jobId, chosen[1], providerHash);
        _commitVote(jobId, chosen[2], providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.NotCommitted.selector, jobId, outsider));
        _revealVote(jobId, outsider, providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.ZeroResultHash.selector));
        _revealVote(jobId, chosen[0], bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.CommitmentMismatch.selector, jobId, chosen[0]));
        _revealVote(jobId, chosen[0], otherHash);
        _revealVote(jobId, chosen[0], providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.AlreadyRevealed.selector, jobId, chosen[0]));
        _revealVote(jobId, chosen[0], providerHash);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.UnknownCase.selector, 999));
        consortium.commit(999, keccak256("x"));
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
        bytes32[] memory h = new bytes32[](5);
        (h[0], h[1], h[2], h[3], h[4]) = (otherHash, otherHash, otherHash, providerHash, providerHash);
        _vote(jobId, chosen, h);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(_stakeFree(chosen[3]), MEDIATOR_COLLATERAL - MEDIATOR_STAKE);
    }

    function test_CaseKeepsItsTermsWhenTheOwnerChangesThem() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.startPrank(owner);
        consortium.setPeriods(1, 1);
        consortium.setConsortium(5, 3);
        vm.stopPrank();
        address[] memory chosen = _draw(jobId);
        assertEq(chosen.length, 3);
        ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
        assertEq(cs.commitDeadline, block.timestamp + COMMIT_PERIOD);
        assertEq(cs.k, 2);
    }

    function test_SetPeriods_BoundsAndOwnerOnly() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        consortium.setPeriods(10, 10);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.InvalidPeriods.selector, 0, 10));
        vm.prank(owner);
        consortium.setPeriods(0, 10);
        uint32 half = consortium.UNBONDING_DELAY() / 2;
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.InvalidPeriods.selector, half, 1));
        vm.prank(owner);
        consortium.setPeriods(half, 1);
        vm.expectEmit(address(consortium));
        emit ConsortiumMediation.PeriodsSet(20, 30);
        vm.prank(owner);
        consortium.setPeriods(20, 30);
        assertEq(consortium.commitPeriod(), 20);
        assertEq(consortium.revealPeriod(), 30);
    }

    // ------------------------------------------------------------------ Lilypad's side of a challenge

    function test_ChallengeKeepsItsMediationAndFee() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        SilentMediation silent = new SilentMediation();
        vm.startPrank(owner);
        lilypad.setMediation(address(silent));
        Params memory p = lilypad.params();
        p.mediationFee = 5 ether;
        lilypad.setParams(p);
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotMediation.selector, address(silent)));
        vm.prank(address(silent));
        lilypad.resolveChallenge(jobId, false, new address[](0));
        _allVote(jobId, chosen, providerHash);
        assertEq(
            lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]) + lilypad.balanceOf(chosen[2]), MEDIATION_FEE
        );
    }

    function test_ChallengeKeepsTheMediatorShareItWasOpenedWith() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        // The owner cuts the mediators' share while the case is open: this case keeps 20%.
        Params memory p = lilypad.params();
        p.mediatorShareBps = 0;
        vm.prank(owner);
        lilypad.setParams(p);
        uint256 share = 2 * PRICE * 2_000 / 10_000;
        _allVote(jobId, chosen, otherHash);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(
            lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]) + lilypad.balanceOf(chosen[2]),
            MEDIATION_FEE + share
        );
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
        lilypad.setMediation(address(silent));
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
        lilypad.setMediation(address(silent));
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
        lilypad.setMediation(address(silent));
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

    function test_StaleCloseOnLilypad_ConsortiumStillSettlesTheStakes() public {
        (uint256 jobId, address[] memory chosen) = _challenged();
        _commitVote(jobId, chosen[0], providerHash);
        vm.warp(block.timestamp + 2 days);
        lilypad.resolveStaleChallenge(jobId);
        // Lilypad closed it; the consortium still settles the stakes without calling Lilypad again
        consortium.finalize(jobId);
        assertTrue(consortium.caseOf(jobId).resolved);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stakeLocked(chosen[i]), 0);
        }
        // nobody revealed: every stake goes to the client
        assertEq(consortium.balanceOf(address(client)), 3 * MEDIATOR_STAKE);
    }

    function test_RevertWhen_DrawingAfterLilypadClosedTheChallenge() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.warp(block.timestamp + 2 days);
        lilypad.resolveStaleChallenge(jobId);
        vm.roll(block.number + 3);
        vm.expectRevert(abi.encodeWithSelector(ConsortiumMediation.ChallengeClosed.selector, jobId, JobStatus.Settled));
        consortium.draw(jobId);
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
        address[] memory chosen = _draw(jobId);
        _allVote(jobId, chosen, otherHash);
        uint256 slashed = 2 * uint256(price);
        uint256 share = slashed * shareBps / 10_000;
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + slashed - share);
        assertEq(
            lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]) + lilypad.balanceOf(chosen[2]),
            MEDIATION_FEE + share
        );
    }
}
