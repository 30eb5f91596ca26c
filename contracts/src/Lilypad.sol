// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
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
    FailedCallback,
    Params,
    MediationCase,
    Reputation
} from "./interfaces/ILilypad.sol";
import {ILilypadCallback} from "./interfaces/ILilypadCallback.sol";
import {IMediation} from "./interfaces/IMediation.sol";
import {LilypadChecks} from "./libraries/LilypadChecks.sol";
import {Account, LilypadRegistry} from "./libraries/LilypadRegistry.sol";

/// @title Lilypad
/// @notice A trustless compute marketplace callable from smart contracts. Clients escrow a max price
///         with {runJob}; a resource provider's EIP-712 signed deal ({agreeDeal}) and result
///         ({submitResult}) are relayed by anyone; the client is called back with exactly the gas
///         it asked for; after a challenge window the job settles. This one contract holds every
///         token: job escrow, provider collateral, challenge fees and credited balances,
///         which leave only through {withdraw} and {withdrawCollateral}.
/// @dev See docs/protocol.md for the state machine, type strings and arithmetic.
contract Lilypad is ILilypad, EIP712, Ownable2Step, ReentrancyGuardTransient {
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

    uint256 internal constant BPS = 10_000;
    /// @notice Hard cap on the protocol fee: 10%.
    uint256 public constant MAX_PROTOCOL_FEE_BPS = LilypadChecks.MAX_PROTOCOL_FEE_BPS;
    /// @notice Most bytes of a result CID.
    uint256 public constant MAX_RESULT_CID_BYTES = 128;
    /// @notice Most bytes of a result's error text.
    uint256 public constant MAX_ERROR_BYTES = 1_024;
    /// @notice Most bytes of a metadata URL.
    uint256 public constant MAX_METADATA_URL_BYTES = LilypadRegistry.MAX_METADATA_URL_BYTES;
    /// @notice Most mediators one verdict can reward.
    uint256 public constant MAX_REWARDEES = 32;
    /// @notice After a challenge's mediation deadline plus this, anyone may close it.
    uint256 public constant STALE_CHALLENGE_GRACE = 1 days;
    /// @notice Gas kept back around a callback: the CALL itself, the event after it and, when it
    ///         failed, recording the failure (a new slot) for {redeliverCallback}.
    uint256 public constant CALLBACK_GAS_RESERVE = 35_000;

    // ------------------------------------------------------------------ storage
    /// @inheritdoc ILilypad
    IERC20 public immutable token;
    /// @inheritdoc ILilypad
    uint64 public requestCount;
    Params internal _params;
    /// @inheritdoc ILilypad
    address public treasury;
    /// @inheritdoc ILilypad
    address public mediation;

    mapping(uint256 jobId => Job) internal _jobs;
    mapping(uint256 jobId => Challenge) internal _challenges;
    /// @inheritdoc ILilypad
    mapping(address account => uint256) public balanceOf;
    mapping(address account => Account) internal _accounts;
    /// @inheritdoc ILilypad
    mapping(address account => string) public metadataUrl;
    EnumerableSet.AddressSet internal _providerSet;
    mapping(uint256 jobId => FailedCallback) internal _failedCallbacks;
    mapping(address provider => Reputation) internal _reputations;

    /// @param token_ the ERC-20 used for payment and collateral (no fee-on-transfer or rebasing)
    /// @param initialOwner who may set protocol parameters
    /// @param treasury_ who is credited the protocol fee
    constructor(IERC20 token_, address initialOwner, address treasury_) EIP712("Lilypad", "1") Ownable(initialOwner) {
        if (address(token_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        token = token_;
        treasury = treasury_;
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
            mediationFee: 0
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

        uint64 sequence = ++requestCount;
        jobId = sequence;
        bytes32 requestHash = keccak256(abi.encode(request));
        Job storage job = _jobs[jobId];
        job.client = msg.sender;
        job.status = JobStatus.Requested;
        job.deadline = uint40(block.timestamp + request.matchTimeout);
        job.callbackGasLimit = request.callbackGasLimit;
        job.feeBps = p.protocolFeeBps;
        job.requestHash = requestHash;
        job.maxPrice = uint96(request.maxPrice);
        job.executionTimeout = request.executionTimeout;
        job.challengeWindow = request.challengeWindow;
        // forge-lint: disable-next-line(unsafe-typecast)
        job.maxOutputBytes = uint16(request.maxOutputBytes); // checkRequest keeps it <= 32768
        job.resultsCollateralBps = request.resultsCollateralMultiplierBps;
        job.timeoutCollateralBps = p.minTimeoutCollateralBps;
        job.deterministic = request.deterministic;

        emit JobRequested(jobId, msg.sender, sequence, requestHash, request);
        token.safeTransferFrom(msg.sender, address(this), request.maxPrice);
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
        _settle(jobId, job);
    }

    /// @inheritdoc ILilypad
    function settleMany(uint256[] calldata jobIds) external nonReentrant returns (uint256 settled) {
        for (uint256 i; i < jobIds.length; ++i) {
            Job storage job = _jobs[jobIds[i]];
            if (job.status == JobStatus.ResultSubmitted && block.timestamp >= job.deadline) {
                _settle(jobIds[i], job);
                ++settled;
            }
        }
    }

    /// @inheritdoc ILilypad
    function acceptResult(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.ResultSubmitted);
        if (msg.sender != job.client) revert NotClient(msg.sender);
        _settle(jobId, job);
    }

    /// @inheritdoc ILilypad
    function expire(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Requested);
        if (block.timestamp < job.deadline) revert DeadlineNotReached(jobId, job.deadline);
        job.status = JobStatus.Expired;
        address client = job.client;
        uint256 refund = job.maxPrice;
        balanceOf[client] += refund;
        emit JobExpired(jobId, client, refund);
        _callbackEmpty(jobId, client, job.callbackGasLimit, Outcome.Expired);
    }

    /// @inheritdoc ILilypad
    /// @dev The provider's timeout collateral is slashed to the client on top of the full refund.
    function timeout(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Agreed);
        if (block.timestamp < job.deadline) revert DeadlineNotReached(jobId, job.deadline);
        job.status = JobStatus.TimedOut;
        address provider = job.provider;
        uint256 slashed = _timeoutCollateral(job);
        // forge-lint: disable-next-line(unsafe-typecast)
        _accounts[provider].locked -= uint120(slashed);
        Reputation storage record = _reputations[provider];
        ++record.timedOut;
        // forge-lint: disable-next-line(unsafe-typecast)
        record.slashed += uint128(slashed); // below 2^116 (see Account)
        address client = job.client;
        uint256 refund = job.maxPrice;
        balanceOf[client] += refund + slashed;
        emit JobTimedOut(jobId, provider, refund, slashed);
        _callbackEmpty(jobId, client, job.callbackGasLimit, Outcome.TimedOut);
    }

    /// @inheritdoc ILilypad
    /// @dev Pulls the mediation fee, then hands the case to the configured mediation contract.
    function challenge(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.ResultSubmitted);
        if (msg.sender != job.client) revert NotClient(msg.sender);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(jobId, job.deadline);
        if (!job.deterministic) revert NotDeterministic(jobId);
        address mediation_ = mediation;
        if (mediation_ == address(0)) revert NoMediation();
        Params storage p = _params;
        // forge-lint: disable-next-line(unsafe-typecast)
        uint80 fee = uint80(p.mediationFee); // checkParams keeps it within 80 bits
        uint40 mediationDeadline = uint40(block.timestamp + p.mediationTimeout);
        job.status = JobStatus.Challenged;
        job.deadline = mediationDeadline;
        ++_reputations[job.provider].mediated;
        _challenges[jobId] = Challenge({mediation: mediation_, fee: fee, mediatorShareBps: p.mediatorShareBps});
        emit JobChallenged(jobId, msg.sender, mediation_, fee, mediationDeadline);
        token.safeTransferFrom(msg.sender, address(this), fee);
        MediationCase memory mediationCase = MediationCase({
            client: msg.sender,
            provider: job.provider,
            requestHash: job.requestHash,
            resultHash: job.resultHash,
            deadline: mediationDeadline
        });
        IMediation(mediation_).startMediation(jobId, mediationCase);
    }

    /// @inheritdoc ILilypad
    /// @dev Upheld: settles as usual and pays the fee to `rewardedMediators` (refunds it to the
    ///      client if the list is empty). Overturned: refunds the client in full and slashes the
    ///      results collateral, `mediatorShareBps` of it plus the fee to the mediators, the rest to
    ///      the client.
    function resolveChallenge(uint256 jobId, bool providerCorrect, address[] calldata rewardedMediators)
        external
        nonReentrant
    {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Challenged);
        if (msg.sender != _challenges[jobId].mediation) revert NotMediation(msg.sender);
        if (rewardedMediators.length > MAX_REWARDEES) {
            revert TooManyRewardees(rewardedMediators.length, MAX_REWARDEES);
        }
        _resolve(jobId, job, providerCorrect, rewardedMediators, false);
    }

    /// @inheritdoc ILilypad
    function resolveStaleChallenge(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        _requireStatus(job, jobId, JobStatus.Challenged);
        uint256 openAt = uint256(job.deadline) + STALE_CHALLENGE_GRACE;
        if (block.timestamp < openAt) revert DeadlineNotReached(jobId, openAt);
        _resolve(jobId, job, true, new address[](0), true);
    }

    /// @inheritdoc ILilypad
    /// @dev Marks the failure re-delivered before the call (checks-effects-interactions), and
    ///      calls the client directly, so a re-delivery that fails is not recorded again.
    function redeliverCallback(ResultData calldata result, bytes calldata inlineOutput, uint32 gasLimit)
        external
        nonReentrant
    {
        uint256 jobId = result.jobId;
        FailedCallback storage failed = _failedCallbacks[jobId];
        Outcome outcome = failed.status;
        if (outcome == Outcome.None || failed.redelivered) revert NoFailedCallback(jobId);
        Job storage job = _jobs[jobId];
        if (gasLimit < job.callbackGasLimit) revert CallbackGasTooLow(gasLimit, job.callbackGasLimit);
        JobResult memory redelivered;
        redelivered.status = outcome;
        if (outcome <= Outcome.ProviderError) {
            bytes32 commitment = LilypadChecks.resultCommitment(
                result.status, result.exitCode, result.resultCid, keccak256(inlineOutput)
            );
            if (commitment != job.resultHash) revert ResultMismatch(jobId);
            (redelivered.resultCid, redelivered.output, redelivered.exitCode) =
            (result.resultCid, inlineOutput, result.exitCode);
        }
        failed.redelivered = true;
        _tryCallback(jobId, job.client, gasLimit, redelivered);
    }

    /// @inheritdoc ILilypad
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = balanceOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        balanceOf[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ================================================================== registry

    /// @inheritdoc ILilypad
    /// @dev Registering again replaces the metadata URL. The registry's code is in
    ///      {LilypadRegistry}, run on this contract's storage.
    function registerProvider(string calldata metadataUrl_) external nonReentrant {
        LilypadRegistry.register(_accounts, metadataUrl, _providerSet, metadataUrl_);
    }

    /// @inheritdoc ILilypad
    /// @dev Running deals are unaffected; no new deal can be agreed. Collateral stays deposited.
    function deregisterProvider() external nonReentrant {
        LilypadRegistry.deregister(_accounts, _providerSet);
    }

    /// @inheritdoc ILilypad
    function depositCollateral(uint256 amount) external nonReentrant {
        LilypadRegistry.deposit(_accounts, token, amount);
    }

    /// @inheritdoc ILilypad
    /// @dev Only free collateral can leave; collateral locked in deals stays until they end.
    function withdrawCollateral(uint256 amount) external nonReentrant {
        LilypadRegistry.withdraw(_accounts, token, amount);
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
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @notice Sets the mediation contract for new challenges (owner only). It can be replaced,
    ///         never removed: results inside their challenge window stay challengeable.
    function setMediation(address mediation_) external onlyOwner {
        if (mediation_ == address(0)) revert ZeroAddress();
        mediation = mediation_;
        emit MediationSet(mediation_);
    }

    // ================================================================== views

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

    function _requireStatus(Job storage job, uint256 jobId, JobStatus expected) private view {
        JobStatus status = job.status;
        if (status != expected) {
            if (status == JobStatus.None) revert JobNotFound(jobId);
            revert InvalidJobStatus(jobId, status);
        }
    }

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

    /// @dev price x the job's timeout collateral multiplier (fixed when the job was requested).
    function _timeoutCollateral(Job storage job) private view returns (uint256) {
        return uint256(job.price) * job.timeoutCollateralBps / BPS;
    }

    /// @dev price x the client's results collateral multiplier.
    function _resultsCollateral(Job storage job) private view returns (uint256) {
        return uint256(job.price) * job.resultsCollateralBps / BPS;
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

    function _setParams(Params memory p) private {
        LilypadChecks.checkParams(p);
        _params = p;
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

    /// @dev Provider paid price minus fee, treasury the fee, client refunded maxPrice - price,
    ///      results collateral freed. A ProviderError result earns nothing: the price counts as
    ///      zero, so the client gets all of maxPrice back and no fee is taken. Credits only:
    ///      nothing leaves here.
    function _settle(uint256 jobId, Job storage job) private {
        job.status = JobStatus.Settled;
        address provider = job.provider;
        uint256 price = job.providerError ? 0 : job.price;
        uint256 fee = price * job.feeBps / BPS;
        uint256 refund = job.maxPrice - price;
        uint256 collateral = _resultsCollateral(job);
        Account storage account = _accounts[provider];
        // forge-lint: disable-next-line(unsafe-typecast)
        account.locked -= uint120(collateral);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free += uint120(collateral);
        if (price != fee) balanceOf[provider] += price - fee;
        if (fee != 0) balanceOf[treasury] += fee;
        if (refund != 0) balanceOf[job.client] += refund;
        emit JobSettled(jobId, provider, price - fee, fee, refund);
    }

    function _resolve(uint256 jobId, Job storage job, bool providerCorrect, address[] memory rewardees, bool stale)
        private
    {
        Challenge storage c = _challenges[jobId];
        uint256 fee = c.fee;
        address client = job.client;
        uint256 toClient;
        uint256 toMediators;
        Outcome verdict;
        Reputation storage record = _reputations[job.provider];
        if (providerCorrect) {
            _settle(jobId, job);
            ++record.upheld;
            verdict = Outcome.UpheldByMediation;
            if (rewardees.length == 0) toClient = fee;
            else toMediators = fee;
        } else {
            job.status = JobStatus.Overturned;
            verdict = Outcome.OverturnedByMediation;
            uint256 slashed = _resultsCollateral(job);
            // forge-lint: disable-next-line(unsafe-typecast)
            _accounts[job.provider].locked -= uint120(slashed);
            ++record.overturned;
            // forge-lint: disable-next-line(unsafe-typecast)
            record.slashed += uint128(slashed);
            uint256 share = rewardees.length == 0 ? 0 : slashed * c.mediatorShareBps / BPS;
            toMediators = rewardees.length == 0 ? 0 : fee + share;
            toClient = uint256(job.maxPrice) + slashed - share + (rewardees.length == 0 ? fee : 0);
        }
        if (toClient != 0) balanceOf[client] += toClient;
        if (toMediators != 0) _split(rewardees, toMediators);
        emit ChallengeResolved(jobId, providerCorrect, stale, toClient, toMediators);
        // The verdict supersedes a failed result callback: only the verdict may be re-delivered.
        delete _failedCallbacks[jobId];
        _callbackEmpty(jobId, client, job.callbackGasLimit, verdict);
    }

    /// @dev Equal shares; the rounding remainder goes to the first mediator.
    function _split(address[] memory to, uint256 amount) private {
        uint256 n = to.length;
        uint256 each = amount / n;
        balanceOf[to[0]] += amount - each * (n - 1);
        for (uint256 i = 1; i < n; ++i) {
            balanceOf[to[i]] += each;
        }
    }

    // ================================================================== internals: callbacks

    function _callbackEmpty(uint256 jobId, address client, uint256 gasLimit, Outcome status) private {
        _callback(
            jobId, client, gasLimit, JobResult({status: status, resultCid: "", output: "", exitCode: 0, error: ""})
        );
    }

    /// @dev Calls `client.onJobResult` with exactly `gasLimit` gas and copies no return data, so a
    ///      callback that reverts, loops or returns a huge payload only changes which event is
    ///      emitted. The caller must leave enough gas for the callee to get all of `gasLimit` after
    ///      the 63/64 rule (EIP-150), or the whole call reverts: a relayer cannot starve it.
    function _callback(uint256 jobId, address client, uint256 gasLimit, JobResult memory result) private {
        if (!_tryCallback(jobId, client, gasLimit, result)) {
            _failedCallbacks[jobId] = FailedCallback({status: result.status, redelivered: false});
        }
    }

    /// @dev The call itself (see {_callback}); false when it failed.
    function _tryCallback(uint256 jobId, address client, uint256 gasLimit, JobResult memory result)
        private
        returns (bool ok)
    {
        if (gasLimit == 0) {
            emit CallbackSkipped(jobId, result.status);
            return true;
        }
        bytes memory payload = abi.encodeCall(ILilypadCallback.onJobResult, (jobId, result));
        uint256 required = gasLimit + gasLimit / 63 + CALLBACK_GAS_RESERVE;
        if (gasleft() < required) revert InsufficientGasForCallback(gasleft(), required);
        assembly ("memory-safe") {
            ok := call(gasLimit, client, 0, add(payload, 0x20), mload(payload), 0, 0)
        }
        if (ok) emit CallbackDelivered(jobId, result.status);
        else emit CallbackFailed(jobId, result.status);
    }
}
