// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {MockClient} from "./utils/MockClient.sol";
import {SilentMediation} from "./Mediation.t.sol";
import {ILilypad, JobRequest, ResultData, JobResult, Outcome, FailedCallback} from "../src/interfaces/ILilypad.sol";

/// @dev Re-delivery of a failed callback: once, only after a recorded failure, with the result
///      checked against the stored commitment.
contract LilypadRedeliverTest is LilypadTestBase {
    address internal stranger = makeAddr("stranger");

    /// @dev A job whose result callback failed because the client reverted.
    function _failedResult() internal returns (uint256 jobId, ResultData memory r) {
        client.setMode(MockClient.Mode.Revert);
        jobId = _requestJob();
        _agree(jobId);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(jobId, Outcome.Succeeded);
        r = _submit(jobId);
        client.setMode(MockClient.Mode.Record);
    }

    function _failed(uint256 jobId) internal view returns (FailedCallback memory) {
        return lilypad.failedCallback(jobId);
    }

    function test_AFailedResultCallbackIsRedeliveredOnceByAnyone() public {
        (uint256 jobId, ResultData memory r) = _failedResult();
        assertEq(uint8(_failed(jobId).status), uint8(Outcome.Succeeded));
        assertFalse(_failed(jobId).redelivered);
        assertEq(client.callbackCount(jobId), 0);

        r.error = "not committed to";
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.Succeeded);
        vm.prank(stranger);
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS);

        assertEq(client.callbackCount(jobId), 1);
        JobResult memory got = client.last(jobId);
        assertEq(uint8(got.status), uint8(Outcome.Succeeded));
        assertEq(got.resultCid, CID);
        assertEq(got.output, OUTPUT);
        assertEq(got.exitCode, 0);
        assertEq(got.error, "", "the error text is not committed to, so none is handed over");
        assertTrue(_failed(jobId).redelivered);

        vm.expectRevert(abi.encodeWithSelector(ILilypad.NoFailedCallback.selector, jobId));
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS);
        assertEq(client.callbackCount(jobId), 1, "exactly once");
    }

    function test_RevertWhen_RedeliveringACallbackThatDidNotFail() public {
        uint256 jobId = _jobWithResult();
        assertEq(client.callbackCount(jobId), 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NoFailedCallback.selector, jobId));
        lilypad.redeliverCallback(_result(jobId), OUTPUT, CALLBACK_GAS);
    }

    function test_RevertWhen_TheRedeliveredResultIsNotTheOneSubmitted() public {
        (uint256 jobId, ResultData memory r) = _failedResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ResultMismatch.selector, jobId));
        lilypad.redeliverCallback(r, "forged output", CALLBACK_GAS);

        ResultData memory forged = r;
        forged.resultCid = "bafyforged";
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ResultMismatch.selector, jobId));
        lilypad.redeliverCallback(forged, OUTPUT, CALLBACK_GAS);

        forged = _result(jobId);
        forged.status = uint8(Outcome.JobFailed);
        forged.exitCode = 1;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ResultMismatch.selector, jobId));
        lilypad.redeliverCallback(forged, OUTPUT, CALLBACK_GAS);
        assertFalse(_failed(jobId).redelivered, "a refused attempt uses nothing up");
    }

    function test_RevertWhen_RedeliveringWithLessGasThanTheJobAsked() public {
        (uint256 jobId, ResultData memory r) = _failedResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.CallbackGasTooLow.selector, CALLBACK_GAS - 1, CALLBACK_GAS));
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS - 1);
    }

    function test_ACallbackThatRanOutOfGasIsRedeliveredWithMoreGas() public {
        // 30k gas cannot store a result: the first delivery runs out of gas.
        JobRequest memory req = _request();
        req.callbackGasLimit = 30_000;
        uint256 jobId = _requestJob(req);
        _agree(jobId);
        ResultData memory r = _submit(jobId);
        assertEq(uint8(_failed(jobId).status), uint8(Outcome.Succeeded));
        assertEq(client.callbackCount(jobId), 0);

        vm.prank(address(client));
        lilypad.redeliverCallback(r, OUTPUT, 1_000_000);
        assertEq(client.callbackCount(jobId), 1);
        assertEq(client.last(jobId).output, OUTPUT);
    }

    function test_ARedeliveryThatFailsAgainIsNotRecordedAgain() public {
        (uint256 jobId, ResultData memory r) = _failedResult();
        client.setMode(MockClient.Mode.Revert);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackFailed(jobId, Outcome.Succeeded);
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS);
        assertTrue(_failed(jobId).redelivered);
        client.setMode(MockClient.Mode.Record);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NoFailedCallback.selector, jobId));
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS);
    }

    function test_AFailedExpiryCallbackIsRedeliveredWithoutAResult() public {
        client.setMode(MockClient.Mode.Revert);
        uint256 jobId = _requestJob();
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        lilypad.expire(jobId);
        assertEq(uint8(_failed(jobId).status), uint8(Outcome.Expired));
        client.setMode(MockClient.Mode.Record);

        // Only the job id is read for an outcome without a result.
        ResultData memory ignored = _result(jobId);
        ignored.resultCid = "anything";
        lilypad.redeliverCallback(ignored, "anything", CALLBACK_GAS);
        JobResult memory got = client.last(jobId);
        assertEq(uint8(got.status), uint8(Outcome.Expired));
        assertEq(got.resultCid, "");
        assertEq(got.output, "");
    }

    function test_AVerdictSupersedesAFailedResultCallback() public {
        SilentMediation silent = new SilentMediation();
        vm.prank(owner);
        lilypad.setMediation(address(silent));
        (uint256 jobId, ResultData memory r) = _failedResult();
        client.challenge(jobId);
        vm.prank(address(silent));
        lilypad.resolveChallenge(jobId, false, new address[](0));
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.OverturnedByMediation));

        assertEq(uint8(_failed(jobId).status), uint8(Outcome.None), "the overturned result is not handed over");
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NoFailedCallback.selector, jobId));
        lilypad.redeliverCallback(r, OUTPUT, CALLBACK_GAS);
    }
}
