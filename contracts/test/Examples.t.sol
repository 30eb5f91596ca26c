// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {LilypadClient} from "../src/LilypadClient.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";
import {Sha256Oracle} from "../src/examples/Sha256Oracle.sol";
import {PipelineClient} from "../src/examples/PipelineClient.sol";
import {
    ILilypad,
    InputParam,
    JobRequest,
    JobResult,
    ResultData,
    Outcome,
    JobStatus
} from "../src/interfaces/ILilypad.sol";

contract ExamplesTest is LilypadTestBase {
    CowsayClient internal cowsay;
    Sha256Oracle internal oracle;
    address internal dev = makeAddr("dev");

    function setUp() public override {
        super.setUp();
        cowsay = new CowsayClient(address(lilypad), dev, "cowsay", "1.0.0", MAX_PRICE);
        oracle = new Sha256Oracle(address(lilypad), dev, "sha256", "1.0.0", MAX_PRICE);
        vm.startPrank(alice);
        token.approve(address(cowsay), type(uint256).max);
        token.approve(address(oracle), type(uint256).max);
        vm.stopPrank();
    }

    function _deliver(uint256 jobId, ResultData memory r, bytes memory output) internal {
        _agree(jobId);
        r.jobId = jobId;
        vm.prank(relayer);
        lilypad.submitResult(r, output, _signResult(providerKey, r, output));
    }

    // ------------------------------------------------------------------ CowsayClient

    function test_Cowsay_RequestCarriesMessageAsInput() public {
        vm.prank(alice);
        uint256 jobId = cowsay.cowsay("hello = world, moo");
        JobRequest memory expected;
        expected.module = "cowsay";
        expected.version = "1.0.0";
        expected.inputs = new InputParam[](1);
        expected.inputs[0] = InputParam({key: "message", value: "hello = world, moo"});
        expected.maxPrice = MAX_PRICE;
        expected.matchTimeout = 10 minutes;
        expected.executionTimeout = 10 minutes;
        expected.callbackGasLimit = 900_000;
        expected.maxOutputBytes = 1_024;
        expected.resultsCollateralMultiplierBps = 20_000;
        expected.challengeWindow = 1 hours;
        assertEq(lilypad.getJob(jobId).requestHash, keccak256(abi.encode(expected)));
        assertEq(lilypad.getJob(jobId).client, address(cowsay));
    }

    function test_Cowsay_StoresCidAndOutput() public {
        vm.prank(alice);
        uint256 jobId = cowsay.cowsay("hello");
        _deliver(jobId, _result(jobId), OUTPUT);
        (Outcome status, int32 exitCode, string memory cid, string memory output, string memory err) =
            cowsay.answers(jobId);
        assertEq(uint8(status), uint8(Outcome.Succeeded));
        assertEq(exitCode, 0);
        assertEq(cid, string(CID));
        assertEq(output, string(OUTPUT));
        assertEq(err, "");
        assertEq(cowsay.outputOf(jobId), string(OUTPUT));
    }

    function test_Cowsay_FullOutputFitsItsCallbackGas() public {
        vm.prank(alice);
        uint256 jobId = cowsay.cowsay("hello");
        bytes memory big = new bytes(1024);
        for (uint256 i; i < big.length; ++i) {
            big[i] = "m";
        }
        _agree(jobId);
        ResultData memory r = _result(jobId);
        bytes memory sig = _signResult(providerKey, r, big);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CallbackDelivered(jobId, Outcome.Succeeded);
        lilypad.submitResult(r, big, sig);
        assertEq(bytes(cowsay.outputOf(jobId)).length, 1024);
    }

    function test_Cowsay_OwnerAcceptsAndSweepsRefund() public {
        vm.prank(alice);
        uint256 jobId = cowsay.cowsay("hello");
        _deliver(jobId, _result(jobId), OUTPUT);
        vm.prank(dev);
        cowsay.acceptResult(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
        vm.prank(dev);
        assertEq(cowsay.sweep(dev), MAX_PRICE - PRICE);
        assertEq(token.balanceOf(dev), MAX_PRICE - PRICE);
    }

    function test_Cowsay_ChallengeAndVerdictKeepsOutput() public {
        _fund(address(cowsay), MEDIATION_FEE);
        vm.prank(dev);
        cowsay.setModuleId(MODULE_ID);
        vm.prank(alice);
        uint256 jobId = cowsay.cowsay("hello");
        _deliver(jobId, _result(jobId), OUTPUT);
        vm.prank(dev);
        cowsay.challenge(jobId);
        address[] memory chosen = _draw(jobId);
        bytes32 h = keccak256("different");
        _vote(jobId, chosen, _votes(h, h, h));
        (Outcome status,,, string memory output,) = cowsay.answers(jobId);
        assertEq(uint8(status), uint8(Outcome.OverturnedByMediation));
        assertEq(output, string(OUTPUT));
    }

    function test_Cowsay_OnlyOwnerAdministers() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        cowsay.sweep(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        cowsay.challenge(1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        cowsay.acceptResult(1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        cowsay.setMaxPrice(1);
        vm.stopPrank();
        vm.prank(dev);
        cowsay.setMaxPrice(1 ether);
        assertEq(cowsay.maxPrice(), 1 ether);
    }

    function test_RevertWhen_StrangerCallsExampleCallbacks() public {
        JobResult memory fake;
        vm.expectRevert(abi.encodeWithSelector(LilypadClient.OnlyLilypad.selector, alice));
        vm.prank(alice);
        cowsay.onJobResult(1, fake);
        vm.expectRevert(abi.encodeWithSelector(LilypadClient.OnlyLilypad.selector, alice));
        vm.prank(alice);
        oracle.onJobResult(1, fake);
    }

    // ------------------------------------------------------------------ Sha256Oracle

    function test_Oracle_StoresParsedDigest() public {
        vm.prank(alice);
        uint256 jobId = oracle.requestDigest("abc");
        assertEq(uint8(_oracleState(jobId)), uint8(Sha256Oracle.AnswerState.Pending));
        bytes32 digest = sha256("abc");
        bytes memory printed = bytes(string.concat(_hex(digest), "\n"));
        _deliver(jobId, _result(jobId), printed);
        assertEq(oracle.digestOf(jobId), digest);
    }

    function test_Oracle_MalformedOutputIsRefused() public {
        vm.prank(alice);
        uint256 jobId = oracle.requestDigest("abc");
        _deliver(jobId, _result(jobId), "not a digest");
        assertEq(uint8(_oracleState(jobId)), uint8(Sha256Oracle.AnswerState.Malformed));
        vm.expectRevert(
            abi.encodeWithSelector(Sha256Oracle.NoDigest.selector, jobId, Sha256Oracle.AnswerState.Malformed)
        );
        oracle.digestOf(jobId);
    }

    function test_Oracle_FailureAndExpiryAreRecorded() public {
        vm.prank(alice);
        uint256 failed = oracle.requestDigest("abc");
        ResultData memory r = _result(failed);
        r.status = uint8(Outcome.JobFailed);
        r.exitCode = 1;
        _deliver(failed, r, "sha256sum: error");
        assertEq(uint8(_oracleState(failed)), uint8(Sha256Oracle.AnswerState.Failed));

        vm.prank(alice);
        uint256 expired = oracle.requestDigest("abc");
        vm.warp(block.timestamp + 10 minutes);
        lilypad.expire(expired);
        assertEq(uint8(_oracleState(expired)), uint8(Sha256Oracle.AnswerState.Failed));
    }

    function test_Oracle_OverturnedDigestIsDropped() public {
        vm.prank(alice);
        uint256 jobId = oracle.requestDigest("abc");
        _deliver(jobId, _result(jobId), bytes(_hex(sha256("abd"))));
        assertEq(uint8(_oracleState(jobId)), uint8(Sha256Oracle.AnswerState.Answered));
        // Sha256Oracle has no challenge entry point; deliver the verdict callback as Lilypad would
        JobResult memory verdict;
        verdict.status = Outcome.OverturnedByMediation;
        vm.prank(address(lilypad));
        oracle.onJobResult(jobId, verdict);
        assertEq(uint8(_oracleState(jobId)), uint8(Sha256Oracle.AnswerState.Failed));
    }

    function test_Oracle_OwnerSetsPriceAndSweeps() public {
        vm.prank(dev);
        oracle.setMaxPrice(2 ether);
        assertEq(oracle.maxPrice(), 2 ether);
        vm.prank(alice);
        uint256 jobId = oracle.requestDigest("abc");
        vm.warp(block.timestamp + 10 minutes);
        lilypad.expire(jobId);
        vm.prank(dev);
        assertEq(oracle.sweep(dev), 2 ether);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        oracle.sweep(alice);
    }

    function testFuzz_Oracle_ParseDigest(bytes32 d, bool prefix, bool upper, bool newline) public view {
        string memory h = _hex(d);
        if (upper) h = _upper(h);
        if (prefix) h = string.concat("0x", h);
        if (newline) h = string.concat("  ", h, "\r\n");
        (bool ok, bytes32 got) = oracle.parseDigest(bytes(h));
        assertTrue(ok);
        assertEq(got, d);
        (ok, got) = oracle.parseDigest(abi.encodePacked(d));
        assertTrue(ok);
        assertEq(got, d);
    }

    function test_Oracle_ParseDigestRejects() public view {
        bytes[4] memory bad = [bytes(""), bytes("0x12"), bytes(string.concat(_hex(bytes32(0)), "0")), new bytes(33)];
        for (uint256 i; i < bad.length; ++i) {
            (bool ok,) = oracle.parseDigest(bad[i]);
            assertFalse(ok);
        }
        bytes memory notHex = bytes(_hex(bytes32(0)));
        notHex[10] = "g";
        (bool ok2,) = oracle.parseDigest(notHex);
        assertFalse(ok2);
    }

    // ------------------------------------------------------------------ helpers

    // ------------------------------------------------------------------ PipelineClient

    function _pipelineClient() internal returns (PipelineClient pipe) {
        pipe = new PipelineClient(
            address(lilypad),
            dev,
            PipelineClient.Step({module: "sha256", version: "1.0.0", moduleId: bytes32(0), inputKey: "text"}),
            PipelineClient.Step({module: "read-cid", version: "1.0.0", moduleId: bytes32(0), inputKey: "data"}),
            MAX_PRICE
        );
        vm.prank(alice);
        token.approve(address(pipe), type(uint256).max);
    }

    /// Job B is requested with A's result CID as its input and the pipeline keeps B's output.
    function test_Pipeline_JobBReadsJobAsResultByCid() public {
        PipelineClient pipe = _pipelineClient();
        vm.prank(alice);
        uint256 id = pipe.start("abc");
        uint256 jobA = pipe.pipeline(id).jobA;
        vm.expectRevert(abi.encodeWithSelector(PipelineClient.NotReady.selector, id, PipelineClient.State.RunningA));
        pipe.next(id);
        _deliver(jobA, _result(jobA), OUTPUT);
        assertEq(uint8(pipe.pipeline(id).state), uint8(PipelineClient.State.AReady));

        uint256 jobB = pipe.next(id);
        JobRequest memory expected;
        expected.module = "read-cid";
        expected.version = "1.0.0";
        expected.inputs = new InputParam[](1);
        expected.inputs[0] = InputParam({key: "data", value: string.concat("ipfs://", string(CID))});
        expected.maxPrice = MAX_PRICE;
        expected.matchTimeout = 10 minutes;
        expected.executionTimeout = 10 minutes;
        expected.callbackGasLimit = 300_000;
        expected.maxOutputBytes = 256;
        expected.resultsCollateralMultiplierBps = 20_000;
        expected.challengeWindow = 1 hours;
        assertEq(lilypad.getJob(jobB).requestHash, keccak256(abi.encode(expected)), "B reads ipfs://<A's CID>");
        vm.expectRevert(abi.encodeWithSelector(PipelineClient.NotReady.selector, id, PipelineClient.State.RunningB));
        pipe.next(id);

        _deliver(jobB, _result(jobB), "ba7816bf\n");
        assertEq(uint8(pipe.pipeline(id).state), uint8(PipelineClient.State.Done));
        assertEq(pipe.outputOf(id), "ba7816bf\n");
    }

    /// A's result overturned after B started on it: the pipeline fails, whatever B returns.
    function test_Pipeline_FailsWhenJobAIsOverturned() public {
        PipelineClient pipe = _pipelineClient();
        vm.prank(alice);
        uint256 id = pipe.start("abc");
        uint256 jobA = pipe.pipeline(id).jobA;
        _deliver(jobA, _result(jobA), OUTPUT);
        pipe.next(id);
        vm.prank(address(lilypad));
        pipe.onJobResult(
            jobA, JobResult({status: Outcome.OverturnedByMediation, resultCid: "", output: "", exitCode: 0, error: ""})
        );
        assertEq(uint8(pipe.pipeline(id).state), uint8(PipelineClient.State.Failed));
    }

    function _oracleState(uint256 jobId) internal view returns (Sha256Oracle.AnswerState state) {
        (state,,) = oracle.answers(jobId);
    }

    function _hex(bytes32 d) internal pure returns (string memory) {
        bytes memory s = bytes(vm.toString(d)); // "0x" + 64 lowercase hex digits
        bytes memory out = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            out[i] = s[i + 2];
        }
        return string(out);
    }

    function _upper(string memory s) internal pure returns (string memory) {
        bytes memory b = bytes(s);
        for (uint256 i; i < b.length; ++i) {
            if (b[i] >= "a" && b[i] <= "f") b[i] = bytes1(uint8(b[i]) - 32);
        }
        return string(b);
    }
}
