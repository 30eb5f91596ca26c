// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {
    ILilypad,
    ResultData,
    JobResult,
    Outcome,
    AuditState,
    Terms,
    JobStatus,
    Job,
    Challenge,
    FailedCallback,
    Params,
    MediationCase,
    Reputation
} from "./interfaces/ILilypad.sol";
import {IMediation} from "./interfaces/IMediation.sol";
import {LilypadChecks} from "./libraries/LilypadChecks.sol";
import {LilypadCore} from "./LilypadCore.sol";

/// @title LilypadDisputes
/// @notice The paths off a job's happy path: a job that expires or times out, the protocol's
///         audits of results, challenges, their verdicts, and handing a failed callback over
///         again. {Lilypad} deploys this contract in its constructor and runs
///         it on its own storage (delegatecall) for those functions of {ILilypad}: it holds no
///         tokens and no state of its own, and refuses to be called directly.
/// @dev Split out of {Lilypad} to keep each contract under the 24 KiB code size limit. The
///      functions' documentation is in {ILilypad}.
contract LilypadDisputes is LilypadCore {
    using SafeERC20 for IERC20;

    /// @notice This contract was called directly instead of through {Lilypad}.
    error OnlyThroughLilypad();

    address private immutable _self;

    /// @param token_ Lilypad's token (immutables are read from this code, not from Lilypad's)
    constructor(IERC20 token_) LilypadCore(token_) {
        _self = address(this);
    }

    modifier throughLilypad() {
        if (address(this) == _self) revert OnlyThroughLilypad();
        _;
    }

    function settleMany(uint256[] calldata jobIds) external throughLilypad nonReentrant returns (uint256 settled) {
        for (uint256 i; i < jobIds.length; ++i) {
            Job storage job = _jobs[jobIds[i]];
            if (job.status != JobStatus.ResultSubmitted || block.timestamp < job.deadline) continue;
            AuditState audit_ = job.auditBps == 0 ? AuditState.None : _auditState(jobIds[i], job);
            if (audit_ == AuditState.None || audit_ == AuditState.Clear) {
                _settle(jobIds[i], job);
                ++settled;
            }
        }
    }

    function acceptResult(uint256 jobId) external throughLilypad nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.ResultSubmitted);
        if (msg.sender != job.client) revert ILilypad.NotClient(msg.sender);
        _requireNoAudit(jobId, job);
        _settle(jobId, job);
    }

    /// @dev Refunds maxPrice and the audit premium.
    function expire(uint256 jobId) external throughLilypad nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Requested);
        if (block.timestamp < job.deadline) revert ILilypad.DeadlineNotReached(jobId, job.deadline);
        job.status = JobStatus.Expired;
        address client = job.client;
        uint256 refund = job.maxPrice + _auditPremium(job, _terms[job.terms]);
        _balances[client] += refund;
        emit ILilypad.JobExpired(jobId, client, refund);
        _callbackEmpty(jobId, client, job.callbackGasLimit, Outcome.Expired);
    }

    /// @dev The provider's timeout collateral is slashed to the client on top of the full refund
    ///      (the audit premium included).
    function timeout(uint256 jobId) external throughLilypad nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Agreed);
        if (block.timestamp < job.deadline) revert ILilypad.DeadlineNotReached(jobId, job.deadline);
        job.status = JobStatus.TimedOut;
        address provider = job.provider;
        uint256 slashed = _timeoutCollateral(job);
        ++_slash(provider, slashed).timedOut;
        address client = job.client;
        uint256 refund = job.maxPrice + _auditPremium(job, _terms[job.terms]);
        _balances[client] += refund + slashed;
        emit ILilypad.JobTimedOut(jobId, provider, refund, slashed);
        _callbackEmpty(jobId, client, job.callbackGasLimit, Outcome.TimedOut);
    }

    /// @dev Pulls the mediation fee, then hands the case to the configured mediation contract.
    function challenge(uint256 jobId) external throughLilypad nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.ResultSubmitted);
        if (msg.sender != job.client) revert ILilypad.NotClient(msg.sender);
        if (block.timestamp >= job.deadline) revert ILilypad.DeadlinePassed(jobId, job.deadline);
        if (!job.deterministic) revert ILilypad.NotDeterministic(jobId);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint80 fee = uint80(_params.mediationFee); // checkParams keeps it within 80 bits
        ++_reputations[job.provider].mediated;
        (address mediation_, uint40 mediationDeadline) = _openCase(jobId, job, fee, address(0));
        emit ILilypad.JobChallenged(jobId, msg.sender, mediation_, fee, mediationDeadline);
        _token.safeTransferFrom(msg.sender, address(this), fee);
        _startMediation(jobId, job, mediation_, mediationDeadline);
    }

    /// @dev Drawn: the audit fund pays the fee (as much of the mediation fee as it holds), and
    ///      the case goes to mediation as a challenge does. Passed over: `auditBps` set to 0.
    function audit(uint256 jobId) external throughLilypad nonReentrant returns (bool audited) {
        Job storage job = _jobs[jobId];
        AuditState state = _auditState(jobId, job);
        if (state == AuditState.None) revert ILilypad.NotAuditable(jobId);
        if (state == AuditState.Pending) revert ILilypad.AuditPending(jobId, _auditSeedBlock(job));
        if (state == AuditState.Clear) {
            job.executionTimeout = DRAW_PASSED;
            emit ILilypad.AuditCleared(jobId);
            return false;
        }
        uint256 fund = _auditFund;
        uint256 fee = _params.mediationFee;
        if (fee > fund) fee = fund;
        // forge-lint: disable-next-line(unsafe-typecast)
        _auditFund = uint128(fund - fee);
        ++_reputations[job.provider].audited;
        // forge-lint: disable-next-line(unsafe-typecast)
        (address mediation_, uint40 mediationDeadline) = _openCase(jobId, job, uint80(fee), msg.sender);
        emit ILilypad.JobAudited(jobId, msg.sender, mediation_, fee, mediationDeadline);
        _startMediation(jobId, job, mediation_, mediationDeadline);
        return true;
    }

    function clearAudits(uint256[] calldata jobIds) external throughLilypad nonReentrant returns (uint256 cleared) {
        for (uint256 i; i < jobIds.length; ++i) {
            Job storage job = _jobs[jobIds[i]];
            if (_auditState(jobIds[i], job) == AuditState.Clear) {
                job.executionTimeout = DRAW_PASSED;
                emit ILilypad.AuditCleared(jobIds[i]);
                ++cleared;
            }
        }
    }

    /// @dev The effects of opening a case, a client's challenge or an audit: the job goes to the
    ///      configured mediation with the fee and the mediators' share fixed now.
    function _openCase(uint256 jobId, Job storage job, uint80 fee, address auditor)
        private
        returns (address mediation_, uint40 mediationDeadline)
    {
        mediation_ = _mediation;
        if (mediation_ == address(0)) revert ILilypad.NoMediation();
        Params storage p = _params;
        mediationDeadline = uint40(block.timestamp + p.mediationTimeout);
        job.status = JobStatus.Challenged;
        job.deadline = mediationDeadline;
        _challenges[jobId] =
            Challenge({mediation: mediation_, fee: fee, mediatorShareBps: p.mediatorShareBps, auditor: auditor});
    }

    /// @dev The interaction of opening a case, last.
    function _startMediation(uint256 jobId, Job storage job, address mediation_, uint40 mediationDeadline) private {
        MediationCase memory mediationCase = MediationCase({
            client: job.client,
            provider: job.provider,
            requestHash: job.requestHash,
            resultHash: job.resultHash,
            deadline: mediationDeadline
        });
        IMediation(mediation_).startMediation(jobId, mediationCase);
    }

    /// @dev Upheld: settles as usual and pays the fee to `rewardedMediators` (if the list is
    ///      empty, back to the client, or to the audit fund for an audit). Overturned: refunds the
    ///      client in full and slashes the results collateral: `mediatorShareBps` of it plus the
    ///      fee to the mediators, `jackpotBps` to the jackpot, the rest to the client.
    function resolveChallenge(uint256 jobId, bool providerCorrect, address[] calldata rewardedMediators)
        external
        throughLilypad
        nonReentrant
    {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Challenged);
        if (msg.sender != _challenges[jobId].mediation) revert ILilypad.NotMediation(msg.sender);
        if (rewardedMediators.length > MAX_REWARDEES) {
            revert ILilypad.TooManyRewardees(rewardedMediators.length, MAX_REWARDEES);
        }
        _resolve(jobId, job, providerCorrect, rewardedMediators, false);
    }

    function resolveStaleChallenge(uint256 jobId) external throughLilypad nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Challenged);
        uint256 openAt = uint256(job.deadline) + STALE_CHALLENGE_GRACE;
        if (block.timestamp < openAt) revert ILilypad.DeadlineNotReached(jobId, openAt);
        _resolve(jobId, job, true, new address[](0), true);
    }

    /// @dev Marks the failure re-delivered before the call (checks-effects-interactions), and
    ///      calls the client directly, so a re-delivery that fails is not recorded again.
    function redeliverCallback(ResultData calldata result, bytes calldata inlineOutput, uint32 gasLimit)
        external
        throughLilypad
        nonReentrant
    {
        uint256 jobId = result.jobId;
        FailedCallback storage failed = _failedCallbacks[jobId];
        Outcome outcome = failed.status;
        if (outcome == Outcome.None || failed.redelivered) revert ILilypad.NoFailedCallback(jobId);
        Job storage job = _jobs[jobId];
        if (gasLimit < job.callbackGasLimit) revert ILilypad.CallbackGasTooLow(gasLimit, job.callbackGasLimit);
        JobResult memory redelivered;
        redelivered.status = outcome;
        if (outcome <= Outcome.ProviderError) {
            bytes32 commitment = LilypadChecks.resultCommitment(
                result.status, result.exitCode, result.resultCid, keccak256(inlineOutput)
            );
            if (commitment != job.resultHash) revert ILilypad.ResultMismatch(jobId);
            (redelivered.resultCid, redelivered.output, redelivered.exitCode) =
            (result.resultCid, inlineOutput, result.exitCode);
        }
        failed.redelivered = true;
        _tryCallback(jobId, job.client, gasLimit, redelivered);
    }

    /// @dev An audit's fee nobody earned (no mediator rewarded) goes back to the audit fund; a
    ///      challenge's to the client. Overturned: `jackpotBps` of the slash goes to the jackpot,
    ///      and half of the jackpot to whoever exposed the result (the client or the auditor).
    function _resolve(uint256 jobId, Job storage job, bool providerCorrect, address[] memory rewardees, bool stale)
        private
    {
        Challenge storage c = _challenges[jobId];
        uint256 fee = c.fee;
        address auditor = c.auditor;
        address client = job.client;
        uint256 toClient;
        uint256 toMediators;
        uint256 unearned = rewardees.length == 0 ? fee : 0;
        Outcome verdict;
        if (providerCorrect) {
            _settle(jobId, job);
            Reputation storage record = _reputations[job.provider];
            ++record.upheld;
            if (auditor != address(0)) ++record.passedAudits;
            verdict = Outcome.UpheldByMediation;
            toMediators = fee - unearned;
        } else {
            verdict = Outcome.OverturnedByMediation;
            (toClient, toMediators) = _overturn(jobId, job, rewardees.length != 0, auditor);
            toMediators += fee - unearned;
        }
        if (auditor == address(0)) {
            toClient += unearned;
        } else if (unearned != 0) {
            // forge-lint: disable-next-line(unsafe-typecast)
            _auditFund += uint128(unearned);
        }
        if (toClient != 0) _balances[client] += toClient;
        if (toMediators != 0) _split(rewardees, toMediators);
        emit ILilypad.ChallengeResolved(jobId, providerCorrect, stale, toClient, toMediators);
        // The verdict supersedes a failed result callback: only the verdict may be re-delivered.
        delete _failedCallbacks[jobId];
        _callbackEmpty(jobId, client, job.callbackGasLimit, verdict);
    }

    /// @dev Slashes the results collateral: `mediatorShareBps` of it to the mediators (if any is
    ///      rewarded), `jackpotBps` to the jackpot, the rest to the client with its full refund.
    function _overturn(uint256 jobId, Job storage job, bool rewarded, address auditor)
        private
        returns (uint256 toClient, uint256 toMediators)
    {
        job.status = JobStatus.Overturned;
        address provider = job.provider;
        uint256 slashed = _resultsCollateral(job);
        ++_slash(provider, slashed).overturned;
        toMediators = rewarded ? slashed * _challenges[jobId].mediatorShareBps / BPS : 0;
        Terms storage terms = _terms[job.terms];
        uint256 added = slashed * terms.jackpotBps / BPS; // toMediators + added <= slashed
        uint256 premium = _auditPremium(job, terms); // the audits it bought were the client's due
        // forge-lint: disable-next-line(unsafe-typecast)
        if (premium != 0) _auditFund += uint128(premium);
        toClient = uint256(job.maxPrice) + slashed - toMediators - added;
        if (added != 0 || _jackpot != 0) {
            address client = job.client;
            toClient += _payJackpot(jobId, added, auditor == address(0) ? client : auditor, client);
        }
    }

    /// @dev Adds `added` to the jackpot and pays half of it to `exposer`: credited here unless it
    ///      is the client, whose part the caller credits (the return value).
    function _payJackpot(uint256 jobId, uint256 added, address exposer, address client)
        private
        returns (uint256 toClient)
    {
        uint256 pot = _jackpot + added;
        uint256 paid = pot / 2;
        // forge-lint: disable-next-line(unsafe-typecast)
        _jackpot = uint128(pot - paid);
        if (exposer == client) toClient = paid;
        else _balances[exposer] += paid;
        emit ILilypad.JackpotPaid(jobId, exposer, added, paid, pot - paid);
    }

    /// @dev Equal shares; the rounding remainder goes to the first mediator.
    function _split(address[] memory to, uint256 amount) private {
        uint256 n = to.length;
        uint256 each = amount / n;
        _balances[to[0]] += amount - each * (n - 1);
        for (uint256 i = 1; i < n; ++i) {
            _balances[to[i]] += each;
        }
    }
}
