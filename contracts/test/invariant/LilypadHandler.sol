// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {Lilypad} from "../../src/Lilypad.sol";
import {LilypadToken} from "../../src/LilypadToken.sol";
import {ConsortiumMediation} from "../../src/mediation/ConsortiumMediation.sol";
import {
    InputParam,
    JobRequest,
    Deal,
    ResultData,
    Outcome,
    JobStatus,
    AuditState,
    Job,
    ILilypad,
    Params
} from "../../src/interfaces/ILilypad.sol";
import {MockClient} from "../utils/MockClient.sol";

/// @dev Drives Lilypad through random but mostly valid lifecycles and keeps ghost records the
///      invariants compare against.
contract LilypadHandler is CommonBase, StdCheats, StdUtils {
    Lilypad public immutable lilypad;
    LilypadToken public immutable token;
    ConsortiumMediation public immutable consortium;
    address public immutable treasury;

    MockClient[] public clients;
    address[] public providers;
    uint256[] internal providerKeys;
    address[] public mediators;

    uint256[] public jobIds;
    mapping(uint256 jobId => JobStatus) public lastStatus;
    mapping(uint256 jobId => bool) public wasChallenged;
    /// of those, the ones the protocol's audit opened (not a client)
    mapping(uint256 jobId => bool) public wasAudited;
    mapping(uint256 jobId => uint256) public terminalTransitions;
    /// the one provider a job's request accepts (zero: any)
    mapping(uint256 jobId => address) public onlyProvider;
    bool public statusWentBackwards;
    bool public terminalChanged;
    /// @notice Set if {completeUnbond} paid before the unbonding delay passed.
    bool public unbondPaidEarly;
    /// @notice Set if a draw picked a mediator that had stopped being drawable before its case
    ///         opened (a leaving mediator may only be drawn for cases opened before it left).
    bool public drewLeaverForNewerCase;
    /// @notice Set if a draw picked a mediator that became drawable (joined or came back) only
    ///         after its case opened.
    bool public drewJoinerForOlderCase;
    /// @notice Set if settling a ProviderError result credited its provider anything.
    bool public paidForProviderError;
    /// set if an audit's fee was not exactly what left the audit fund
    bool public auditFeeMismatch;
    /// set if clearAudits recorded other than every listed pass, once each
    bool public clearAuditsMiscounted;
    /// set if a job settled while its audit draw was pending or had drawn it
    bool public settledUnaudited;
    /// @notice Results each provider submitted, by status (1 Succeeded, 2 JobFailed, 3 ProviderError).
    mapping(address provider => mapping(uint8 status => uint256)) public resultsByStatus;
    /// @dev casesOpened + 1 when the mediator was last seen stop being drawable; 0 while drawable
    mapping(address mediator => uint256) internal stoppedAt;
    /// @dev casesOpened when the mediator was last seen become drawable again (0: drawable from
    ///      the start)
    mapping(address mediator => uint256) internal joinedAt;
    mapping(bytes32 => uint256) public calls;
    /// @dev The hash each mediator committed to, so it can reveal it.
    mapping(uint256 jobId => mapping(address mediator => bytes32)) internal intended;

    bytes internal constant CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    constructor(
        Lilypad lilypad_,
        LilypadToken token_,
        ConsortiumMediation consortium_,
        address treasury_,
        MockClient[] memory clients_,
        address[] memory providers_,
        uint256[] memory providerKeys_,
        address[] memory mediators_
    ) {
        lilypad = lilypad_;
        token = token_;
        consortium = consortium_;
        treasury = treasury_;
        for (uint256 i; i < clients_.length; ++i) {
            clients.push(clients_[i]);
        }
        providers = providers_;
        providerKeys = providerKeys_;
        mediators = mediators_;
    }

    // ------------------------------------------------------------------ views for the invariants

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function clientCount() external view returns (uint256) {
        return clients.length;
    }

    function providerCount() external view returns (uint256) {
        return providers.length;
    }

    function mediatorCount() external view returns (uint256) {
        return mediators.length;
    }

    // ------------------------------------------------------------------ actions

    /// @dev A third of the jobs buy an extra audit rate (up to what the protocol's leaves, and
    ///      enough for the floor to stay within the 2x multiplier), and a quarter accept one
    ///      provider only.
    function runJob(uint256 clientSeed, uint256 maxPrice, uint256 window, bool quiet, uint256 filterSeed) external {
        MockClient c = clients[clientSeed % clients.length];
        JobRequest memory r;
        r.module = "cowsay";
        r.version = "1.0.0";
        r.moduleId = keccak256("cowsay module definition");
        r.deterministic = true;
        r.inputs = new InputParam[](1);
        r.inputs[0] = InputParam({key: "message", value: "moo"});
        r.maxPrice = bound(maxPrice, 0, 50 ether);
        r.matchTimeout = 2 hours;
        r.executionTimeout = 2 hours;
        r.callbackGasLimit = quiet ? 0 : 500_000;
        r.maxOutputBytes = 256;
        r.resultsCollateralMultiplierBps = 20_000;
        r.challengeWindow = uint32(bound(window, 0, 3600));
        uint256 auditBps = lilypad.params().auditBps;
        if (filterSeed % 3 == 0 && auditBps < 10_000) {
            // with the rate it makes, the jobs' 2x multiplier must still meet the floor
            uint256 least = auditBps >= 3_334 ? 1 : 3_334 - auditBps;
            r.extraAuditBps = uint16(bound(filterSeed >> 8, least, 10_000 - auditBps));
        }
        address only;
        if (filterSeed % 4 == 1) {
            only = providers[(filterSeed >> 32) % providers.length];
            r.providers = new address[](1);
            r.providers[0] = only;
        }
        if (token.balanceOf(address(c)) < r.maxPrice + lilypad.auditPremium(r.extraAuditBps)) return;
        uint256 jobId = c.run(r);
        jobIds.push(jobId);
        onlyProvider[jobId] = only;
        lastStatus[jobId] = JobStatus.Requested;
        ++calls["runJob"];
        _observe();
    }

    function agreeDeal(uint256 jobSeed, uint256 providerSeed, uint256 price) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Requested);
        if (found) _agreeDeal(jobId, providerSeed, price);
    }

    function submitResult(uint256 jobSeed, uint256 seed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Agreed);
        if (found) _submitResult(jobId, seed);
    }

    function settle(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.ResultSubmitted);
        if (found) _settle(jobId);
    }

    function settleMany(uint256 seedA, uint256 seedB) external {
        if (jobIds.length == 0) return;
        uint256[] memory ids = new uint256[](3);
        ids[0] = jobIds[seedA % jobIds.length];
        ids[1] = jobIds[seedB % jobIds.length];
        ids[2] = ids[0];
        AuditState a0 = lilypad.auditState(ids[0]);
        AuditState a1 = lilypad.auditState(ids[1]);
        if (lilypad.settleMany(ids) > 0) ++calls["settle"];
        if (_settledWhile(ids[0], a0) || _settledWhile(ids[1], a1)) settledUnaudited = true;
        _observe();
    }

    /// @notice Records the passes of two jobs' audit draws in one call (rolling past the first's
    ///         seed block if it is pending).
    function clearAudits(uint256 seedA, uint256 seedB) external {
        if (jobIds.length == 0) return;
        uint256[] memory ids = new uint256[](2);
        ids[0] = jobIds[seedA % jobIds.length];
        ids[1] = jobIds[seedB % jobIds.length];
        if (lilypad.auditState(ids[0]) == AuditState.Pending) {
            vm.roll(uint256(lilypad.getJob(ids[0]).executionTimeout) + lilypad.AUDIT_SEED_DELAY() + 1);
        }
        uint256 expected;
        for (uint256 i; i < ids.length; ++i) {
            if (lilypad.auditState(ids[i]) == AuditState.Clear && (i == 0 || ids[1] != ids[0])) ++expected;
        }
        if (lilypad.clearAudits(ids) != expected) clearAuditsMiscounted = true;
        for (uint256 i; i < ids.length; ++i) {
            if (lilypad.auditState(ids[i]) == AuditState.Clear) clearAuditsMiscounted = true;
        }
        if (expected != 0) ++calls["auditCleared"];
        _observe();
    }

    function acceptResult(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.ResultSubmitted);
        if (found) _acceptResult(jobId);
    }

    function expire(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Requested);
        if (found) _expire(jobId);
    }

    function timeout(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Agreed);
        if (found) _timeout(jobId);
    }

    function challenge(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.ResultSubmitted);
        if (found) _challenge(jobId);
    }

    /// @notice Decides a waiting result's audit draw (rolling past its seed block first), which
    ///         opens an audit when drawn.
    function audit(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.ResultSubmitted);
        if (found) _audit(jobId);
    }

    function vote(uint256 jobSeed, uint256 seed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Challenged);
        if (found) _vote(jobId, seed);
    }

    /// @notice Closes a case whose phases ran out, also one Lilypad's stale path already closed.
    function finalize(uint256 jobSeed) external {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = jobIds[(jobSeed % n + i) % n];
            if (wasChallenged[id] && !consortium.caseOf(id).resolved) return _finalize(id, true);
        }
    }

    function resolveStale(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, JobStatus.Challenged);
        if (found) _resolveStale(jobId);
    }

    /// @notice Moves one open job a step along a random valid path, warping time where the step
    ///         needs a deadline to pass, so short call sequences still reach every state.
    function advance(uint256 jobSeed, uint256 seed) external {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = jobIds[(jobSeed % n + i) % n];
            JobStatus s = lilypad.getJob(id).status;
            if (s == JobStatus.Requested) {
                if (seed % 5 == 0) {
                    _warpTo(lilypad.getJob(id).deadline);
                    _expire(id);
                } else {
                    _agreeDeal(id, seed, seed >> 8);
                }
                return;
            }
            if (s == JobStatus.Agreed) {
                if (seed % 5 == 0) {
                    _warpTo(lilypad.getJob(id).deadline);
                    _timeout(id);
                } else {
                    _submitResult(id, seed);
                }
                return;
            }
            if (s == JobStatus.ResultSubmitted) {
                AuditState a = lilypad.auditState(id);
                if (a == AuditState.Pending || a == AuditState.Due) return _audit(id);
                uint256 c = seed % 4;
                if (c == 0) {
                    _challenge(id);
                } else if (c == 1) {
                    _acceptResult(id);
                } else {
                    _warpTo(lilypad.getJob(id).deadline);
                    _settle(id);
                }
                return;
            }
            if (s == JobStatus.Challenged) {
                uint256 c = seed % 6;
                if (c == 0) {
                    _warpTo(uint256(lilypad.getJob(id).deadline) + 1 days);
                    _resolveStale(id);
                } else if (c == 1) {
                    _finalize(id, true);
                } else {
                    _vote(id, seed);
                }
                return;
            }
        }
    }

    // ------------------------------------------------------------------ steps (no-ops when invalid)

    function _agreeDeal(uint256 jobId, uint256 providerSeed, uint256 price) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.Requested || block.timestamp >= job.deadline) return;
        uint256 p = providerSeed % providers.length;
        Deal memory d;
        d.jobId = jobId;
        d.requestHash = job.requestHash;
        d.provider = providers[p];
        d.price = bound(price, 0, job.maxPrice);
        d.timeoutCollateral = d.price * job.timeoutCollateralBps / 10_000;
        d.resultsCollateral = d.price * job.resultsCollateralBps / 10_000;
        d.expiry = block.timestamp + 60;
        (uint256 free,) = lilypad.collateralOf(d.provider);
        if (free < d.timeoutCollateral) return;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(providerKeys[p], _dealDigest(d));
        address only = onlyProvider[jobId];
        if (only != address(0) && only != d.provider) {
            vm.expectRevert(abi.encodeWithSelector(ILilypad.ProviderNotAccepted.selector, jobId, d.provider));
            lilypad.agreeDeal(d, abi.encodePacked(r, s, v));
            ++calls["agreeDeal refused"];
            return;
        }
        lilypad.agreeDeal(d, abi.encodePacked(r, s, v));
        ++calls["agreeDeal"];
        _observe();
    }

    function _submitResult(uint256 jobId, uint256 seed) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.Agreed || block.timestamp >= job.deadline) return;
        (uint256 free,) = lilypad.collateralOf(job.provider);
        uint256 price = job.price;
        if (free + price * job.timeoutCollateralBps / 10_000 < price * job.resultsCollateralBps / 10_000) return;
        ResultData memory res;
        res.jobId = jobId;
        res.status = uint8(1 + seed % 3);
        res.resultCid = CID;
        if (res.status == uint8(Outcome.JobFailed)) res.exitCode = 2;
        if (res.status == uint8(Outcome.ProviderError)) res.error = "out of memory";
        bytes memory output = new bytes((seed >> 8) % (uint256(job.maxOutputBytes) + 1));
        uint256 key = _keyOf(job.provider);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _resultDigest(res, output));
        lilypad.submitResult(res, output, abi.encodePacked(r, s, v));
        ++resultsByStatus[job.provider][res.status];
        ++calls["submitResult"];
        _observe();
    }

    function _settle(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.ResultSubmitted || block.timestamp < job.deadline) return;
        if (job.auditBps != 0 && lilypad.auditState(jobId) != AuditState.Clear) return;
        uint256 before = lilypad.balanceOf(job.provider);
        lilypad.settle(jobId);
        if (job.providerError && lilypad.balanceOf(job.provider) != before) paidForProviderError = true;
        ++calls["settle"];
        _observe();
    }

    function _acceptResult(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.ResultSubmitted) return;
        if (job.auditBps != 0 && lilypad.auditState(jobId) != AuditState.Clear) return;
        uint256 before = lilypad.balanceOf(job.provider);
        MockClient(job.client).accept(jobId);
        if (job.providerError && lilypad.balanceOf(job.provider) != before) paidForProviderError = true;
        ++calls["acceptResult"];
        _observe();
    }

    function _expire(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.Requested || block.timestamp < job.deadline) return;
        lilypad.expire(jobId);
        ++calls["expire"];
        _observe();
    }

    function _timeout(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.Agreed || block.timestamp < job.deadline) return;
        lilypad.timeout(jobId);
        ++calls["timeout"];
        _observe();
    }

    function _challenge(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.ResultSubmitted || block.timestamp >= job.deadline) return;
        MockClient c = MockClient(job.client);
        if (token.balanceOf(address(c)) < lilypad.params().mediationFee) return;
        try c.challenge(jobId) {
            wasChallenged[jobId] = true;
            ++calls["challenge"];
        } catch (bytes memory err) {
            // the only expected refusal: mediators withdrew collateral and too few are eligible
            if (bytes4(err) != ConsortiumMediation.NotEnoughMediators.selector) {
                assembly {
                    revert(add(err, 0x20), mload(err))
                }
            }
        }
        _observe();
    }

    function _settledWhile(uint256 jobId, AuditState before) internal view returns (bool) {
        return
            (before == AuditState.Pending || before == AuditState.Due)
                && lilypad.getJob(jobId).status == JobStatus.Settled;
    }

    function _audit(uint256 jobId) internal {
        AuditState state = lilypad.auditState(jobId);
        if (state == AuditState.None) return;
        if (state == AuditState.Pending) {
            vm.roll(uint256(lilypad.getJob(jobId).executionTimeout) + lilypad.AUDIT_SEED_DELAY() + 1);
        }
        uint256 fundBefore = lilypad.auditFund();
        try lilypad.audit(jobId) returns (bool audited) {
            if (audited) {
                wasChallenged[jobId] = true;
                wasAudited[jobId] = true;
                if (fundBefore - lilypad.auditFund() != lilypad.getChallenge(jobId).fee) auditFeeMismatch = true;
                ++calls["audit"];
            } else {
                ++calls["auditCleared"];
            }
        } catch (bytes memory err) {
            // the only expected refusal: mediators withdrew stake and too few are drawable
            if (bytes4(err) != ConsortiumMediation.NotEnoughMediators.selector) {
                assembly {
                    revert(add(err, 0x20), mload(err))
                }
            }
        }
        _observe();
    }

    /// @dev One step of a case: draw it, or every drawn mediator that has this phase's step to
    ///      take commits (in the commit phase) or reveals what it committed (in the reveal phase),
    ///      except about one in eight, chosen by `seed`, that stays silent this time: those left
    ///      silent to the end are the non-committers and non-revealers.
    function _vote(uint256 jobId, uint256 seed) internal {
        if (lilypad.getJob(jobId).status != JobStatus.Challenged) return;
        ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
        if (cs.resolved) return;
        if (cs.mediators.length == 0) return _drawCase(jobId, cs.seedBlock);
        bool committing = block.timestamp < cs.commitDeadline;
        if (!committing && block.timestamp >= cs.revealDeadline) return;
        for (uint256 i; i < cs.mediators.length; ++i) {
            if ((seed >> (16 + 3 * i)) % 8 == 0) continue; // silent this time
            if (consortium.caseOf(jobId).resolved) break;
            address m = cs.mediators[i];
            if (committing) {
                if (consortium.commitmentOf(jobId, m) != bytes32(0)) continue;
                // mostly agree with the provider, sometimes find another result, now and then a third
                uint256 h = (seed >> (8 + i)) % 7;
                bytes32 verdict =
                    h < 2 ? keccak256("other") : h == 2 ? keccak256("third") : lilypad.getJob(jobId).resultHash;
                intended[jobId][m] = verdict;
                bytes32 commitment = consortium.commitmentFor(verdict, _salt(jobId, m), m);
                vm.prank(m);
                consortium.commit(jobId, commitment);
                ++calls["commit"];
            } else {
                bytes32 verdict = intended[jobId][m];
                if (verdict == bytes32(0) || consortium.revealOf(jobId, m) != bytes32(0)) continue;
                vm.prank(m);
                consortium.reveal(jobId, verdict, _salt(jobId, m));
                ++calls["reveal"];
            }
        }
        _observe();
    }

    function _salt(uint256 jobId, address m) internal pure returns (bytes32) {
        return keccak256(abi.encode(jobId, m));
    }

    function _drawCase(uint256 jobId, uint256 seedBlock) internal {
        if (block.number <= seedBlock) vm.roll(seedBlock + 1);
        try consortium.draw(jobId) {
            ++calls["draw"];
            ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
            for (uint256 i; i < cs.mediators.length; ++i) {
                uint256 stopped = stoppedAt[cs.mediators[i]];
                if (stopped != 0 && cs.openIndex >= stopped) drewLeaverForNewerCase = true;
                if (cs.openIndex <= joinedAt[cs.mediators[i]]) drewJoinerForOlderCase = true;
            }
        } catch (bytes memory err) {
            // the only expected refusal: mediators withdrew stake and too few are drawable
            if (bytes4(err) != ConsortiumMediation.NotEnoughMediators.selector) {
                assembly {
                    revert(add(err, 0x20), mload(err))
                }
            }
        }
        _observe();
    }

    /// @dev Draws an undrawn case (while Lilypad still has it open), or closes a drawn one whose
    ///      phases ran out, warping there first if `warp`.
    function _finalize(uint256 jobId, bool warp_) internal {
        ConsortiumMediation.Case memory cs = consortium.caseOf(jobId);
        if (!cs.opened || cs.resolved) return;
        if (cs.mediators.length == 0) {
            if (lilypad.getJob(jobId).status == JobStatus.Challenged) _drawCase(jobId, cs.seedBlock);
            return;
        }
        uint256 closesAt = cs.commits == 0 ? cs.commitDeadline : cs.revealDeadline;
        if (warp_) _warpTo(closesAt);
        if (block.timestamp < closesAt) return;
        consortium.finalize(jobId);
        ++calls["finalize"];
        _observe();
    }

    function _resolveStale(uint256 jobId) internal {
        Job memory job = lilypad.getJob(jobId);
        if (job.status != JobStatus.Challenged || block.timestamp < uint256(job.deadline) + 1 days) return;
        lilypad.resolveStaleChallenge(jobId);
        ++calls["resolveStale"];
        _observe();
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", lilypad.domainSeparator(), structHash));
    }

    function _dealDigest(Deal memory d) internal view returns (bytes32) {
        return _digest(keccak256(abi.encode(lilypad.DEAL_TYPEHASH(), d)));
    }

    function _resultDigest(ResultData memory r, bytes memory output) internal view returns (bytes32) {
        return _digest(
            keccak256(
                abi.encode(
                    lilypad.RESULT_TYPEHASH(),
                    r.jobId,
                    r.status,
                    keccak256(r.resultCid),
                    keccak256(output),
                    r.exitCode,
                    keccak256(bytes(r.error))
                )
            )
        );
    }

    function _warpTo(uint256 t) internal {
        if (t > block.timestamp) vm.warp(t);
    }

    function withdraw(uint256 who) external {
        address a = _anyAccount(who);
        if (consortium.balanceOf(a) != 0) {
            vm.prank(a);
            consortium.withdraw();
            ++calls["withdrawSlashed"];
        }
        if (lilypad.balanceOf(a) == 0) return;
        vm.prank(a);
        lilypad.withdraw();
        ++calls["withdraw"];
        _observe();
    }

    function moveCollateral(uint256 who, uint256 amount, bool deposit) external {
        uint256 i = who % (providers.length + mediators.length);
        if (i >= providers.length) return _moveStake(mediators[i - providers.length], amount, deposit);
        address a = providers[i];
        if (deposit) {
            amount = bound(amount, 1, 100 ether);
            token.mint(a, amount);
            vm.startPrank(a);
            token.approve(address(lilypad), amount);
            lilypad.depositCollateral(amount);
            vm.stopPrank();
        } else {
            (uint256 free,) = lilypad.collateralOf(a);
            if (free == 0) return;
            amount = bound(amount, 1, free);
            vm.prank(a);
            lilypad.withdrawCollateral(amount);
        }
        ++calls["collateral"];
        _observe();
    }

    function _moveStake(address m, uint256 amount, bool deposit) internal {
        if (deposit) {
            amount = bound(amount, 1, 30 ether);
            token.mint(m, amount);
            vm.startPrank(m);
            token.approve(address(consortium), amount);
            consortium.depositStake(amount);
            vm.stopPrank();
        } else {
            (uint256 free,) = consortium.stakeOf(m);
            if (free == 0) return;
            amount = bound(amount, 1, free);
            vm.prank(m);
            consortium.requestUnbond(amount);
        }
        ++calls["stake"];
        _observe();
    }

    /// @notice A mediator takes its unbonding stake, after waiting out the delay if `wait`.
    function completeUnbond(uint256 who, bool wait) external {
        address m = mediators[who % mediators.length];
        (uint256 amount, uint256 readyAt) = consortium.unbondingOf(m);
        if (amount == 0) return;
        if (wait) _warpTo(readyAt);
        vm.prank(m);
        try consortium.completeUnbond() {
            if (block.timestamp < readyAt) unbondPaidEarly = true;
            ++calls["completeUnbond"];
        } catch {
            if (block.timestamp >= readyAt) unbondPaidEarly = true; // a due payment refused: flagged too
        }
        _observe();
    }

    /// @notice Audits off a third of the time, else at a rate whose collateral bound the jobs'
    ///         2x multiplier meets (at least 33.34%); any tax and jackpot share.
    function setAudits(uint16 auditBps, uint16 taxBps, uint16 jackpotBps) external {
        Params memory p = lilypad.params();
        p.auditBps = auditBps % 3 == 0 ? 0 : uint16(bound(auditBps, 3_334, 10_000));
        p.taxBps = uint16(bound(taxBps, 0, 5_000));
        p.jackpotBps = uint16(bound(jackpotBps, 0, 5_000));
        vm.prank(lilypad.owner());
        lilypad.setParams(p);
        ++calls["setAudits"];
    }

    function setFees(uint16 feeBps, uint96 mediationFee) external {
        Params memory p = lilypad.params();
        p.protocolFeeBps = uint16(bound(feeBps, 0, 1_000));
        p.mediationFee = uint96(bound(mediationFee, 0, 5 ether));
        vm.prank(lilypad.owner());
        lilypad.setParams(p);
        ++calls["setFees"];
    }

    function warp(uint256 secs) external {
        // mostly short steps so windows are hit inside and out; now and then a long one
        vm.warp(block.timestamp + (secs % 8 == 0 ? bound(secs, 1 hours, 2 days) : bound(secs, 1, 20 minutes)));
        ++calls["warp"];
    }

    // ------------------------------------------------------------------ internals

    /// @dev The first job in `status`, scanning from a random position.
    function _pick(uint256 seed, JobStatus status) internal view returns (bool, uint256) {
        uint256 n = jobIds.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = jobIds[(seed % n + i) % n];
            if (lilypad.getJob(id).status == status) return (true, id);
        }
        return (false, 0);
    }

    function _keyOf(address p) internal view returns (uint256) {
        for (uint256 i; i < providers.length; ++i) {
            if (providers[i] == p) return providerKeys[i];
        }
        revert("unknown provider");
    }

    function _anyAccount(uint256 seed) internal view returns (address) {
        uint256 n = clients.length + providers.length + mediators.length + 1;
        uint256 i = seed % n;
        if (i < clients.length) return address(clients[i]);
        i -= clients.length;
        if (i < providers.length) return providers[i];
        i -= providers.length;
        if (i < mediators.length) return mediators[i];
        return treasury;
    }

    function _isTerminal(JobStatus s) internal pure returns (bool) {
        return uint8(s) >= uint8(JobStatus.Settled);
    }

    /// @dev Compares every job's status with the last one seen.
    function _observe() internal {
        for (uint256 i; i < jobIds.length; ++i) {
            uint256 id = jobIds[i];
            JobStatus prev = lastStatus[id];
            JobStatus now_ = lilypad.getJob(id).status;
            if (uint8(now_) < uint8(prev)) statusWentBackwards = true;
            if (_isTerminal(prev) && now_ != prev) terminalChanged = true;
            if (!_isTerminal(prev) && _isTerminal(now_)) ++terminalTransitions[id];
            lastStatus[id] = now_;
        }
        uint256 opened = consortium.casesOpened();
        for (uint256 i; i < mediators.length; ++i) {
            address m = mediators[i];
            if (consortium.isDrawable(m)) {
                if (stoppedAt[m] != 0) joinedAt[m] = opened;
                stoppedAt[m] = 0;
            } else if (stoppedAt[m] == 0) {
                stoppedAt[m] = opened + 1;
            }
        }
    }
}
