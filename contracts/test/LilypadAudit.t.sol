// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {
    ILilypad,
    JobRequest,
    ResultData,
    Outcome,
    JobStatus,
    AuditState,
    Params,
    Reputation,
    Challenge
} from "../src/interfaces/ILilypad.sol";

/// @dev The protocol's audits: which results are drawn, what an audit does to a cheat, who pays
///      for it (the tax, the fund, the jackpot), and the collateral the audit rate requires.
contract LilypadAuditTest is LilypadTestBase {
    address internal auditor = makeAddr("auditor");
    bytes internal constant FORGED = " _______\n< hacked >\n -------\n";

    function _setAudits(uint16 auditBps, uint16 taxBps, uint16 jackpotBps) internal {
        Params memory p = lilypad.params();
        p.auditBps = auditBps;
        p.taxBps = taxBps;
        p.jackpotBps = jackpotBps;
        vm.prank(owner);
        lilypad.setParams(p);
    }

    function _seedBlock(uint256 jobId) internal view returns (uint256) {
        return uint256(lilypad.getJob(jobId).executionTimeout) + lilypad.AUDIT_SEED_DELAY();
    }

    /// @dev Moves past the seed block and gives it `hash`.
    function _rollPastSeed(uint256 jobId, bytes32 hash) internal {
        uint256 seedBlock = _seedBlock(jobId);
        vm.roll(seedBlock + 1);
        vm.setBlockhash(seedBlock, hash);
    }

    /// @dev A seed-block hash whose draw gives `wanted` for `jobId` (searched, deterministic).
    function _hashGiving(uint256 jobId, AuditState wanted) internal returns (bytes32 hash) {
        uint256 seedBlock = _seedBlock(jobId);
        vm.roll(seedBlock + 1);
        for (uint256 i;; ++i) {
            hash = keccak256(abi.encode("seed", i));
            vm.setBlockhash(seedBlock, hash);
            if (lilypad.auditState(jobId) == wanted) return hash;
        }
    }

    /// @dev A job whose provider reports `output` as the inline output of a Succeeded run.
    function _jobReporting(bytes memory output) internal returns (uint256 jobId, ResultData memory r) {
        jobId = _requestJob();
        _agree(jobId);
        r = _result(jobId);
        vm.prank(relayer);
        lilypad.submitResult(r, output, _signResult(providerKey, r, output));
    }

    /// @dev Opens the job's audit (it must be drawn) and has all three drawn mediators vote `vote`.
    function _auditAndVote(uint256 jobId, bytes32 vote) internal {
        vm.prank(auditor);
        assertTrue(lilypad.audit(jobId));
        address[] memory chosen = _draw(jobId);
        _vote(jobId, chosen, _votes(vote, vote, vote));
    }

    // ------------------------------------------------------------------ the draw

    /// Over 4000 seed hashes a 50% audit rate draws half of them (a binomial count: 5 standard
    /// deviations, 158, either side of 2000).
    function test_AuditDraw_IsUniformOverSeeds() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        uint256 seedBlock = _seedBlock(jobId);
        vm.roll(seedBlock + 1);
        uint256 due;
        uint256 n = 4_000;
        for (uint256 i; i < n; ++i) {
            vm.setBlockhash(seedBlock, keccak256(abi.encode("uniform", i)));
            AuditState s = lilypad.auditState(jobId);
            assertTrue(s == AuditState.Due || s == AuditState.Clear);
            if (s == AuditState.Due) ++due;
        }
        assertGe(due, 2_000 - 158);
        assertLe(due, 2_000 + 158);
    }

    /// At the result's block, and until its seed block exists, nobody (the provider included) can
    /// know the draw: it is Pending, and neither audit nor settle can act on it.
    function test_AuditDraw_IsUnknownWhenTheResultIsSubmitted() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        uint256 seedBlock = _seedBlock(jobId);
        assertEq(lilypad.getJob(jobId).executionTimeout, block.number, "the result's block is kept");
        assertEq(uint8(lilypad.auditState(jobId)), uint8(AuditState.Pending));
        vm.roll(seedBlock);
        assertEq(uint8(lilypad.auditState(jobId)), uint8(AuditState.Pending));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.AuditPending.selector, jobId, seedBlock));
        lilypad.audit(jobId);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.AuditPending.selector, jobId, seedBlock));
        lilypad.settle(jobId);
        // the same result is drawn or passed over depending only on the seed block's hash
        bytes32 drawn = _hashGiving(jobId, AuditState.Due);
        bytes32 passed = _hashGiving(jobId, AuditState.Clear);
        assertTrue(drawn != passed);
    }

    /// Waiting until the seed block's hash is gone does not avoid an audit: it makes one certain.
    function test_AuditDraw_WhoseHashIsGoneAudits() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        _hashGiving(jobId, AuditState.Clear);
        vm.roll(_seedBlock(jobId) + lilypad.BLOCKHASH_WINDOW() + 1);
        assertEq(uint8(lilypad.auditState(jobId)), uint8(AuditState.Due));
    }

    /// The EIP-2935 history contract's runtime code (as a Prague chain, anvil's included, has it).
    bytes internal constant HISTORY_CODE =
        hex"3373fffffffffffffffffffffffffffffffffffffffe14604657602036036042575f35600143038111604257611fff81430311604257611fff9006545f5260205ff35b5f5ffd5b5f35611fff60014303065500";

    /// On a chain with the block history contract, a draw past the EVM's 256 blocks is read from
    /// it (the same outcome as within them) until its 8191 blocks are over; then it audits.
    function test_AuditDraw_PastTheEvmsHashesIsReadFromTheBlockHistory() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        bytes32 hash = _hashGiving(jobId, AuditState.Clear);
        uint256 seedBlock = _seedBlock(jobId);
        vm.etch(lilypad.BLOCK_HISTORY(), HISTORY_CODE);
        // the history contract keeps block n's hash in slot n % 8191
        vm.store(lilypad.BLOCK_HISTORY(), bytes32(seedBlock % 8_191), hash);
        vm.roll(seedBlock + lilypad.BLOCKHASH_WINDOW() + 1);
        assertEq(uint8(lilypad.auditState(jobId)), uint8(AuditState.Clear), "read from the history");
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));

        uint256 late = _jobWithResult();
        _hashGiving(late, AuditState.Clear);
        vm.roll(_seedBlock(late) + lilypad.HISTORY_WINDOW() + 1);
        assertEq(uint8(lilypad.auditState(late)), uint8(AuditState.Due), "gone from the history too");
    }

    // ------------------------------------------------------------------ passed over

    /// A result the draw passed over settles as usual, once the window closes; audit() records it.
    function test_AuditPassedOver_SettlesAsUsual() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        _hashGiving(jobId, AuditState.Clear);
        vm.expectEmit(address(lilypad));
        emit ILilypad.AuditCleared(jobId);
        assertFalse(lilypad.audit(jobId));
        assertEq(lilypad.getJob(jobId).executionTimeout, type(uint32).max, "the pass recorded");
        assertEq(lilypad.getJob(jobId).auditBps, 5_000, "the rate kept");
        assertEq(uint8(lilypad.auditState(jobId)), uint8(AuditState.None));
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotAuditable.selector, jobId));
        lilypad.audit(jobId);
        vm.roll(block.number + 1_000); // the seed's hash is gone: the recorded draw still holds
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Settled));
    }

    /// A drawn result does not settle, alone or in a batch, until its audit ran.
    function test_RevertWhen_SettlingAResultDrawnForAudit() public {
        _setAudits(5_000, 0, 0);
        uint256 jobId = _jobWithResult();
        _hashGiving(jobId, AuditState.Due);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.AuditRequired.selector, jobId));
        lilypad.settle(jobId);
        uint256[] memory ids = new uint256[](1);
        ids[0] = jobId;
        assertEq(lilypad.settleMany(ids), 0);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.AuditRequired.selector, jobId));
        client.accept(jobId);
        assertEq(uint8(_status(jobId)), uint8(JobStatus.ResultSubmitted));
    }

    // ------------------------------------------------------------------ audited

    /// With p = 100% a cheat is caught with no client challenge: the provider is slashed as by an
    /// overturned challenge, the client gets its refund, the slash and the verdict's callback,
    /// the mediators their share, and the auditor half of the jackpot.
    function test_AuditedCheat_IsSlashedAndTheAuditorPaidFromTheJackpot() public {
        _setAudits(10_000, 0, 2_000);
        (uint256 jobId, ResultData memory r) = _jobReporting(FORGED);
        vm.roll(_seedBlock(jobId) + 1);
        uint256 clientBefore = lilypad.balanceOf(address(client));
        uint256 lockedBefore = _locked(provider);
        _auditAndVote(jobId, _commitment(r, OUTPUT)); // the mediators' re-runs print hello

        uint256 slashed = PRICE * 2;
        uint256 toMediators = slashed * 2_000 / 10_000; // the fund was empty: no fee
        uint256 added = slashed * 2_000 / 10_000;
        assertEq(uint8(_status(jobId)), uint8(JobStatus.Overturned));
        assertEq(_locked(provider), lockedBefore - slashed);
        assertEq(lilypad.balanceOf(address(client)) - clientBefore, MAX_PRICE + slashed - toMediators - added);
        assertEq(lilypad.balanceOf(auditor), added / 2);
        assertEq(lilypad.jackpot(), added - added / 2);
        Outcome[] memory seen = client.outcomes(jobId);
        assertEq(uint8(seen[seen.length - 1]), uint8(Outcome.OverturnedByMediation));
        Reputation memory rep = lilypad.reputationOf(provider);
        assertEq(rep.audited, 1);
        assertEq(rep.mediated, 0, "no client challenged");
        assertEq(rep.overturned, 1);
        assertEq(rep.passedAudits, 0);
        assertEq(rep.slashed, slashed);
    }

    /// An honest result's audit upholds it: it settles, its record counts a passed audit, and
    /// the mediators are paid from the audit fund that earlier jobs' tax filled.
    function test_AuditedHonestResult_IsUpheldAndTheFundPaysTheMediators() public {
        _setAudits(10_000, 1_000, 0);
        (uint256 first, ResultData memory r1) = _jobReporting(OUTPUT);
        vm.roll(_seedBlock(first) + 1);
        _auditAndVote(first, _commitment(r1, OUTPUT));
        assertEq(uint8(_status(first)), uint8(JobStatus.Settled));
        uint256 tax = PRICE * 1_000 / 10_000;
        assertEq(lilypad.auditFund(), tax, "the settled job paid its tax");

        (uint256 second, ResultData memory r2) = _jobReporting(OUTPUT);
        vm.roll(_seedBlock(second) + 1);
        vm.prank(auditor);
        lilypad.audit(second);
        Challenge memory c = lilypad.getChallenge(second);
        assertEq(c.fee, tax, "as much of the mediation fee as the fund holds");
        assertEq(c.auditor, auditor);
        assertEq(lilypad.auditFund(), 0);
        address[] memory chosen = _draw(second);
        uint256 before = lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]) + lilypad.balanceOf(chosen[2]);
        bytes32 h = _commitment(r2, OUTPUT);
        _vote(second, chosen, _votes(h, h, h));
        uint256 paid =
            lilypad.balanceOf(chosen[0]) + lilypad.balanceOf(chosen[1]) + lilypad.balanceOf(chosen[2]) - before;
        assertEq(paid, tax);
        assertEq(lilypad.auditFund(), tax, "the second job's tax");
        Reputation memory rep = lilypad.reputationOf(provider);
        assertEq(rep.audited, 2);
        assertEq(rep.passedAudits, 2);
        assertEq(rep.upheld, 2);
    }

    /// An audit nobody closed in time is closed as a stale challenge: its fee goes back to the
    /// audit fund, not to the client.
    function test_StaleAudit_ReturnsItsFeeToTheFund() public {
        _setAudits(10_000, 1_000, 0);
        (uint256 first, ResultData memory r1) = _jobReporting(OUTPUT);
        vm.roll(_seedBlock(first) + 1);
        _auditAndVote(first, _commitment(r1, OUTPUT));
        uint256 fund = lilypad.auditFund();
        uint256 second = _jobWithResult();
        vm.roll(_seedBlock(second) + 1);
        lilypad.audit(second);
        uint256 clientBefore = lilypad.balanceOf(address(client));
        vm.warp(lilypad.getJob(second).deadline + lilypad.STALE_CHALLENGE_GRACE());
        lilypad.resolveStaleChallenge(second);
        uint256 tax = PRICE * 1_000 / 10_000;
        assertEq(lilypad.auditFund(), fund + tax, "the fee came back, and the settled job's tax");
        assertEq(lilypad.balanceOf(address(client)) - clientBefore, MAX_PRICE - PRICE);
    }

    /// A client's own challenge pays the jackpot's half to the client.
    function test_ChallengeThatOverturns_PaysTheClientFromTheJackpot() public {
        _setAudits(0, 0, 2_500);
        (uint256 jobId, ResultData memory r) = _jobReporting(FORGED);
        uint256 clientBefore = lilypad.balanceOf(address(client));
        client.challenge(jobId);
        address[] memory chosen = _draw(jobId);
        bytes32 h = _commitment(r, OUTPUT);
        _vote(jobId, chosen, _votes(h, h, h));
        uint256 slashed = PRICE * 2;
        uint256 added = slashed * 2_500 / 10_000;
        uint256 toMediators = slashed * 2_000 / 10_000;
        assertEq(
            lilypad.balanceOf(address(client)) - clientBefore, MAX_PRICE + slashed - toMediators - added + added / 2
        );
        assertEq(lilypad.jackpot(), added - added / 2);
    }

    function test_RevertWhen_AuditingAJobAlreadyInMediation() public {
        _setAudits(10_000, 0, 0);
        uint256 jobId = _jobWithResult();
        vm.roll(_seedBlock(jobId) + 1);
        lilypad.audit(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotAuditable.selector, jobId));
        lilypad.audit(jobId);
    }

    // ------------------------------------------------------------------ who is audited and taxed

    /// A job that cannot be re-run (not deterministic) is never audited and pays no tax.
    function test_NonDeterministicJob_IsNeitherAuditedNorTaxed() public {
        _setAudits(10_000, 1_000, 0);
        JobRequest memory req = _request();
        req.deterministic = false;
        req.moduleId = bytes32(0);
        uint256 jobId = _requestJob(req);
        _agree(jobId);
        _submit(jobId);
        assertEq(lilypad.getJob(jobId).auditBps, 0);
        vm.roll(block.number + 10);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotAuditable.selector, jobId));
        lilypad.audit(jobId);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(lilypad.auditFund(), 0);
        assertEq(lilypad.balanceOf(provider), PRICE - PRICE * FEE_BPS / 10_000);
    }

    /// Fee, tax, jackpot share and audit rate are the ones in force when the job was requested.
    function test_OpenJob_KeepsTheTermsItWasRequestedUnder() public {
        _setAudits(5_000, 500, 1_000);
        uint256 jobId = _jobWithResult();
        Params memory p = lilypad.params();
        p.protocolFeeBps = 1_000;
        p.taxBps = 3_000;
        p.auditBps = 10_000;
        vm.prank(owner);
        lilypad.setParams(p);
        assertEq(lilypad.getJob(jobId).auditBps, 5_000);
        _hashGiving(jobId, AuditState.Clear);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(jobId);
        assertEq(lilypad.balanceOf(treasury), PRICE * FEE_BPS / 10_000);
        assertEq(lilypad.auditFund(), PRICE * 500 / 10_000);
        assertEq(lilypad.balanceOf(provider), PRICE - PRICE * FEE_BPS / 10_000 - PRICE * 500 / 10_000);
    }

    // ------------------------------------------------------------------ collateral from the audit rate

    /// Audited 10% of the time, a deterministic job must lock at least 9x its price.
    function test_RevertWhen_CollateralIsBelowTheAuditBound() public {
        _setAudits(1_000, 0, 0);
        JobRequest memory req = _request(); // 2x
        vm.expectRevert(abi.encodeWithSelector(ILilypad.CollateralBelowAuditBound.selector, 20_000, 90_000));
        _requestJob(req);
        req.resultsCollateralMultiplierBps = 90_000;
        uint256 jobId = _requestJob(req);
        assertEq(lilypad.getJob(jobId).resultsCollateralBps, 90_000);
        req.resultsCollateralMultiplierBps = 20_000;
        req.deterministic = false; // never audited: nothing to size
        req.moduleId = bytes32(0);
        _requestJob(req);
    }

    /// A rate whose bound is above the collateral cap would refuse every deterministic request.
    function test_RevertWhen_AuditRateNeedsMoreThanTheCollateralCap() public {
        Params memory p = lilypad.params();
        p.auditBps = 900; // needs 101,112 bps, over the cap of 100,000
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidParam.selector, "auditBps"));
        lilypad.setParams(p);
    }

    /// For any audit rate p the contract allows, the least multiplier it accepts makes a cheat's
    /// expected payoff (1 - p) x price - p x collateral at most zero, and one basis point less
    /// is refused.
    function testFuzz_AuditBound_DetersARiskNeutralCheat(uint16 auditBps) public {
        auditBps = uint16(bound(auditBps, 910, 10_000));
        _setAudits(auditBps, 0, 0);
        JobRequest memory req = _request();
        req.resultsCollateralMultiplierBps = 0;
        uint256 floorBps;
        try client.run(req) {
            floorBps = 0;
        } catch (bytes memory reason) {
            assertEq(bytes4(reason), ILilypad.CollateralBelowAuditBound.selector);
            (, floorBps) = abi.decode(_args(reason), (uint256, uint256));
        }
        // p x R >= (1 - p) x P, with R = P x floorBps / 10000
        assertGe(uint256(auditBps) * floorBps, (10_000 - uint256(auditBps)) * 10_000);
        if (floorBps != 0) {
            // forge-lint: disable-next-line(unsafe-typecast)
            req.resultsCollateralMultiplierBps = uint32(floorBps - 1);
            vm.expectRevert(abi.encodeWithSelector(ILilypad.CollateralBelowAuditBound.selector, floorBps - 1, floorBps));
            client.run(req);
            // one basis point less would not deter
            assertLt(uint256(auditBps) * (floorBps - 1), (10_000 - uint256(auditBps)) * 10_000);
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        req.resultsCollateralMultiplierBps = uint32(floorBps);
        uint256 jobId = client.run(req);
        assertEq(lilypad.getJob(jobId).resultsCollateralBps, floorBps);
    }

    function _args(bytes memory reason) internal pure returns (bytes memory args) {
        args = new bytes(reason.length - 4);
        for (uint256 i; i < args.length; ++i) {
            args[i] = reason[i + 4];
        }
    }
}
