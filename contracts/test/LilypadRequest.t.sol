// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {ILilypad, InputParam, JobRequest, JobStatus, Job, Params} from "../src/interfaces/ILilypad.sol";

contract LilypadRequestTest is LilypadTestBase {
    function test_RunJob_EscrowsAndStoresPackedJob() public {
        JobRequest memory r = _request();
        uint256 before = token.balanceOf(address(client));
        uint256 jobId = _requestJob(r);
        assertEq(jobId, 1);
        assertEq(lilypad.requestCount(), 1);
        assertEq(token.balanceOf(address(lilypad)), MAX_PRICE + 2 * PROVIDER_COLLATERAL);
        assertEq(token.balanceOf(address(client)), before - MAX_PRICE);

        Job memory job = lilypad.getJob(jobId);
        assertEq(job.client, address(client));
        assertEq(uint8(job.status), uint8(JobStatus.Requested));
        assertEq(job.deadline, block.timestamp + MATCH_TIMEOUT);
        assertEq(job.callbackGasLimit, CALLBACK_GAS);
        assertEq(lilypad.termsOf(job.terms).feeBps, FEE_BPS);
        assertEq(job.requestHash, keccak256(abi.encode(r)));
        assertEq(job.maxPrice, MAX_PRICE);
        assertEq(job.executionTimeout, EXECUTION_TIMEOUT);
        assertEq(job.challengeWindow, CHALLENGE_WINDOW);
        assertEq(job.maxOutputBytes, 1024);
        assertEq(job.resultsCollateralBps, 20_000);
        assertEq(job.timeoutCollateralBps, 10_000);
        assertEq(job.provider, address(0));
    }

    function test_RunJob_EmitsFullRequestWithSequence() public {
        JobRequest memory r = _request();
        vm.expectEmit(address(lilypad));
        emit ILilypad.JobRequested(1, address(client), 1, keccak256(abi.encode(r)), r);
        _requestJob(r);

        vm.expectEmit(address(lilypad));
        emit ILilypad.JobRequested(2, alice, 2, keccak256(abi.encode(r)), r);
        vm.prank(alice);
        lilypad.runJob(r);
    }

    function test_RunJob_SequenceIncreasesByOne() public {
        for (uint256 i = 1; i <= 5; ++i) {
            assertEq(_requestJob(), i);
            assertEq(lilypad.requestCount(), i);
        }
    }

    function test_RunJob_ValuesMayHoldEqualsSpacesAndUnicode() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](3);
        r.inputs[0] = InputParam({key: "a", value: "x=y z=w"});
        r.inputs[1] = InputParam({key: "b.c-d_E9", value: unicode"héllo wörld 🐄"});
        r.inputs[2] = InputParam({key: "empty", value: ""});
        uint256 jobId = _requestJob(r);
        assertEq(lilypad.getJob(jobId).requestHash, keccak256(abi.encode(r)));
    }

    function test_RunJob_NoInputsIsFine() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](0);
        _requestJob(r);
    }

    function test_RunJob_AtEveryLimit() public {
        JobRequest memory r = _request();
        r.module = string(new bytes(128));
        bytes(r.module)[0] = "m";
        r.version = string(_filled(64, "v"));
        r.inputs = new InputParam[](32);
        for (uint256 i; i < 32; ++i) {
            bytes memory key = _filled(64, "k");
            key[0] = bytes("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")[i]; // distinct keys
            r.inputs[i] = InputParam({key: string(key), value: string(_filled(i < 3 ? 4096 : 64, "v"))});
        }
        // 32 * 64 key bytes + 3 * 4096 + 29 * 64 value bytes = 16192 <= 16384
        r.callbackGasLimit = 2_000_000;
        r.maxOutputBytes = 4096;
        r.matchTimeout = 7 days;
        r.executionTimeout = 10;
        r.challengeWindow = 30 days;
        r.resultsCollateralMultiplierBps = 100_000;
        r.maxPrice = type(uint96).max;
        _fund(address(client), type(uint96).max);
        _requestJob(r);
    }

    function test_RunJob_FromEOA() public {
        JobRequest memory r = _request();
        r.callbackGasLimit = 0;
        vm.prank(alice);
        uint256 jobId = lilypad.runJob(r);
        assertEq(lilypad.getJob(jobId).client, alice);
    }

    // ------------------------------------------------------------------ malformed requests

    function _expectRunRevert(JobRequest memory r, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(alice);
        lilypad.runJob(r);
    }

    function test_RevertWhen_EmptyModule() public {
        JobRequest memory r = _request();
        r.module = "";
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.EmptyModule.selector));
    }

    function test_RevertWhen_ModuleTooLong() public {
        JobRequest memory r = _request();
        r.module = string(_filled(129, "m"));
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.ModuleTooLong.selector, 129, 128));
    }

    function test_RevertWhen_EmptyVersion() public {
        JobRequest memory r = _request();
        r.version = "";
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.EmptyVersion.selector));
    }

    function test_RevertWhen_VersionTooLong() public {
        JobRequest memory r = _request();
        r.version = string(_filled(65, "v"));
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.VersionTooLong.selector, 65, 64));
    }

    function test_RevertWhen_TooManyInputs() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](33);
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.TooManyInputs.selector, 33, 32));
    }

    function test_RevertWhen_EmptyInputKey() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](2);
        r.inputs[0] = InputParam({key: "a", value: "1"});
        r.inputs[1] = InputParam({key: "", value: "2"});
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.EmptyInputKey.selector, 1));
    }

    function test_RevertWhen_InputKeyTooLong() public {
        JobRequest memory r = _request();
        r.inputs[0].key = string(_filled(65, "k"));
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.InputKeyTooLong.selector, 0, 65, 64));
    }

    function test_RevertWhen_InputKeyHasBadCharacter() public {
        string[6] memory bad = ["a=b", "a b", "a/b", unicode"é", "a\nb", "k$"];
        uint256[6] memory pos = [uint256(1), 1, 1, 0, 1, 1];
        for (uint256 i; i < bad.length; ++i) {
            JobRequest memory r = _request();
            r.inputs[0].key = bad[i];
            _expectRunRevert(r, abi.encodeWithSelector(ILilypad.InvalidInputKey.selector, 0, pos[i]));
        }
    }

    function test_RevertWhen_InputValueTooLarge() public {
        JobRequest memory r = _request();
        r.inputs[0].value = string(new bytes(4097));
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.InputTooLarge.selector, 0, 4097, 4096));
    }

    function test_RevertWhen_InputsTooLargeInTotal() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](5);
        for (uint256 i; i < 5; ++i) {
            r.inputs[i] =
                InputParam({key: string(abi.encodePacked(bytes1(uint8(97 + i)))), value: string(new bytes(4000))});
        }
        r.inputs[4].value = string(new bytes(379)); // 5 keys + 4*4000 + 379 = 16384: fits
        _requestJob(r);
        r.inputs[4].value = string(new bytes(380));
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.InputsTooLarge.selector, 16385, 16384));
    }

    function test_RevertWhen_DuplicateInputKey() public {
        JobRequest memory r = _request();
        r.inputs = new InputParam[](3);
        r.inputs[0] = InputParam({key: "a", value: "1"});
        r.inputs[1] = InputParam({key: "b", value: "2"});
        r.inputs[2] = InputParam({key: "a", value: "3"});
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.DuplicateInputKey.selector, 2));
    }

    function test_RevertWhen_MaxPriceOverflowsUint96() public {
        JobRequest memory r = _request();
        r.maxPrice = uint256(type(uint96).max) + 1;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.AmountTooLarge.selector, r.maxPrice, type(uint96).max));
    }

    function test_RevertWhen_CallbackGasTooHigh() public {
        JobRequest memory r = _request();
        r.callbackGasLimit = 2_000_001;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.CallbackGasTooHigh.selector, 2_000_001, 2_000_000));
    }

    function test_RevertWhen_MaxOutputBytesTooHigh() public {
        JobRequest memory r = _request();
        r.maxOutputBytes = 4097;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.MaxOutputBytesTooHigh.selector, 4097, 4096));
    }

    function test_RevertWhen_MatchTimeoutOutOfRange() public {
        JobRequest memory r = _request();
        r.matchTimeout = 9;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.MatchTimeoutOutOfRange.selector, 9, 10, 7 days));
        r.matchTimeout = 7 days + 1;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.MatchTimeoutOutOfRange.selector, 7 days + 1, 10, 7 days));
    }

    function test_RevertWhen_ExecutionTimeoutOutOfRange() public {
        JobRequest memory r = _request();
        r.executionTimeout = 0;
        _expectRunRevert(r, abi.encodeWithSelector(ILilypad.ExecutionTimeoutOutOfRange.selector, 0, 10, 7 days));
        r.executionTimeout = 7 days + 1;
        _expectRunRevert(
            r, abi.encodeWithSelector(ILilypad.ExecutionTimeoutOutOfRange.selector, 7 days + 1, 10, 7 days)
        );
    }

    function test_RevertWhen_ChallengeWindowOutOfRange() public {
        JobRequest memory r = _request();
        r.challengeWindow = 30 days + 1;
        _expectRunRevert(
            r, abi.encodeWithSelector(ILilypad.ChallengeWindowOutOfRange.selector, 30 days + 1, 0, 30 days)
        );
    }

    function test_RevertWhen_ResultsCollateralMultiplierOutOfRange() public {
        JobRequest memory r = _request();
        r.resultsCollateralMultiplierBps = 100_001;
        _expectRunRevert(
            r, abi.encodeWithSelector(ILilypad.ResultsCollateralMultiplierOutOfRange.selector, 100_001, 0, 100_000)
        );
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.minResultsCollateralBps = 10_000;
        lilypad.setParams(p);
        vm.stopPrank();
        r.resultsCollateralMultiplierBps = 9_999;
        _expectRunRevert(
            r, abi.encodeWithSelector(ILilypad.ResultsCollateralMultiplierOutOfRange.selector, 9_999, 10_000, 100_000)
        );
    }

    function test_RevertWhen_NotApproved() public {
        address bob = makeAddr("bob");
        _fund(bob, MAX_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(lilypad), 0, MAX_PRICE)
        );
        vm.prank(bob);
        lilypad.runJob(_request());
        assertEq(lilypad.requestCount(), 0);
    }

    function test_RevertWhen_BalanceTooLow() public {
        address bob = makeAddr("bob");
        vm.startPrank(bob);
        token.approve(address(lilypad), MAX_PRICE);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, bob, 0, MAX_PRICE));
        lilypad.runJob(_request());
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_RunJob_EscrowsExactlyMaxPrice(uint96 maxPrice, uint32 matchTimeout) public {
        matchTimeout = uint32(bound(matchTimeout, 10, 7 days));
        JobRequest memory r = _request();
        r.maxPrice = maxPrice;
        r.matchTimeout = matchTimeout;
        _fund(alice, maxPrice);
        uint256 before = token.balanceOf(address(lilypad));
        vm.prank(alice);
        uint256 jobId = lilypad.runJob(r);
        assertEq(token.balanceOf(address(lilypad)) - before, maxPrice);
        assertEq(lilypad.getJob(jobId).deadline, block.timestamp + matchTimeout);
        assertEq(lilypad.getJob(jobId).maxPrice, maxPrice);
    }

    function testFuzz_RunJob_KeyCharset(bytes1 c) public {
        JobRequest memory r = _request();
        r.inputs[0].key = string(abi.encodePacked("k", c));
        bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
            || c == ".";
        if (!ok) vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidInputKey.selector, 0, 1));
        vm.prank(alice);
        lilypad.runJob(r);
    }

    function _filled(uint256 n, bytes1 c) internal pure returns (bytes memory b) {
        b = new bytes(n);
        for (uint256 i; i < n; ++i) {
            b[i] = c;
        }
    }
}
