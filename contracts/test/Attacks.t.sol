// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {MockClient} from "./utils/MockClient.sol";
import {LilypadClient} from "../src/LilypadClient.sol";
import {LilypadDisputes} from "../src/LilypadDisputes.sol";
import {ILilypad, JobRequest, JobResult, Outcome, JobStatus} from "../src/interfaces/ILilypad.sol";

/// @dev Hostile clients, relayers and callers.
contract AttacksTest is LilypadTestBase {
    /// @dev Gives the client a credited balance (a refund from an expired job).
    function _creditClient() internal returns (uint256 credited) {
        uint256 old = _requestJob();
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        lilypad.expire(old);
        credited = lilypad.balanceOf(address(client));
        assertEq(credited, MAX_PRICE);
    }

    function _assertBlocked() internal view {
        assertTrue(client.reentryBlocked(), "re-entry was not blocked");
        assertEq(bytes4(client.reentryError()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
    }

    // ------------------------------------------------------------------ The DAO

    /// @notice The DAO (2016): a callee re-entered withdraw before its balance was zeroed. Here the
    ///         client's callback calls withdraw() from inside submitResult: the guard refuses it,
    ///         and balances are already final before any external call is made.
    function test_TheDAO_ReentrantWithdrawFromCallbackIsBlocked() public {
        uint256 credited = _creditClient();
        uint256 jobId = _requestJob();
        uint256 tokensBefore = token.balanceOf(address(client));
        _agree(jobId);
        client.setMode(MockClient.Mode.ReenterWithdraw);
        _submit(jobId);
        _assertBlocked();
        assertEq(lilypad.balanceOf(address(client)), credited);
        assertEq(token.balanceOf(address(client)), tokensBefore);
        // outside a callback the same withdraw works, once
        assertEq(client.withdrawAll(), credited);
        assertEq(client.withdrawAll(), 0);
    }

    function test_TheDAO_ReentrantWithdrawFromExpireCallbackIsBlocked() public {
        _creditClient();
        uint256 jobId = _requestJob();
        client.setMode(MockClient.Mode.ReenterWithdraw);
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        lilypad.expire(jobId);
        _assertBlocked();
        assertEq(lilypad.balanceOf(address(client)), 2 * MAX_PRICE);
    }

    function test_ReentrantSettleFromCallbackIsBlocked() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        client.setReenterJob(jobId);
        client.setMode(MockClient.Mode.ReenterSettle);
        _submit(jobId);
        _assertBlocked();
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
        assertEq(lilypad.balanceOf(provider), 0);
    }

    function test_ReentrantRunJobFromCallbackIsBlocked() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        client.setMode(MockClient.Mode.ReenterRunJob);
        _submit(jobId);
        _assertBlocked();
        assertEq(lilypad.requestCount(), 1);
    }

    function test_ReentrantChallengeFromVerdictCallbackIsBlocked() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        address[] memory chosen = _draw(jobId);
        client.setReenterJob(jobId);
        client.setMode(MockClient.Mode.ReenterChallenge);
        bytes32 h = _commitment(_result(jobId), OUTPUT);
        _vote(jobId, chosen, _votes(h, h, h));
        _assertBlocked();
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
    }

    // ------------------------------------------------------------------ hostile callbacks

    function test_RevertingCallbackDoesNotBlockSettlement() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        client.setMode(MockClient.Mode.Revert);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(jobId, Outcome.Succeeded);
        _submit(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        assertGt(lilypad.balanceOf(provider), 0);
    }

    function test_GasBurningCallbackIsBoundedAndRecorded() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        client.setMode(MockClient.Mode.Burn);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(jobId, Outcome.Succeeded);
        uint256 before = gasleft();
        _submit(jobId);
        uint256 used = before - gasleft();
        assertLt(used, CALLBACK_GAS + 150_000, "callback took more than its limit");
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
    }

    function test_TimeoutAndExpireProceedWhenCallbackReverts() public {
        client.setMode(MockClient.Mode.Revert);
        uint256 a = _requestJob();
        uint256 b = _requestJob();
        _agree(b);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(a, Outcome.Expired);
        lilypad.expire(a);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(b, Outcome.TimedOut);
        lilypad.timeout(b);
        assertEq(lilypad.balanceOf(address(client)), 2 * MAX_PRICE + PRICE);
    }

    function test_HugeReturnDataIsNeverCopied() public {
        uint256 a = _requestJob();
        uint256 b = _requestJob();
        _agree(a);
        _agree(b);
        _jobWithResult(); // warms the client's storage so both measured calls write the same slots
        // same callback work (memory growth to 256 KiB); one returns it all, one returns nothing
        client.setMode(MockClient.Mode.BigMemory);
        uint256 g0 = gasleft();
        _submit(a);
        uint256 quiet = g0 - gasleft();
        client.setMode(MockClient.Mode.HugeReturn);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(b, Outcome.Succeeded);
        g0 = gasleft();
        _submit(b);
        uint256 loud = g0 - gasleft();
        // copying 256 KiB into Lilypad's memory would cost more than 150k gas
        assertApproxEqAbs(loud, quiet, 2_000);
    }

    function test_RevertWhen_TooLittleGasForExpireCallback() public {
        uint256 jobId = _requestJob();
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        (bool ok, bytes memory err) = address(lilypad).call{gas: 300_000}(abi.encodeCall(lilypad.expire, (jobId)));
        assertFalse(ok);
        assertEq(bytes4(err), ILilypad.InsufficientGasForCallback.selector);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Requested));
        lilypad.expire(jobId);
        assertEq(client.callbackCount(jobId), 1);
    }

    // ------------------------------------------------------------------ unauthorised callers

    function test_RevertWhen_AnyoneButLilypadCallsTheClient() public {
        JobResult memory fake;
        fake.status = Outcome.Succeeded;
        vm.expectRevert(abi.encodeWithSelector(LilypadClient.OnlyLilypad.selector, alice));
        vm.prank(alice);
        client.onJobResult(1, fake);
    }

    /// The disputes code called on its own address would act on its own empty storage: it refuses.
    function test_RevertWhen_DisputesCodeIsCalledDirectly() public {
        LilypadDisputes disputes = LilypadDisputes(lilypad.disputes());
        vm.expectRevert(LilypadDisputes.OnlyThroughLilypad.selector);
        vm.prank(alice);
        disputes.resolveStaleChallenge(1);
    }

    function test_ClientHelperAppendsInputs() public {
        RequestBuilder b = new RequestBuilder(address(lilypad));
        JobRequest memory r = b.build();
        assertEq(r.inputs.length, 3);
        assertEq(r.inputs[0].key, "a");
        assertEq(r.inputs[2].value, "3");
        assertEq(r.callbackGasLimit, 300_000);
        assertEq(r.maxOutputBytes, 256);
        vm.prank(alice);
        lilypad.runJob(r); // the defaults pass the default parameters
    }

    function test_DeregisteredProviderStillDeliversRunningJob() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        vm.prank(provider);
        lilypad.deregisterProvider();
        _submit(jobId);
        client.accept(jobId);
        assertEq(lilypad.balanceOf(provider), PRICE - PRICE * FEE_BPS / 10_000);
    }

    function test_ProviderCannotWithdrawLockedCollateralToDodgeSlash() public {
        uint256 jobId = _requestJob();
        _agree(jobId);
        uint256 free = _free(provider);
        vm.prank(provider);
        lilypad.withdrawCollateral(free);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        lilypad.timeout(jobId);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + PRICE);
        assertEq(_locked(provider), 0);
    }

    function test_ClientCannotChallengeAfterAccepting() public {
        uint256 jobId = _jobWithResult();
        client.accept(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Settled));
        client.challenge(jobId);
    }

    function test_CallbackOrderIsResultThenVerdictNeverTwice() public {
        JobRequest memory r = _request();
        uint256 jobId = _requestJob(r);
        _agree(jobId);
        _submit(jobId);
        client.challenge(jobId);
        address[] memory chosen = _draw(jobId);
        _vote(jobId, chosen, _votes(keccak256("x"), keccak256("x"), keccak256("x")));
        vm.warp(block.timestamp + 10 days);
        vm.expectRevert();
        lilypad.resolveStaleChallenge(jobId);
        vm.expectRevert();
        lilypad.settle(jobId);
        Outcome[] memory seen = client.outcomes(jobId);
        assertEq(seen.length, 2);
        assertEq(uint8(seen[1]), uint8(Outcome.OverturnedByMediation));
    }
}

/// @dev Exposes LilypadClient's request builders.
contract RequestBuilder is LilypadClient {
    constructor(address lilypad_) LilypadClient(lilypad_) {}

    function build() external pure returns (JobRequest memory r) {
        r = _newRequest("cowsay", "1.0.0", 1 ether);
        r = _withInput(r, "a", "1");
        r = _withInput(r, "b", "2");
        r = _withInput(r, "c", "3");
    }

    function _onJobResult(uint256, JobResult calldata) internal override {}
}
