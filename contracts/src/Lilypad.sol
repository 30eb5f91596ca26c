// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {
    ILilypad,
    JobRequest,
    Deal,
    ResultData,
    JobResult,
    Outcome,
    JobStatus,
    Job,
    Challenge,
    AuditState,
    Terms,
    FailedCallback,
    Params,
    Reputation
} from "./interfaces/ILilypad.sol";
import {LilypadChecks} from "./libraries/LilypadChecks.sol";
import {Account, LilypadRegistry} from "./libraries/LilypadRegistry.sol";
import {LilypadCore} from "./LilypadCore.sol";
import {LilypadDisputes} from "./LilypadDisputes.sol";

/// @title Lilypad
/// @notice A trustless compute marketplace callable from smart contracts. Clients escrow a max price
///         with {runJob}; a resource provider's EIP-712 signed deal ({agreeDeal}) and result
///         ({submitResult}) are relayed by anyone; the client is called back with exactly the gas
///         it asked for; after a challenge window the job settles. This one contract holds every
///         token: job escrow, provider collateral, challenge fees, the audit fund, the jackpot
///         and credited balances, which leave only through {withdraw} and {withdrawCollateral}.
/// @dev See docs/protocol.md for the state machine, type strings and arithmetic.
contract Lilypad is ILilypad, LilypadCore, EIP712, Ownable2Step {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.AddressSet;

    // ------------------------------------------------------------------ constants
    /// @notice EIP-712 type of the deal a provider signs.
    bytes32 public constant DEAL_TYPEHASH = keccak256(
        "Deal(uint256 jobId,bytes32 requestHash,address provider,uint256 price,uint256 timeoutCollateral,uint256 resultsCollateral,uint256 expiry)"
    );
    /// @notice EIP-712 type of the result a provider signs.
    bytes32 public constant RESULT_TYPEHASH =
        keccak256("Result(uint256 jobId,uint8 status,bytes resultCid,bytes32 outputHash,int32 exitCode,string error)");

    /// @notice Hard cap on the protocol fee: 10%.
    uint256 public constant MAX_PROTOCOL_FEE_BPS = LilypadChecks.MAX_PROTOCOL_FEE_BPS;
    /// @notice Most bytes of a result CID.
    uint256 public constant MAX_RESULT_CID_BYTES = 128;
    /// @notice Most bytes of a result's error text.
    uint256 public constant MAX_ERROR_BYTES = 1_024;
    /// @notice Most bytes of a metadata URL.
    uint256 public constant MAX_METADATA_URL_BYTES = LilypadRegistry.MAX_METADATA_URL_BYTES;

    /// @notice The code {settleMany}, {acceptResult}, {expire}, {timeout}, {challenge}, {audit}, {clearAudits},
    ///         {resolveChallenge}, {resolveStaleChallenge} and {redeliverCallback} run, on this
    ///         contract's storage; deployed by the constructor.
    address public immutable disputes;

    /// @param token_ the ERC-20 used for payment and collateral (no fee-on-transfer or rebasing)
    /// @param initialOwner who may set protocol parameters
    /// @param treasury_ who is credited the protocol fee
    constructor(IERC20 token_, address initialOwner, address treasury_)
        LilypadCore(token_)
        EIP712("Lilypad", "1")
        Ownable(initialOwner)
    {
        if (address(token_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        disputes = address(new LilypadDisputes(token_));
        _treasury = treasury_;
        Params memory p = Params({
            maxCallbackGas: 2_000_000,
            maxOutputBytes: 4_096,
            minMatchTimeout: 10,
            maxMatchTimeout: 7 days,
            minExecutionTimeout: 10,
            maxExecutionTimeout: 7 days,
            minChallengeWindow: 0,
            maxChallengeWindow: 30 days,
            minResultsCollateralBps: 0,
            maxResultsCollateralBps: 100_000,
            minTimeoutCollateralBps: 10_000,
            protocolFeeBps: 0,
            mediatorShareBps: 2_000,
            mediationTimeout: 1 days,
            mediationFee: 0,
            auditBps: 0,
            taxBps: 0,
            jackpotBps: 0
        });
        _setParams(p);
        emit TreasurySet(treasury_);
    }

    // ================================================================== jobs

    /// @inheritdoc ILilypad
    /// @dev Stores only a packed job and the request hash; the full request is in the event.
    function runJob(JobRequest calldata request) external nonReentrant returns (uint256 jobId) {
        Params memory p = _params;
        LilypadChecks.checkRequest(request, p);

        uint64 sequence = ++_requestCount;
        jobId = sequence;
        bytes32 requestHash = keccak256(abi.encode(request));
        Job storage job = _jobs[jobId];
        job.client = msg.sender;
        job.status = JobStatus.Requested;
        job.deadline = uint40(block.timestamp + request.matchTimeout);
        job.callbackGasLimit = request.callbackGasLimit;
        job.terms = _termsId;
        job.requestHash = requestHash;
        job.maxPrice = uint96(request.maxPrice);
        job.executionTimeout = request.executionTimeout;
        job.challengeWindow = request.challengeWindow;
        // forge-lint: disable-next-line(unsafe-typecast)
        job.maxOutputBytes = uint16(request.maxOutputBytes); // checkRequest keeps it <= 32768
        // forge-lint: disable-next-line(unsafe-typecast)
        job.resultsCollateralBps = uint24(request.resultsCollateralMultiplierBps); // <= 1,000,000
        // forge-lint: disable-next-line(unsafe-typecast)
        job.timeoutCollateralBps = uint24(p.minTimeoutCollateralBps); // checkParams: <= 1,000,000
        job.deterministic = request.deterministic;
        uint256 premium;
        if (request.deterministic) {
            uint16 extra = request.extraAuditBps;
            job.auditBps = p.auditBps + extra; // checkRequest: at most 10000
            if (extra != 0) {
                if (_mediation == address(0)) revert NoMediation();
                premium = _premium(extra, p.mediationFee);
            }
        }
        _storeFilter(jobId, request);

        emit JobRequested(jobId, msg.sender, sequence, requestHash, request);
        _token.safeTransferFrom(msg.sender, address(this), request.maxPrice + premium);
    }

    /// @dev Keeps what the request asks of its provider, for {agreeDeal}, in the job's `price`
    ///      (the deal's slot, which agreeDeal writes anyway); nothing for one that asks nothing.
    function _storeFilter(uint256 jobId, JobRequest calldata request) private {
        uint256 count = request.providers.length;
        uint256 asked =
            uint256(request.minDelivered) | uint256(request.minReliabilityBps) << 32 | (count == 0 ? 0 : 1 << 48);
        if (asked == 0) return;
        // forge-lint: disable-next-line(unsafe-typecast)
        _jobs[jobId].price = uint96(asked); // 49 bits
        mapping(address => bool) storage accepted = _accepted[jobId];
        for (uint256 i; i < count; ++i) {
            accepted[request.providers[i]] = true;
        }
    }

    /// @inheritdoc ILilypad
    function auditPremium(uint256 extraAuditBps) external view returns (uint256) {
        return _premium(extraAuditBps, _params.mediationFee);
    }

    /// @inheritdoc ILilypad
    /// @dev The provider's signature binds the job id, the request hash, every amount, this chain
    ///      and this contract; a job takes one deal only, so a signature cannot be replayed.
    function agreeDeal(Deal calldata deal, bytes calldata providerSignature) external nonReentrant {
        uint256 jobId = deal.jobId;
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Requested);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(jobId, job.deadline);
        if (block.timestamp > deal.expiry) revert SignatureExpired(deal.expiry);
        if (deal.requestHash != job.requestHash) revert RequestHashMismatch(jobId, job.requestHash, deal.requestHash);
        _checkDealAmounts(job, deal);
        _verify(keccak256(abi.encode(DEAL_TYPEHASH, deal)), providerSignature, deal.provider);
        uint256 timeoutCollateral = deal.timeoutCollateral;

        Account storage account = _accounts[deal.provider];
        if (!account.isProvider) revert NotAProvider(deal.provider);
        uint256 asked = job.price; // before the deal: what the request asks of its provider
        if (asked != 0) _checkFilter(jobId, deal.provider, asked);
        uint256 free = account.free;
        if (free < timeoutCollateral) revert InsufficientCollateral(deal.provider, timeoutCollateral, free);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free = uint120(free - timeoutCollateral);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.locked += uint120(timeoutCollateral);

        uint40 executionDeadline = uint40(block.timestamp + job.executionTimeout);
        job.status = JobStatus.Agreed;
        job.deadline = executionDeadline;
        job.provider = deal.provider;
        job.price = uint96(deal.price);
        emit DealAgreed(jobId, deal.provider, deal.price, timeoutCollateral, deal.resultsCollateral, executionDeadline);
    }

    /// @dev Reverts unless `provider` is one the job's request accepts, with the record it asks
    ///      (`asked` packed as {Job-price} says).
    function _checkFilter(uint256 jobId, address provider, uint256 asked) private view {
        if (asked >> 48 != 0 && !_accepted[jobId][provider]) revert ProviderNotAccepted(jobId, provider);
        uint256 minDelivered = uint32(asked);
        uint256 minReliabilityBps = uint16(asked >> 32);
        if (minDelivered != 0 || minReliabilityBps != 0) {
            LilypadChecks.checkRecord(_reputations[provider], minDelivered, minReliabilityBps, provider);
        }
    }

    /// @inheritdoc ILilypad
    /// @dev Swaps the provider's timeout collateral for its results collateral, opens the challenge
    ///      window, then calls the client back with exactly its callbackGasLimit (last, after every
    ///      state change). Reverts with InsufficientGasForCallback if the caller sent too little gas.
    function submitResult(ResultData calldata result, bytes calldata inlineOutput, bytes calldata providerSignature)
        external
        nonReentrant
    {
        uint256 jobId = result.jobId;
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Agreed);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(jobId, job.deadline);
        Outcome status = _checkResult(result, inlineOutput.length, job.maxOutputBytes);
        address provider = job.provider;
        bytes32 outputHash = keccak256(inlineOutput);
        _verify(_resultStructHash(result, outputHash), providerSignature, provider);

        _swapCollateral(provider, _timeoutCollateral(job), _resultsCollateral(job));
        uint40 challengeDeadline = uint40(block.timestamp + job.challengeWindow);
        job.status = JobStatus.ResultSubmitted;
        job.deadline = challengeDeadline;
        job.resultHash = LilypadChecks.resultCommitment(result.status, result.exitCode, result.resultCid, outputHash);
        // the execution timeout is spent: keep the result's block, which seeds the audit draw
        if (job.auditBps != 0) job.executionTimeout = uint32(block.number);
        Reputation storage record = _reputations[provider];
        if (status == Outcome.Succeeded) {
            ++record.succeeded;
        } else if (status == Outcome.JobFailed) {
            ++record.failed;
        } else {
            ++record.providerErrors;
            job.providerError = true;
        }
        emit ResultSubmitted(jobId, provider, result, inlineOutput, challengeDeadline);
        _deliverResult(job, result, inlineOutput, status);
    }

    /// @dev Split out of submitResult to keep the stack shallow.
    function _deliverResult(Job storage job, ResultData calldata result, bytes calldata output, Outcome status)
        private
    {
        _callback(
            result.jobId,
            job.client,
            job.callbackGasLimit,
            JobResult({
                status: status,
                resultCid: result.resultCid,
                output: output,
                exitCode: result.exitCode,
                error: result.error
            })
        );
    }

    /// @inheritdoc ILilypad
    function settle(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.ResultSubmitted);
        if (block.timestamp < job.deadline) revert DeadlineNotReached(jobId, job.deadline);
        _requireNoAudit(jobId, job);
        _settle(jobId, job);
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-settleMany}.
    function settleMany(uint256[] calldata jobIds) external returns (uint256 settled) {
        (jobIds, settled);
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-acceptResult}.
    function acceptResult(uint256 jobId) external {
        jobId;
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-expire}.
    function expire(uint256 jobId) external {
        jobId;
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-timeout}.
    function timeout(uint256 jobId) external {
        jobId;
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-challenge}.
    function challenge(uint256 jobId) external {
        jobId; // named for the ABI (so below); the disputes code reads the calldata itself
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-audit}.
    function audit(uint256 jobId) external returns (bool audited) {
        (jobId, audited);
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-clearAudits}.
    function clearAudits(uint256[] calldata jobIds) external returns (uint256 cleared) {
        (jobIds, cleared);
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-resolveChallenge}.
    function resolveChallenge(uint256 jobId, bool providerCorrect, address[] calldata rewardedMediators) external {
        (jobId, providerCorrect, rewardedMediators);
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-resolveStaleChallenge}.
    function resolveStaleChallenge(uint256 jobId) external {
        jobId;
        _runDisputes();
    }

    /// @inheritdoc ILilypad
    /// @dev Runs {LilypadDisputes-redeliverCallback}.
    function redeliverCallback(ResultData calldata result, bytes calldata inlineOutput, uint32 gasLimit) external {
        (result, inlineOutput, gasLimit);
        _runDisputes();
    }

    /// @dev Runs this call's calldata as {LilypadDisputes} code on this contract's storage and
    ///      returns (or reverts with) exactly what it did.
    function _runDisputes() private {
        address target = disputes;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @inheritdoc ILilypad
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = _balances[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        _balances[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    // ================================================================== registry

    /// @inheritdoc ILilypad
    /// @dev Registering again replaces the metadata URL. The registry's code is in
    ///      {LilypadRegistry}, run on this contract's storage.
    function registerProvider(string calldata metadataUrl_) external nonReentrant {
        LilypadRegistry.register(_accounts, _metadataUrls, _providerSet, metadataUrl_);
    }

    /// @inheritdoc ILilypad
    /// @dev Running deals are unaffected; no new deal can be agreed. Collateral stays deposited.
    function deregisterProvider() external nonReentrant {
        LilypadRegistry.deregister(_accounts, _providerSet);
    }

    /// @inheritdoc ILilypad
    function depositCollateral(uint256 amount) external nonReentrant {
        LilypadRegistry.deposit(_accounts, _token, amount);
    }

    /// @inheritdoc ILilypad
    /// @dev Only free collateral can leave; collateral locked in deals stays until they end.
    function withdrawCollateral(uint256 amount) external nonReentrant {
        LilypadRegistry.withdraw(_accounts, _token, amount);
    }

    // ================================================================== admin

    /// @notice Sets every protocol parameter at once (owner only); each is checked against its cap.
    /// @dev Jobs keep the fee and timeout collateral multiplier they were requested with; a challenge
    ///      keeps the fee, the mediators' share and the mediation it was opened with.
    function setParams(Params calldata p) external onlyOwner {
        _setParams(p);
    }

    /// @notice Sets who is credited protocol fees from now on (owner only).
    function setTreasury(address treasury_) external onlyOwner {
        if (treasury_ == address(0)) revert ZeroAddress();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @notice Sets the mediation contract for new challenges (owner only). It can be replaced,
    ///         never removed: results inside their challenge window stay challengeable.
    function setMediation(address mediation_) external onlyOwner {
        if (mediation_ == address(0)) revert ZeroAddress();
        _mediation = mediation_;
        emit MediationSet(mediation_);
    }

    // ================================================================== views

    /// @inheritdoc ILilypad
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @inheritdoc ILilypad
    function requestCount() external view returns (uint64) {
        return _requestCount;
    }

    /// @inheritdoc ILilypad
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc ILilypad
    function mediation() external view returns (address) {
        return _mediation;
    }

    /// @inheritdoc ILilypad
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @inheritdoc ILilypad
    function metadataUrl(address account) external view returns (string memory) {
        return _metadataUrls[account];
    }

    /// @inheritdoc ILilypad
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @inheritdoc ILilypad
    function failedCallback(uint256 jobId) external view returns (FailedCallback memory) {
        return _failedCallbacks[jobId];
    }

    /// @inheritdoc ILilypad
    function getChallenge(uint256 jobId) external view returns (Challenge memory) {
        return _challenges[jobId];
    }

    /// @inheritdoc ILilypad
    function resultCommitment(uint8 status, int32 exitCode, bytes calldata resultCid, bytes32 outputHash)
        external
        pure
        returns (bytes32)
    {
        return LilypadChecks.resultCommitment(status, exitCode, resultCid, outputHash);
    }

    /// @inheritdoc ILilypad
    function auditState(uint256 jobId) external view returns (AuditState) {
        return _auditState(jobId, _jobs[jobId]);
    }

    /// @inheritdoc ILilypad
    function auditFund() external view returns (uint256) {
        return _auditFund;
    }

    /// @inheritdoc ILilypad
    function jackpot() external view returns (uint256) {
        return _jackpot;
    }

    /// @inheritdoc ILilypad
    function termsOf(uint16 id) external view returns (Terms memory) {
        return _terms[id];
    }

    /// @inheritdoc ILilypad
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @inheritdoc ILilypad
    function collateralOf(address account) external view returns (uint256 free, uint256 locked) {
        Account storage a = _accounts[account];
        return (a.free, a.locked);
    }

    /// @inheritdoc ILilypad
    function isProvider(address account) external view returns (bool) {
        return _accounts[account].isProvider;
    }

    /// @inheritdoc ILilypad
    function reputationOf(address provider) external view returns (Reputation memory) {
        return _reputations[provider];
    }

    /// @inheritdoc ILilypad
    function providerCount() external view returns (uint256) {
        return _providerSet.length();
    }

    /// @inheritdoc ILilypad
    function providerAt(uint256 index) external view returns (address) {
        return _providerSet.at(index);
    }

    /// @notice The EIP-712 domain separator for this chain and contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ================================================================== internals: checks

    /// @dev The collateral amounts are not chosen freely: both follow from the price, so they need
    ///      no storage of their own. The provider still signs them, so it knows what it locks.
    function _checkDealAmounts(Job storage job, Deal calldata deal) private view {
        uint256 maxPrice = job.maxPrice;
        if (deal.price > maxPrice) revert PriceAboveMax(deal.price, maxPrice);
        uint256 required = deal.price * job.timeoutCollateralBps / BPS;
        if (deal.timeoutCollateral != required) revert TimeoutCollateralMismatch(deal.timeoutCollateral, required);
        required = deal.price * job.resultsCollateralBps / BPS;
        if (deal.resultsCollateral != required) revert ResultsCollateralMismatch(deal.resultsCollateral, required);
    }

    /// @dev Succeeded needs exit code 0 and a CID; JobFailed a non-zero exit code; ProviderError an
    ///      error text. Sizes are capped so a result always fits in a block.
    function _checkResult(ResultData calldata result, uint256 outputLen, uint256 maxOutputBytes)
        private
        pure
        returns (Outcome status)
    {
        uint8 raw = result.status;
        if (raw < uint8(Outcome.Succeeded) || raw > uint8(Outcome.ProviderError)) revert InvalidResultStatus(raw);
        status = Outcome(raw);
        if (outputLen > maxOutputBytes) revert OutputTooLarge(outputLen, maxOutputBytes);
        uint256 cidLen = result.resultCid.length;
        if (cidLen > MAX_RESULT_CID_BYTES) revert ResultCidTooLong(cidLen, MAX_RESULT_CID_BYTES);
        uint256 errLen = bytes(result.error).length;
        if (errLen > MAX_ERROR_BYTES) revert ErrorTextTooLong(errLen, MAX_ERROR_BYTES);
        if (status == Outcome.Succeeded) {
            if (result.exitCode != 0) revert ExitCodeMismatch(status, result.exitCode);
            if (cidLen == 0) revert MissingResultCid();
        } else if (status == Outcome.JobFailed) {
            if (result.exitCode == 0) revert ExitCodeMismatch(status, result.exitCode);
        } else if (errLen == 0) {
            revert MissingErrorText();
        }
    }

    function _resultStructHash(ResultData calldata r, bytes32 outputHash) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                RESULT_TYPEHASH,
                r.jobId,
                r.status,
                keccak256(r.resultCid),
                outputHash,
                r.exitCode,
                keccak256(bytes(r.error))
            )
        );
    }

    function _verify(bytes32 structHash, bytes calldata signature, address expected) private view {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(_hashTypedDataV4(structHash), signature);
        if (err != ECDSA.RecoverError.NoError || signer != expected) revert InvalidSignature(expected);
    }

    /// @dev Appends the money terms new jobs take; jobs already requested keep theirs.
    function _setParams(Params memory p) private {
        LilypadChecks.checkParams(p);
        if (p.auditBps != 0 && _mediation == address(0)) revert NoMediation();
        _params = p;
        uint16 id = ++_termsId;
        _terms[id] = Terms({
            feeBps: p.protocolFeeBps,
            taxBps: p.taxBps,
            jackpotBps: p.jackpotBps,
            auditBps: p.auditBps,
            mediationFee: p.mediationFee
        });
        emit ParamsSet(p);
    }

    // ================================================================== internals: money

    /// @dev Releases `timeoutCollateral` and locks `resultsCollateral` in one write.
    function _swapCollateral(address provider, uint256 timeoutCollateral, uint256 resultsCollateral) private {
        Account storage account = _accounts[provider];
        uint256 free = uint256(account.free) + timeoutCollateral;
        if (free < resultsCollateral) revert InsufficientCollateral(provider, resultsCollateral, free);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free = uint120(free - resultsCollateral);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.locked = uint120(uint256(account.locked) - timeoutCollateral + resultsCollateral);
    }
}
