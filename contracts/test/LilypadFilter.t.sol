// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {Lilypad} from "../src/Lilypad.sol";
import {ILilypad, JobRequest, Deal, Outcome, JobStatus, AuditState, Params} from "../src/interfaces/ILilypad.sol";

/// @dev What a request may ask of the provider who takes it (named providers, a least record) and
///      the audit rate a client buys on top of the protocol's.
contract LilypadFilterTest is LilypadTestBase {
    function _onlyProvider2() internal view returns (JobRequest memory r) {
        r = _request();
        r.providers = new address[](1);
        r.providers[0] = provider2;
    }

    function _agreeAs(uint256 jobId, address who, uint256 key) internal {
        Deal memory d = _deal(jobId, who, PRICE);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(key, d));
    }

    function _expectRefusedDeal(uint256 jobId, address who, uint256 key, bytes memory err) internal {
        Deal memory d = _deal(jobId, who, PRICE);
        bytes memory signature = _signDeal(key, d);
        vm.expectRevert(err);
        vm.prank(relayer);
        lilypad.agreeDeal(d, signature);
    }

    /// @dev `provider` delivers one job and lets one time out: 1 delivered, 50% reliable.
    function _deliverOneAndTimeOutOne() internal {
        uint256 done = _jobWithResult();
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(done);
        uint256 late = _requestJob();
        _agree(late);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        lilypad.timeout(late);
    }

    function _setAuditBps(uint16 auditBps) internal {
        Params memory p = lilypad.params();
        p.auditBps = auditBps;
        vm.prank(owner);
        lilypad.setParams(p);
    }

    // ------------------------------------------------------------------ named providers

    function test_RequestNamingProviders_RefusesAnyOther() public {
        uint256 jobId = _requestJob(_onlyProvider2());
        _expectRefusedDeal(
            jobId, provider, providerKey, abi.encodeWithSelector(ILilypad.ProviderNotAccepted.selector, jobId, provider)
        );
        _agreeAs(jobId, provider2, provider2Key);
        assertEq(lilypad.getJob(jobId).provider, provider2);
    }

    function test_RequestNamingNoProvider_AcceptsAny() public {
        uint256 jobId = _requestJob();
        _agreeAs(jobId, provider2, provider2Key);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Agreed));
    }

    function test_RevertWhen_RequestNamesMoreThan16Providers() public {
        JobRequest memory r = _request();
        r.providers = new address[](17);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.TooManyProviders.selector, 17, 16));
        client.run(r);
    }

    // ------------------------------------------------------------------ a least record

    function test_RequestAskingDeliveredResults_RefusesANewcomerUntilItDelivered() public {
        JobRequest memory r = _request();
        r.minDelivered = 1;
        uint256 jobId = _requestJob(r);
        _expectRefusedDeal(
            jobId,
            provider,
            providerKey,
            abi.encodeWithSelector(ILilypad.RecordBelowMinimum.selector, provider, 0, 10_000)
        );
        _jobWithResult(); // a job any provider may take: its provider has delivered one result
        _agreeAs(jobId, provider, providerKey);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Agreed));
    }

    /// One timeout in two deals is 50% reliable: a request asking 50.01% refuses it, 50% takes it.
    function test_RequestAskingReliability_CountsTimeouts() public {
        _deliverOneAndTimeOutOne();
        JobRequest memory r = _request();
        r.minReliabilityBps = 5_001;
        uint256 strict = _requestJob(r);
        _expectRefusedDeal(
            strict,
            provider,
            providerKey,
            abi.encodeWithSelector(ILilypad.RecordBelowMinimum.selector, provider, 1, 5_000)
        );
        r.minReliabilityBps = 5_000;
        uint256 lenient = _requestJob(r);
        _agreeAs(lenient, provider, providerKey);
        assertEq(uint8(_status(lenient)), uint8(JobStatus.Agreed));
    }

    function test_RequestAskingReliability_CountsProviderErrors() public {
        _jobWithOutcome(Outcome.ProviderError);
        JobRequest memory r = _request();
        r.minReliabilityBps = 1;
        uint256 jobId = _requestJob(r);
        _expectRefusedDeal(
            jobId, provider, providerKey, abi.encodeWithSelector(ILilypad.RecordBelowMinimum.selector, provider, 0, 0)
        );
    }

    function test_RevertWhen_ReliabilityAbove100Percent() public {
        JobRequest memory r = _request();
        r.minReliabilityBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ReliabilityOutOfRange.selector, 10_001));
        client.run(r);
    }

    // ------------------------------------------------------------------ an extra audit rate

    /// At a protocol rate of 10% the floor is 9x; buying 40% more makes it 50%, whose floor is 1x.
    function test_ExtraAuditRate_LowersTheFloorAndItsPremiumFillsTheFundWhenTheJobSettles() public {
        _setAuditBps(1_000);
        JobRequest memory r = _request();
        r.resultsCollateralMultiplierBps = 10_000;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.CollateralBelowAuditBound.selector, 10_000, 90_000));
        client.run(r);

        r.extraAuditBps = 4_000;
        uint256 premium = lilypad.auditPremium(4_000);
        assertEq(premium, MEDIATION_FEE * 4_000 / 10_000);
        uint256 before = token.balanceOf(address(client));
        uint256 jobId = client.run(r);
        assertEq(before - token.balanceOf(address(client)), MAX_PRICE + premium, "maxPrice and the premium");
        assertEq(lilypad.getJob(jobId).auditBps, 5_000);
        assertEq(lilypad.auditFund(), 0, "held with the escrow until the job ends");

        Deal memory d = _deal(jobId);
        d.resultsCollateral = PRICE;
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        _submit(jobId);
        assertEq(lilypad.auditFund(), 0, "still held while the result waits");
        _hashGivingClear(jobId);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(lilypad.auditFund(), premium, "into the fund when it settles");
    }

    /// @dev Gives the job's seed block a hash whose draw passes the job over.
    function _hashGivingClear(uint256 jobId) internal {
        uint256 seedBlock = uint256(lilypad.getJob(jobId).executionTimeout) + lilypad.AUDIT_SEED_DELAY();
        vm.roll(seedBlock + 1);
        for (uint256 i; lilypad.auditState(jobId) != AuditState.Clear; ++i) {
            vm.setBlockhash(seedBlock, keccak256(abi.encode("clear", i)));
        }
    }

    function test_ExtraAuditPremium_IsRefundedWhenTheJobExpires() public {
        _setAuditBps(5_000);
        JobRequest memory r = _request();
        r.extraAuditBps = 5_000;
        uint256 premium = lilypad.auditPremium(5_000);
        uint256 jobId = client.run(r);
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        lilypad.expire(jobId);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + premium);
        assertEq(lilypad.auditFund(), 0);
    }

    function test_ExtraAuditPremium_IsRefundedWhenTheJobTimesOut() public {
        JobRequest memory r = _request();
        r.extraAuditBps = 2_500;
        r.resultsCollateralMultiplierBps = 30_000;
        uint256 premium = lilypad.auditPremium(2_500);
        uint256 jobId = client.run(r);
        Deal memory d = _deal(jobId);
        d.resultsCollateral = PRICE * 3;
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        lilypad.timeout(jobId);
        assertEq(lilypad.balanceOf(address(client)), MAX_PRICE + premium + PRICE, "refund, premium, collateral");
    }

    function test_RevertWhen_ExtraAuditRateTakesTheTotalAbove100Percent() public {
        _setAuditBps(5_000);
        JobRequest memory r = _request();
        r.extraAuditBps = 5_001;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ExtraAuditOutOfRange.selector, 5_001, 5_000));
        client.run(r);
    }

    function test_RevertWhen_ExtraAuditRateIsAskedOfANonDeterministicJob() public {
        JobRequest memory r = _request();
        r.deterministic = false;
        r.extraAuditBps = 1;
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ExtraAuditOutOfRange.selector, 1, 0));
        client.run(r);
    }

    function test_RevertWhen_ExtraAuditRateIsAskedWithNoMediation() public {
        Lilypad bare = new Lilypad(token, owner, treasury);
        JobRequest memory r = _request();
        r.extraAuditBps = 5_000;
        vm.expectRevert(ILilypad.NoMediation.selector);
        vm.prank(alice);
        bare.runJob(r);
    }

    // ------------------------------------------------------------------ recording passes in one call

    /// Of three results whose draw passed them over, one drawn and one still pending, clearAudits
    /// records the three passes only.
    function test_ClearAudits_RecordsEveryPassOnlyOnce() public {
        _setAuditBps(5_000);
        uint256[] memory ids = new uint256[](5);
        for (uint256 i; i < 4; ++i) {
            ids[i] = _jobWithResult();
        }
        uint256 seedBlock = uint256(lilypad.getJob(ids[0]).executionTimeout) + lilypad.AUDIT_SEED_DELAY();
        vm.roll(seedBlock + 1);
        uint256 clear;
        uint256 due;
        for (uint256 i;; ++i) {
            vm.setBlockhash(seedBlock, keccak256(abi.encode("seed", i)));
            (clear, due) = (0, 0);
            for (uint256 j; j < 4; ++j) {
                AuditState s = lilypad.auditState(ids[j]);
                if (s == AuditState.Clear) ++clear;
                else ++due;
            }
            if (clear == 3) break;
        }
        ids[4] = ids[0]; // listed twice
        uint256 pending = _jobWithResult();
        uint256[] memory all = new uint256[](6);
        for (uint256 i; i < 5; ++i) {
            all[i] = ids[i];
        }
        all[5] = pending;
        assertEq(lilypad.clearAudits(all), 3);
        for (uint256 j; j < 4; ++j) {
            AuditState s = lilypad.auditState(ids[j]);
            assertTrue(s == AuditState.None || s == AuditState.Due, "passes recorded, the drawn one still due");
        }
        assertEq(uint8(lilypad.auditState(pending)), uint8(AuditState.Pending));
    }
}
