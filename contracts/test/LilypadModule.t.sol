// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {ILilypad, JobRequest, JobStatus, Deal} from "../src/interfaces/ILilypad.sol";

/// @dev Modules addressed by content: the request's module id binds the deal, and only a
///      deterministic request can be challenged.
contract LilypadModuleTest is LilypadTestBase {
    function test_Job_RecordsWhetherItsRequestIsDeterministic() public {
        uint256 pinned = _requestJob();
        assertTrue(lilypad.getJob(pinned).deterministic);
        JobRequest memory r = _request();
        r.deterministic = false;
        assertFalse(lilypad.getJob(_requestJob(r)).deterministic);
    }

    function test_RevertWhen_DeterministicRequestLeavesTheModuleUnpinned() public {
        JobRequest memory r = _request();
        r.moduleId = bytes32(0);
        vm.expectRevert(ILilypad.UnpinnedDeterministicModule.selector);
        vm.prank(alice);
        lilypad.runJob(r);
    }

    function test_UnpinnedNonDeterministicRequest_IsAccepted() public {
        JobRequest memory r = _request();
        r.moduleId = bytes32(0);
        r.deterministic = false;
        uint256 jobId = _requestJob(r);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Requested));
    }

    function test_RevertWhen_ChallengingANonDeterministicJob() public {
        JobRequest memory r = _request();
        r.deterministic = false;
        uint256 jobId = _requestJob(r);
        _agree(jobId);
        _submit(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotDeterministic.selector, jobId));
        client.challenge(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
    }

    function test_RevertWhen_DealSignedForAnotherModuleId() public {
        uint256 jobId = _requestJob();
        // The provider's definition has another id: the request it would sign for differs, so
        // its deal names another request hash and the contract refuses it.
        JobRequest memory theirs = _request();
        theirs.moduleId = keccak256("a look-alike cowsay module");
        Deal memory d = _deal(jobId);
        bytes32 expected = d.requestHash;
        d.requestHash = keccak256(abi.encode(theirs));
        bytes memory sig = _signDeal(providerKey, d);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.RequestHashMismatch.selector, jobId, expected, d.requestHash));
        vm.prank(relayer);
        lilypad.agreeDeal(d, sig);
    }

    function test_RequestHash_CoversTheModuleIdAndDeterminism() public {
        JobRequest memory r = _request();
        bytes32 h = lilypad.getJob(_requestJob(r)).requestHash;
        r.moduleId = keccak256("another definition");
        assertTrue(lilypad.getJob(_requestJob(r)).requestHash != h);
        r = _request();
        r.deterministic = false;
        assertTrue(lilypad.getJob(_requestJob(r)).requestHash != h);
    }
}
