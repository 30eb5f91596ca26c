// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {Lilypad} from "../../src/Lilypad.sol";
import {LilypadToken} from "../../src/LilypadToken.sol";
import {ConsortiumMediation} from "../../src/mediation/ConsortiumMediation.sol";
import {JobStatus, Job, Params, Reputation, Terms} from "../../src/interfaces/ILilypad.sol";
import {MockClient} from "../utils/MockClient.sol";
import {LilypadHandler} from "./LilypadHandler.sol";

/// @dev Escrow solvency, collateral accounting, one terminal state per job, no backwards steps,
///      and exactly-once callbacks, under random sequences of every lifecycle action. The handler
///      only takes valid steps, so any revert is a failure too.
/// forge-config: default.invariant.fail-on-revert = true
/// forge-config: deep.invariant.fail-on-revert = true
contract LilypadInvariants is Test {
    Lilypad internal lilypad;
    LilypadToken internal token;
    ConsortiumMediation internal consortium;
    LilypadHandler internal handler;
    address internal treasury = makeAddr("treasury");
    address internal owner = makeAddr("owner");

    function setUp() public {
        token = new LilypadToken(address(this));
        lilypad = new Lilypad(token, owner, treasury);
        consortium = new ConsortiumMediation(lilypad, owner, 3, 2, 10 ether, 1 hours, 1 hours);
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.protocolFeeBps = 300;
        p.mediationFee = 1 ether;
        p.mediationTimeout = 6 hours;
        lilypad.setParams(p);
        lilypad.setMediation(address(consortium));
        vm.stopPrank();

        MockClient[] memory clients = new MockClient[](3);
        for (uint256 i; i < clients.length; ++i) {
            clients[i] = new MockClient(address(lilypad));
            token.mint(address(clients[i]), 10_000 ether);
        }
        address[] memory providers = new address[](3);
        uint256[] memory keys = new uint256[](3);
        for (uint256 i; i < providers.length; ++i) {
            (providers[i], keys[i]) = makeAddrAndKey(string.concat("provider", vm.toString(i)));
            _join(providers[i], true, 200 ether);
        }
        address[] memory mediators = new address[](5);
        for (uint256 i; i < mediators.length; ++i) {
            mediators[i] = makeAddr(string.concat("mediator", vm.toString(i)));
            _join(mediators[i], false, 20 ether);
        }
        handler = new LilypadHandler(lilypad, token, consortium, treasury, clients, providers, keys, mediators);
        token.transferOwnership(address(handler));
        targetContract(address(handler));
        // weight the calls: `advance` moves a job along its lifecycle, the rest interleave
        bytes4[] memory selectors = new bytes4[](25);
        for (uint256 i; i < 6; ++i) {
            selectors[i] = LilypadHandler.advance.selector;
        }
        selectors[6] = LilypadHandler.runJob.selector;
        selectors[7] = LilypadHandler.runJob.selector;
        selectors[8] = LilypadHandler.agreeDeal.selector;
        selectors[9] = LilypadHandler.submitResult.selector;
        selectors[10] = LilypadHandler.settle.selector;
        selectors[11] = LilypadHandler.settleMany.selector;
        selectors[12] = LilypadHandler.acceptResult.selector;
        selectors[13] = LilypadHandler.challenge.selector;
        selectors[14] = LilypadHandler.vote.selector;
        selectors[15] = LilypadHandler.withdraw.selector;
        selectors[16] = LilypadHandler.moveCollateral.selector;
        selectors[17] = LilypadHandler.setFees.selector;
        selectors[18] = LilypadHandler.warp.selector;
        selectors[19] = LilypadHandler.expire.selector;
        selectors[20] = LilypadHandler.finalize.selector;
        selectors[21] = LilypadHandler.completeUnbond.selector;
        selectors[22] = LilypadHandler.audit.selector;
        selectors[23] = LilypadHandler.setAudits.selector;
        selectors[24] = LilypadHandler.clearAudits.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _join(address who, bool isProvider, uint256 collateral) internal {
        token.mint(who, collateral);
        vm.startPrank(who);
        if (isProvider) {
            lilypad.registerProvider("https://p.example/");
            token.approve(address(lilypad), collateral);
            lilypad.depositCollateral(collateral);
        } else {
            consortium.registerMediator("https://m.example/");
            token.approve(address(consortium), collateral);
            consortium.depositStake(collateral);
        }
        vm.stopPrank();
    }

    function _isOpen(JobStatus s) internal pure returns (bool) {
        return s == JobStatus.Requested || s == JobStatus.Agreed || s == JobStatus.ResultSubmitted
            || s == JobStatus.Challenged;
    }

    /// @notice token.balanceOf(lilypad) == escrow of open jobs + held challenge fees + all collateral
    ///         (free + locked) + every credited balance.
    function invariant_EscrowIsSolvent() public view {
        uint256 owed;
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            Job memory job = lilypad.getJob(id);
            if (_isOpen(job.status)) owed += job.maxPrice;
            if (job.status == JobStatus.Challenged) owed += lilypad.getChallenge(id).fee;
            // the premium of an extra audit rate is escrowed until the job ends
            if (_isOpen(job.status)) owed += _premium(job);
        }
        for (uint256 i; i < handler.providerCount(); ++i) {
            owed += _held(handler.providers(i));
        }
        for (uint256 i; i < handler.mediatorCount(); ++i) {
            owed += _held(handler.mediators(i));
        }
        for (uint256 i; i < handler.clientCount(); ++i) {
            owed += _held(address(handler.clients(i)));
        }
        owed += lilypad.balanceOf(treasury);
        // the handler opens the audits, so it is paid the jackpot's half for a cheat they expose
        owed += lilypad.balanceOf(address(handler));
        owed += lilypad.auditFund() + lilypad.jackpot();
        assertEq(token.balanceOf(address(lilypad)), owed);
    }

    function _premium(Job memory job) internal view returns (uint256) {
        if (job.auditBps == 0) return 0;
        Terms memory t = lilypad.termsOf(job.terms);
        return ((job.auditBps - t.auditBps) * uint256(t.mediationFee) + 9_999) / 10_000;
    }

    function _held(address a) internal view returns (uint256) {
        (uint256 free, uint256 locked) = lilypad.collateralOf(a);
        return free + locked + lilypad.balanceOf(a);
    }

    /// @notice A provider's locked collateral is exactly what its open deals hold.
    function invariant_LockedCollateralMatchesOpenDeals() public view {
        for (uint256 p; p < handler.providerCount(); ++p) {
            address prov = handler.providers(p);
            uint256 expected;
            for (uint256 i; i < handler.jobCount(); ++i) {
                Job memory job = lilypad.getJob(handler.jobIds(i));
                if (job.provider != prov) continue;
                if (job.status == JobStatus.Agreed) expected += uint256(job.price) * job.timeoutCollateralBps / 10_000;
                if (job.status == JobStatus.ResultSubmitted || job.status == JobStatus.Challenged) {
                    expected += uint256(job.price) * job.resultsCollateralBps / 10_000;
                }
            }
            (, uint256 locked) = lilypad.collateralOf(prov);
            assertEq(locked, expected);
        }
        for (uint256 m; m < handler.mediatorCount(); ++m) {
            (uint256 free, uint256 locked) = lilypad.collateralOf(handler.mediators(m));
            assertEq(free + locked, 0, "mediators stake in the mediation, not in Lilypad");
        }
    }

    /// @notice token.balanceOf(mediation) == every mediator's free + locked + unbonding stake +
    ///         every slashed stake credited and not yet withdrawn.
    function invariant_MediationIsSolvent() public view {
        uint256 owed;
        for (uint256 i; i < handler.mediatorCount(); ++i) {
            address m = handler.mediators(i);
            (uint256 free, uint256 locked) = consortium.stakeOf(m);
            (uint256 unbonding,) = consortium.unbondingOf(m);
            owed += free + locked + unbonding + consortium.balanceOf(m);
        }
        for (uint256 i; i < handler.clientCount(); ++i) {
            owed += consortium.balanceOf(address(handler.clients(i)));
        }
        assertEq(token.balanceOf(address(consortium)), owed);
    }

    /// @notice A mediator's locked stake is one case stake per drawn case it sits in that has not
    ///         resolved (and its record counts each draw as open, rewarded or slashed); a mediator with a stake free is drawable unless it is leaving (its
    ///         unbonding unpaid), and a drawable one always has a stake free.
    function invariant_LockedStakeMatchesOpenCases() public view {
        for (uint256 m; m < handler.mediatorCount(); ++m) {
            address who = handler.mediators(m);
            uint256 expected;
            for (uint256 i; i < handler.jobCount(); ++i) {
                ConsortiumMediation.Case memory cs = consortium.caseOf(handler.jobIds(i));
                if (cs.resolved) continue;
                for (uint256 j; j < cs.mediators.length; ++j) {
                    if (cs.mediators[j] == who) expected += cs.stake;
                }
            }
            (uint256 free, uint256 locked) = consortium.stakeOf(who);
            assertEq(locked, expected);
            // every draw is open (one stake locked) or resolved as rewarded or slashed
            (uint256 drawn, uint256 rewarded, uint256 slashes,) = consortium.recordOf(who);
            assertEq(drawn, rewarded + slashes + expected / consortium.mediatorStake());
            (uint256 unbonding,) = consortium.unbondingOf(who);
            bool drawable = consortium.isDrawable(who);
            if (drawable || unbonding == 0) assertEq(drawable, free >= consortium.mediatorStake());
        }
    }

    /// @notice Unbonding stake is paid only after the delay, a mediator that stopped being
    ///         drawable is drawn only for cases opened before it stopped, and one that became
    ///         drawable only for cases opened after it did.
    function invariant_UnbondingWaitsAndLeaversAreNotDrawnForNewCases() public view {
        assertFalse(handler.unbondPaidEarly());
        assertFalse(handler.drewLeaverForNewerCase());
        assertFalse(handler.drewJoinerForOlderCase());
    }

    /// @notice Each provider's on-chain record matches what happened to its jobs: results by
    ///         status, timeouts, challenges and their verdicts.
    function invariant_ReputationMatchesTheJobs() public view {
        for (uint256 p; p < handler.providerCount(); ++p) {
            address prov = handler.providers(p);
            uint256 timedOut;
            uint256 mediated;
            uint256 upheld;
            uint256 overturned;
            uint256 audited;
            uint256 passedAudits;
            for (uint256 i; i < handler.jobCount(); ++i) {
                uint256 id = handler.jobIds(i);
                Job memory job = lilypad.getJob(id);
                if (job.provider != prov) continue;
                if (job.status == JobStatus.TimedOut) ++timedOut;
                if (!handler.wasChallenged(id)) continue;
                bool wasAudited = handler.wasAudited(id);
                if (wasAudited) ++audited;
                else ++mediated;
                if (job.status == JobStatus.Settled) ++upheld;
                if (job.status == JobStatus.Settled && wasAudited) ++passedAudits;
                if (job.status == JobStatus.Overturned) ++overturned;
            }
            Reputation memory r = lilypad.reputationOf(prov);
            assertEq(r.succeeded, handler.resultsByStatus(prov, 1));
            assertEq(r.failed, handler.resultsByStatus(prov, 2));
            assertEq(r.providerErrors, handler.resultsByStatus(prov, 3));
            assertEq(r.timedOut, timedOut);
            assertEq(r.mediated, mediated);
            assertEq(r.upheld, upheld);
            assertEq(r.overturned, overturned);
            assertEq(r.audited, audited);
            assertEq(r.passedAudits, passedAudits);
        }
    }

    /// @notice A ProviderError result earns its provider nothing when it settles.
    function invariant_ProviderErrorsAreNeverPaid() public view {
        assertFalse(handler.paidForProviderError());
    }

    /// @notice An audit's fee is exactly what left the audit fund, clearAudits records every
    ///         listed pass once, and no job settles while its audit draw is pending or drew it
    ///         (only the audit's verdict settles it then).
    function invariant_AuditsArePaidByTheFundAndNeverSkipped() public view {
        assertFalse(handler.auditFeeMismatch());
        assertFalse(handler.clearAuditsMiscounted());
        assertFalse(handler.settledUnaudited());
    }

    /// @notice Statuses only move forward and a terminal status never changes.
    function invariant_NoStateGoesBackwards() public view {
        assertFalse(handler.statusWentBackwards());
        assertFalse(handler.terminalChanged());
        for (uint256 i; i < handler.jobCount(); ++i) {
            assertLe(handler.terminalTransitions(handler.jobIds(i)), 1);
        }
    }

    /// @notice Each job's callbacks are exactly what its history says: none before an outcome, one
    ///         outcome, plus one verdict if (and only if) the client challenged and it resolved.
    function invariant_CallbacksExactlyOnce() public view {
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 id = handler.jobIds(i);
            Job memory job = lilypad.getJob(id);
            if (job.callbackGasLimit == 0) {
                assertEq(MockClient(job.client).callbackCount(id), 0);
                continue;
            }
            uint256 expected;
            JobStatus s = job.status;
            if (s == JobStatus.Requested || s == JobStatus.Agreed) expected = 0;
            else if (s == JobStatus.ResultSubmitted || s == JobStatus.Challenged) expected = 1;
            else if (s == JobStatus.Expired || s == JobStatus.TimedOut) expected = 1;
            else if (s == JobStatus.Overturned) expected = 2;
            else expected = handler.wasChallenged(id) ? 2 : 1; // Settled
            assertEq(MockClient(job.client).callbackCount(id), expected);
        }
    }

    /// @notice The request sequence has no gaps: job ids are 1..requestCount.
    function invariant_SequenceHasNoGaps() public view {
        uint256 n = handler.jobCount();
        assertEq(lilypad.requestCount(), n);
        for (uint256 i; i < n; ++i) {
            assertEq(handler.jobIds(i), i + 1);
        }
    }
}
