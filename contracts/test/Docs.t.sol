// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {console} from "forge-std/console.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {MyClient} from "./docs/MyClient.sol";
import {ILilypad, Deal, Job, JobResult, ResultData, Outcome} from "../src/interfaces/ILilypad.sol";

/// @dev What docs/solidity.md promises a developer who copies its five-minute client: the
///      callback that stores the output and CID fits in `_newRequest`'s default gas, whatever
///      output the default `maxOutputBytes` lets through.
contract DocsTest is LilypadTestBase {
    MyClient internal mine;
    /// @dev A CIDv1 (base32, sha-256) as providers submit it: 59 bytes, the usual length.
    bytes internal constant REAL_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    function setUp() public override {
        super.setUp();
        mine = new MyClient(address(lilypad));
        _fund(address(mine), 100 ether);
    }

    function _output(uint256 n) internal pure returns (bytes memory out) {
        out = new bytes(n);
        for (uint256 i; i < n; ++i) {
            out[i] = bytes1(uint8(0x41 + (i % 26)));
        }
    }

    function test_FiveMinuteClient_GetsItsCallbackWithTheLargestDefaultOutput() public {
        uint256 jobId = mine.ask("hello");
        Job memory job = lilypad.getJob(jobId);
        Deal memory d = _deal(jobId, provider, 0.5 ether);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));

        bytes memory output = _output(job.maxOutputBytes);
        ResultData memory r = _result(jobId);
        r.resultCid = REAL_CID;
        vm.recordLogs();
        vm.prank(relayer);
        lilypad.submitResult(r, output, _signResult(providerKey, r, output));

        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            assertTrue(logs[i].topics[0] != ILilypad.CallbackFailed.selector, "the callback failed");
        }
        assertEq(mine.outputs(jobId), output);
        assertEq(mine.cids(jobId), string(REAL_CID));
    }

    /// @dev The least gas with which the five-minute client's callback stores `n` bytes of output
    ///      and a 59-byte CID into fresh (zero, cold) slots: what `callbackGasLimit` must be.
    ///      Each probe writes another job id, so every slot it stores is zero and cold.
    function _leastGas(uint256 firstJobId, uint256 n) internal returns (uint256) {
        JobResult memory result =
            JobResult({status: Outcome.Succeeded, resultCid: REAL_CID, output: _output(n), exitCode: 0, error: ""});
        (uint256 lo, uint256 hi) = (0, 3_000_000);
        for (uint256 jobId = firstJobId; hi - lo > 50; ++jobId) {
            uint256 mid = (lo + hi) / 2;
            vm.prank(address(lilypad));
            (bool ok,) = address(mine).call{gas: mid}(abi.encodeCall(mine.onJobResult, (jobId, result)));
            if (ok) hi = mid;
            else lo = mid;
        }
        return hi;
    }

    /// @dev The table in docs/solidity.md ("What a callback costs"): run with -vv to print it.
    function test_CallbackGas_GrowsWithTheStoredOutput() public {
        uint256[8] memory sizes = [uint256(0), 32, 128, 256, 512, 1024, 2048, 4096];
        uint256 previous;
        console.log("| output bytes stored | least callbackGasLimit |");
        for (uint256 i; i < sizes.length; ++i) {
            uint256 gas = _leastGas(1_000_000 * (i + 1), sizes[i]);
            console.log("|", sizes[i], "|", gas);
            assertGt(gas, previous, "storing more bytes costs more gas");
            previous = gas;
        }
    }
}
