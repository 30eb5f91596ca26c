// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {MockClient} from "./utils/MockClient.sol";
import {ILilypad, JobRequest, ResultData, JobResult, Outcome, JobStatus, Job} from "../src/interfaces/ILilypad.sol";

contract LilypadResultTest is LilypadTestBase {
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        jobId = _requestJob();
        _agree(jobId);
    }

    function _submitSigned(ResultData memory r, bytes memory output) internal {
        vm.prank(relayer);
        lilypad.submitResult(r, output, _signResult(providerKey, r, output));
    }

    function _expectResultRevert(ResultData memory r, bytes memory output, bytes memory err) internal {
        bytes memory sig = _signResult(providerKey, r, output);
        vm.expectRevert(err);
        vm.prank(relayer);
        lilypad.submitResult(r, output, sig);
    }

    function test_SubmitResult_SwapsCollateralOpensWindowAndCallsBack() public {
        ResultData memory r = _result(jobId);
        vm.expectEmit(address(lilypad));
        emit ILilypad.ResultSubmitted(jobId, provider, r, OUTPUT, uint64(block.timestamp + CHALLENGE_WINDOW));
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.Succeeded);
        _submitSigned(r, OUTPUT);

        Job memory job = lilypad.getJob(jobId);
        assertEq(uint8(job.status), uint8(JobStatus.ResultSubmitted));
        assertEq(job.deadline, block.timestamp + CHALLENGE_WINDOW);
        assertEq(job.resultHash, _commitment(r, OUTPUT));
        assertEq(job.resultHash, lilypad.resultCommitment(r.status, r.exitCode, r.resultCid, keccak256(OUTPUT)));
        assertEq(_locked(provider), 2 * PRICE);
        assertEq(_free(provider), PROVIDER_COLLATERAL - 2 * PRICE);

        assertEq(client.callbackCount(jobId), 1);
        JobResult memory got = client.last(jobId);
        assertEq(uint8(got.status), uint8(Outcome.Succeeded));
        assertEq(got.resultCid, CID);
        assertEq(got.output, OUTPUT);
        assertEq(got.exitCode, 0);
        assertEq(got.error, "");
    }

    function test_NegativeExitCodeIsSignedSignExtended() public {
        // int32 is encoded as a sign-extended 32-byte word, as EIP-712 requires
        ResultData memory r = _result(jobId);
        r.status = uint8(Outcome.JobFailed);
        r.exitCode = -7;
        r.error = "boom";
        _submitSigned(r, OUTPUT);
        assertEq(client.last(jobId).exitCode, -7);
    }

    function test_SubmitResult_JobFailedCarriesExitCodeAndError() public {
        ResultData memory r = _result(jobId);
        r.status = uint8(Outcome.JobFailed);
        r.exitCode = 137;
        r.error = "killed";
        _submitSigned(r, "partial");
        JobResult memory got = client.last(jobId);
        assertEq(uint8(got.status), uint8(Outcome.JobFailed));
        assertEq(got.exitCode, 137);
        assertEq(got.error, "killed");
        assertEq(got.output, "partial");
    }

    function test_SubmitResult_ProviderErrorWithoutCid() public {
        ResultData memory r = _result(jobId);
        r.status = uint8(Outcome.ProviderError);
        r.resultCid = "";
        r.exitCode = -1;
        r.error = "image not found: cowsay:v0.1.0";
        _submitSigned(r, "");
        assertEq(uint8(client.last(jobId).status), uint8(Outcome.ProviderError));
        assertEq(client.last(jobId).error, "image not found: cowsay:v0.1.0");
    }

    function test_SubmitResult_OutputAtMaxBytes() public {
        _submitSigned(_result(jobId), new bytes(1024));
    }

    function test_RevertWhen_ProviderCannotLockResultsCollateral() public {
        // results collateral (2x) exceeds the timeout collateral (1x) being released: the provider
        // needs PRICE more free collateral at submission
        uint256 excess = _free(provider) - (PRICE - 1);
        vm.prank(provider);
        lilypad.withdrawCollateral(excess);
        _expectResultRevert(
            _result(jobId),
            OUTPUT,
            abi.encodeWithSelector(ILilypad.InsufficientCollateral.selector, provider, 2 * PRICE, 2 * PRICE - 1)
        );
    }

    // ------------------------------------------------------------------ reverts

    function test_RevertWhen_NotAgreed() public {
        uint256 fresh = _requestJob();
        _expectResultRevert(
            _result(fresh),
            OUTPUT,
            abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, fresh, JobStatus.Requested)
        );
        _expectResultRevert(_result(77), OUTPUT, abi.encodeWithSelector(ILilypad.JobNotFound.selector, 77));
    }

    function test_RevertWhen_ResultSubmittedTwice() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        lilypad.submitResult(r, OUTPUT, sig);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.ResultSubmitted));
        lilypad.submitResult(r, OUTPUT, sig);
        assertEq(client.callbackCount(jobId), 1);
    }

    function test_RevertWhen_ExecutionDeadlinePassed() public {
        uint256 deadline = lilypad.getJob(jobId).deadline;
        vm.warp(deadline);
        _expectResultRevert(
            _result(jobId), OUTPUT, abi.encodeWithSelector(ILilypad.DeadlinePassed.selector, jobId, deadline)
        );
    }

    function test_RevertWhen_InvalidStatus() public {
        ResultData memory r = _result(jobId);
        r.status = 0;
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.InvalidResultStatus.selector, 0));
        r.status = uint8(Outcome.Expired);
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.InvalidResultStatus.selector, 4));
        r.status = 255;
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.InvalidResultStatus.selector, 255));
    }

    function test_RevertWhen_ExitCodeContradictsStatus() public {
        ResultData memory r = _result(jobId);
        r.exitCode = 1;
        _expectResultRevert(
            r, OUTPUT, abi.encodeWithSelector(ILilypad.ExitCodeMismatch.selector, Outcome.Succeeded, int32(1))
        );
        r.status = uint8(Outcome.JobFailed);
        r.exitCode = 0;
        _expectResultRevert(
            r, OUTPUT, abi.encodeWithSelector(ILilypad.ExitCodeMismatch.selector, Outcome.JobFailed, int32(0))
        );
    }

    function test_RevertWhen_SucceededWithoutCid() public {
        ResultData memory r = _result(jobId);
        r.resultCid = "";
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.MissingResultCid.selector));
    }

    function test_RevertWhen_ProviderErrorWithoutText() public {
        ResultData memory r = _result(jobId);
        r.status = uint8(Outcome.ProviderError);
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.MissingErrorText.selector));
    }

    function test_RevertWhen_CidTooLong() public {
        ResultData memory r = _result(jobId);
        r.resultCid = new bytes(129);
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.ResultCidTooLong.selector, 129, 128));
    }

    function test_RevertWhen_ErrorTooLong() public {
        ResultData memory r = _result(jobId);
        r.status = uint8(Outcome.ProviderError);
        r.error = string(new bytes(1025));
        _expectResultRevert(r, OUTPUT, abi.encodeWithSelector(ILilypad.ErrorTextTooLong.selector, 1025, 1024));
    }

    function test_RevertWhen_OutputLargerThanClientAllows() public {
        _expectResultRevert(
            _result(jobId), new bytes(1025), abi.encodeWithSelector(ILilypad.OutputTooLarge.selector, 1025, 1024)
        );
    }

    function test_RevertWhen_ResultSignedBySomeoneElse() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(provider2Key, r, OUTPUT);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(r, OUTPUT, sig);
    }

    function test_RevertWhen_RelayerSwapsOutputOrCid() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(r, "forged output", sig);
        ResultData memory forged = _result(jobId);
        forged.resultCid = "bafyforged";
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(forged, OUTPUT, sig);
        forged = _result(jobId);
        forged.status = uint8(Outcome.JobFailed);
        forged.exitCode = 1;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(forged, OUTPUT, sig);
    }

    function test_RevertWhen_ResultSignatureReplayedForAnotherJob() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        lilypad.submitResult(r, OUTPUT, sig);
        uint256 second = _requestJob();
        _agree(second);
        r.jobId = second;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(r, OUTPUT, sig);
    }

    function test_RevertWhen_ResultSignatureReplayedOnAnotherChain() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        vm.chainId(137);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(r, OUTPUT, sig);
    }

    function test_RevertWhen_DealSignatureUsedAsResult() public {
        // a signature over the Deal type never verifies as a Result
        bytes memory dealSig = _signDeal(providerKey, _deal(jobId));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        lilypad.submitResult(_result(jobId), OUTPUT, dealSig);
    }

    // ------------------------------------------------------------------ callback gas

    function test_CallbackGetsExactlyItsGasLimit() public {
        _submit(jobId);
        uint256 atEntry = client.gasAtEntry();
        assertLe(atEntry, CALLBACK_GAS);
        // what the callback had on entry is its limit minus the ABI decoding of the call
        assertGt(atEntry, CALLBACK_GAS - 10_000);
    }

    function test_RevertWhen_RelayerSendsTooLittleGasForCallback() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        vm.prank(relayer);
        // enough for everything but the callback's 500k
        (bool ok, bytes memory err) =
            address(lilypad).call{gas: 400_000}(abi.encodeCall(lilypad.submitResult, (r, OUTPUT, sig)));
        assertFalse(ok);
        assertEq(bytes4(err), ILilypad.InsufficientGasForCallback.selector);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Agreed));
        assertEq(client.callbackCount(jobId), 0);
    }

    function test_JustEnoughGasDeliversTheFullLimit() public {
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        bytes memory call = abi.encodeCall(lilypad.submitResult, (r, OUTPUT, sig));
        uint256 snap = vm.snapshotState();
        // find the least gas the relayer can send for the transaction to succeed
        uint256 lo = 400_000;
        uint256 hi = 1_000_000;
        while (lo + 1 < hi) {
            uint256 mid = (lo + hi) / 2;
            (bool ok,) = address(lilypad).call{gas: mid}(call);
            vm.revertToState(snap);
            if (ok) hi = mid;
            else lo = mid;
        }
        client.setMode(MockClient.Mode.Burn);
        (bool success,) = address(lilypad).call{gas: hi}(call);
        assertTrue(success, "burning callback must not make the minimal-gas call fail");
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
        vm.revertToState(snap);
        client.setMode(MockClient.Mode.Record);
        (success,) = address(lilypad).call{gas: hi}(call);
        assertTrue(success);
        assertGt(client.gasAtEntry(), CALLBACK_GAS - 10_000, "callback was starved");
    }

    function test_ZeroCallbackGasSkipsTheCall() public {
        JobRequest memory req = _request();
        req.callbackGasLimit = 0;
        uint256 quiet = _requestJob(req);
        _agree(quiet);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackSkipped(quiet, Outcome.Succeeded);
        _submit(quiet);
        assertEq(client.callbackCount(quiet), 0);
    }

    function test_EOAClientCallbackIsDelivered() public {
        JobRequest memory req = _request();
        vm.prank(alice);
        uint256 eoaJob = lilypad.runJob(req);
        _agree(eoaJob);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(eoaJob, Outcome.Succeeded);
        _submit(eoaJob);
    }

    function testFuzz_SubmitResult_Timing(uint256 elapsed) public {
        elapsed = bound(elapsed, 0, 2 * EXECUTION_TIMEOUT);
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, OUTPUT);
        uint256 deadline = lilypad.getJob(jobId).deadline;
        vm.warp(block.timestamp + elapsed);
        if (block.timestamp >= deadline) {
            vm.expectRevert(abi.encodeWithSelector(ILilypad.DeadlinePassed.selector, jobId, deadline));
        }
        lilypad.submitResult(r, OUTPUT, sig);
    }

    function testFuzz_SubmitResult_AnyOutputUpToTheLimit(bytes memory output, int32 exitCode) public {
        vm.assume(output.length <= 1024);
        ResultData memory r = _result(jobId);
        if (exitCode != 0) {
            r.status = uint8(Outcome.JobFailed);
            r.exitCode = exitCode;
        }
        _submitSigned(r, output);
        assertEq(client.last(jobId).output, output);
        assertEq(client.last(jobId).exitCode, exitCode);
    }
}
