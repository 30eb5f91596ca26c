// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {ILilypad, JobRequest, Deal, Outcome, JobStatus, Params} from "../src/interfaces/ILilypad.sol";

contract LilypadSettleTest is LilypadTestBase {
    function _fee(uint256 price) internal pure returns (uint256) {
        return price * FEE_BPS / 10_000;
    }

    // ------------------------------------------------------------------ settle

    function test_Settle_PaysProviderRefundsClientTakesFee() public {
        uint256 jobId = _jobWithResult();
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobSettled(jobId, provider, PRICE - _fee(PRICE), _fee(PRICE), MAX_PRICE - PRICE);
        vm.prank(relayer);
        lilypad.settle(jobId);

        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
        assertEq(lilypad.balanceOf(treasury), _fee(PRICE));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE);
        assertEq(_locked(provider), 0);
        assertEq(_free(provider), PROVIDER_COLLATERAL);
        // settlement does not call the client back: its one result callback already happened
        assertEq(client.callbackCount(jobId), 1);
    }

    function test_Settle_AProviderErrorEarnsNothingAndRefundsTheClientInFull() public {
        uint256 jobId = _jobWithOutcome(Outcome.ProviderError);
        assertTrue(lilypad.getJob(jobId).providerError);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobSettled(jobId, provider, 0, 0, MAX_PRICE);
        lilypad.settle(jobId);
        assertEq(lilypad.balanceOf(provider), 0, "paid for a job it could not run");
        assertEq(lilypad.balanceOf(treasury), 0, "a fee on nothing");
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE);
        assertEq(_locked(provider), 0, "its results collateral is released");
        assertEq(_free(provider), PROVIDER_COLLATERAL);
    }

    function test_Settle_AJobFailedResultIsPaid() public {
        uint256 jobId = _jobWithOutcome(Outcome.JobFailed);
        assertFalse(lilypad.getJob(jobId).providerError);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE), "the module ran: the work is paid");
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE - PRICE);
    }

    function test_RevertWhen_SettleBeforeWindowCloses() public {
        uint256 jobId = _jobWithResult();
        uint256 deadline = block.timestamp + CHALLENGE_WINDOW;
        vm.warp(deadline - 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, deadline));
        lilypad.settle(jobId);
    }

    function test_RevertWhen_SettleTwice() public {
        uint256 jobId = _jobWithResult();
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        lilypad.settle(jobId);
        vm.prank(address(client));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        lilypad.acceptResult(jobId);
        uint256[] memory ids = new uint256[](2);
        ids[0] = jobId;
        ids[1] = jobId;
        assertEq(lilypad.settleMany(ids), 0);
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
    }

    function test_RevertWhen_SettleUnknownOrUnfinishedJob() public {
        vm.expectRevert(abi.encodeWithSelector(ILilypad.JobNotFound.selector, 5));
        lilypad.settle(5);
        uint256 jobId = _requestJob();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Requested));
        lilypad.settle(jobId);
        _agree(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Agreed));
        lilypad.settle(jobId);
    }

    function test_SettleMany_SettlesReadyJobsSkipsOthers() public {
        uint256 a = _jobWithResult();
        uint256 b = _jobWithResult();
        uint256 notReady = _requestJob();
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        uint256 c = _jobWithResult(); // window still open
        uint256[] memory ids = new uint256[](5);
        (ids[0], ids[1], ids[2], ids[3], ids[4]) = (a, notReady, b, c, 999);
        assertEq(lilypad.settleMany(ids), 2);
        assertEq(uint8(_status(a)), uint8(JobStatus.Settled));
        assertEq(uint8(_status(b)), uint8(JobStatus.Settled));
        assertEq(uint8(_status(c)), uint8(JobStatus.ResultSubmitted));
        assertEq(lilypad.balanceOf(provider), 2 * (PRICE - _fee(PRICE)));
    }

    function test_AcceptResult_SettlesEarly() public {
        uint256 jobId = _jobWithResult();
        client.accept(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertEq(lilypad.balanceOf(provider), PRICE - _fee(PRICE));
    }

    function test_RevertWhen_StrangerAcceptsResult() public {
        uint256 jobId = _jobWithResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotClient.selector, relayer));
        vm.prank(relayer);
        lilypad.acceptResult(jobId);
    }

    function test_Settle_FeeFixedAtRequestTimeAndCapped() public {
        uint256 jobId = _requestJob();
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.protocolFeeBps = 1_000;
        lilypad.setParams(p);
        p.protocolFeeBps = 1_001;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidParam.selector, "protocolFeeBps"));
        lilypad.setParams(p);
        vm.stopPrank();
        _agree(jobId);
        _submit(jobId);
        client.accept(jobId);
        assertEq(lilypad.balanceOf(treasury), _fee(PRICE)); // 2.5%, not 10%
    }

    function test_Settle_PriceEqualsMaxPriceMeansNoRefund() public {
        uint256 jobId = _requestJob();
        Deal memory d = _deal(jobId, provider, MAX_PRICE);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        _submit(jobId);
        client.accept(jobId);
        assertEq(lilypad.balanceOf(address(client)), 0);
        assertEq(lilypad.balanceOf(provider), MAX_PRICE - _fee(MAX_PRICE));
    }

    function test_Settle_TreasuryChangeAppliesToLaterSettlements() public {
        uint256 jobId = _jobWithResult();
        address newTreasury = makeAddr("newTreasury");
        vm.prank(owner);
        lilypad.setTreasury(newTreasury);
        client.accept(jobId);
        assertEq(lilypad.balanceOf(newTreasury), _fee(PRICE));
        assertEq(lilypad.balanceOf(treasury), 0);
    }

    function testFuzz_Settle_Arithmetic(uint96 maxPrice, uint96 price, uint16 feeBps) public {
        feeBps = uint16(bound(feeBps, 0, 1_000));
        price = uint96(bound(price, 0, maxPrice));
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.protocolFeeBps = feeBps;
        p.minTimeoutCollateralBps = 0;
        lilypad.setParams(p);
        vm.stopPrank();
        JobRequest memory r = _request();
        r.maxPrice = maxPrice;
        r.resultsCollateralMultiplierBps = 0;
        _fund(address(client), maxPrice);
        uint256 jobId = _requestJob(r);
        Deal memory d = _deal(jobId, provider, price);
        d.timeoutCollateral = 0;
        d.resultsCollateral = 0;
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        _submit(jobId);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        uint256 fee = uint256(price) * feeBps / 10_000;
        assertEq(lilypad.balanceOf(provider), price - fee);
        assertEq(lilypad.balanceOf(treasury), fee);
        assertEq(lilypad.balanceOf(address(client)), maxPrice - price);
        assertEq(
            lilypad.balanceOf(provider) + lilypad.balanceOf(treasury) + lilypad.balanceOf(address(client)), maxPrice
        );
    }

    function testFuzz_Settle_Timing(uint256 elapsed) public {
        elapsed = bound(elapsed, 0, 3 * CHALLENGE_WINDOW);
        uint256 jobId = _jobWithResult();
        uint256 deadline = lilypad.getJob(jobId).deadline;
        vm.warp(block.timestamp + elapsed);
        if (block.timestamp < deadline) {
            vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, deadline));
        }
        lilypad.settle(jobId);
    }

    function test_ZeroChallengeWindowSettlesAtOnce() public {
        JobRequest memory r = _request();
        r.challengeWindow = 0;
        uint256 jobId = _requestJob(r);
        _agree(jobId);
        _submit(jobId);
        lilypad.settle(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        client.challenge(jobId);
    }

    // ------------------------------------------------------------------ expire

    function test_Expire_RefundsInFullAndCallsBack() public {
        uint256 jobId = _requestJob();
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobExpired(jobId, address(client), MAX_PRICE);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.Expired);
        vm.prank(relayer);
        lilypad.expire(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Expired));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE);
        assertEq(client.callbackCount(jobId), 1);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.Expired));
        assertEq(client.last(jobId).resultCid, "");
    }

    function test_RevertWhen_ExpireEarlyOrTwice() public {
        uint256 jobId = _requestJob();
        uint256 deadline = block.timestamp + MATCH_TIMEOUT;
        vm.warp(deadline - 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, deadline));
        lilypad.expire(jobId);
        vm.warp(deadline);
        lilypad.expire(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Expired));
        lilypad.expire(jobId);
        assertEq(client.callbackCount(jobId), 1);
    }

    function test_RevertWhen_ExpireAgreedJob() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Agreed));
        lilypad.expire(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.JobNotFound.selector, 42));
        lilypad.expire(42);
    }

    // ------------------------------------------------------------------ timeout

    function test_Timeout_RefundsAndSlashesTimeoutCollateral() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobTimedOut(jobId, provider, MAX_PRICE, PRICE);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.TimedOut);
        vm.prank(relayer);
        lilypad.timeout(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.TimedOut));
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + PRICE);
        assertEq(_locked(provider), 0);
        assertEq(_free(provider), PROVIDER_COLLATERAL - PRICE);
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.TimedOut));
    }

    function test_RevertWhen_TimeoutEarlyOrWrongState() public {
        uint256 jobId = _requestJob();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Requested));
        lilypad.timeout(jobId);
        _agree(jobId);
        uint256 deadline = block.timestamp + EXECUTION_TIMEOUT;
        vm.warp(deadline - 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, deadline));
        lilypad.timeout(jobId);
        vm.warp(deadline - 2);
        _submit(jobId);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.ResultSubmitted));
        lilypad.timeout(jobId);
    }

    function testFuzz_Timeout_Timing(uint256 elapsed) public {
        elapsed = bound(elapsed, 0, 2 * EXECUTION_TIMEOUT);
        uint256 jobId = _requestJob();
        _agree(jobId);
        uint256 deadline = lilypad.getJob(jobId).deadline;
        vm.warp(block.timestamp + elapsed);
        if (block.timestamp < deadline) {
            vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlineNotReached.selector, jobId, deadline));
        }
        lilypad.timeout(jobId);
    }

    // ------------------------------------------------------------------ withdraw

    function test_Withdraw_SendsCreditedBalance() public {
        uint256 jobId = _jobWithResult();
        client.accept(jobId);
        uint256 owed = lilypad.balanceOf(provider);
        uint256 before = token.balanceOf(provider);
        vm.expectEmit(address(lilypad));
        emit ILilypad.Withdrawn(provider, owed);
        vm.prank(provider);
        assertEq(lilypad.withdraw(), owed);
        assertEq(token.balanceOf(provider), before + owed);
        assertEq(lilypad.balanceOf(provider), 0);

        uint256 refund = client.withdrawAll();
        assertEq(refund, MAX_PRICE - PRICE);
        assertEq(client.withdrawAll(), 0);
    }

    function test_RevertWhen_NothingToWithdraw() public {
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NothingToWithdraw.selector));
        vm.prank(alice);
        lilypad.withdraw();
    }
}
