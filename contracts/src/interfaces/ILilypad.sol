// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice One named input of a job. Keys are 1-64 bytes of `[A-Za-z0-9_.-]` and unique within a
///         request; values are any UTF-8 text (spaces and `=` included) up to 4096 bytes.
struct InputParam {
    string key;
    string value;
}

/// @notice What a client asks for. Its keccak256(abi.encode(request)) is the job's `requestHash`,
///         which the provider signs in the deal, so nobody can run a job other than the one asked.
struct JobRequest {
    /// module name, 1-128 bytes (e.g. "cowsay")
    string module;
    /// module version, 1-64 bytes (e.g. "1.0.0")
    string version;
    /// the module's id: keccak256 of its canonical definition (`lilypad module id`), which the
    /// provider and every mediator check against their own copy before running it. Zero leaves
    /// the module unpinned (any definition under that name and version) and then `deterministic`
    /// must be false
    bytes32 moduleId;
    /// whether the module's outputs depend on its inputs only, so a result can be re-run and
    /// challenged; a provider refuses a request claiming it for a module that is not deterministic
    bool deterministic;
    /// at most 32 inputs, 16 KiB of keys and values in all
    InputParam[] inputs;
    /// most the client pays, escrowed at request time (must fit in a uint96)
    uint256 maxPrice;
    /// seconds from the request within which a deal must be agreed
    uint32 matchTimeout;
    /// seconds from the deal within which the result must be submitted
    uint32 executionTimeout;
    /// gas given to the client's onJobResult callback; 0 means "do not call me back"
    uint32 callbackGasLimit;
    /// most inline output bytes the client wants on-chain
    uint32 maxOutputBytes;
    /// results collateral the provider must lock, as basis points of the price (20000 = 2x)
    uint32 resultsCollateralMultiplierBps;
    /// seconds after the result during which the client may challenge it (0 = no challenge)
    uint32 challengeWindow;
    /// an audit rate, basis points, the client buys on top of the protocol's (a deterministic job
    /// only, the two at most 100% together): the job is audited with the sum, which lowers the
    /// collateral floor. The client pays `extraAuditBps x mediationFee / 10000` (rounded up)
    /// beside maxPrice ({ILilypad-auditPremium}); it goes into the audit fund when the result is
    /// in, and back to the client if none comes
    uint16 extraAuditBps;
    /// the providers who may take the job (at most 16); empty: any provider
    address[] providers;
    /// the least results a provider must have delivered (Succeeded or JobFailed) to take the job
    uint32 minDelivered;
    /// the least share, basis points, of a provider's deals that ended without its fault (a
    /// timeout, a ProviderError or an overturned result) to take the job; 0: any. A provider with
    /// no deal meets any share (ask `minDelivered` to keep newcomers out)
    uint16 minReliabilityBps;
}

/// @notice The deal terms a provider signs (EIP-712 type `Deal`).
struct Deal {
    uint256 jobId;
    bytes32 requestHash;
    address provider;
    /// at most the job's maxPrice
    uint256 price;
    /// must equal price * job.timeoutCollateralBps / 10000 (rounded down)
    uint256 timeoutCollateral;
    /// must equal price * job.resultsCollateralBps / 10000 (rounded down)
    uint256 resultsCollateral;
    /// unix time after which the signature is no longer accepted
    uint256 expiry;
}

/// @notice A provider's result (EIP-712 type `Result`, with `outputHash = keccak256(inlineOutput)`).
struct ResultData {
    uint256 jobId;
    /// 1 = Succeeded, 2 = JobFailed, 3 = ProviderError (the first values of {Outcome})
    uint8 status;
    /// UTF-8 bytes of the outputs' CID string (e.g. "bafy..."), at most 128 bytes
    bytes resultCid;
    int32 exitCode;
    /// human-readable error, at most 1024 bytes
    string error;
}

/// @notice Everything a client can learn from a callback. Each job ends in exactly one of these.
enum Outcome {
    None,
    /// the provider ran the job and it exited 0
    Succeeded,
    /// the job ran and exited non-zero (its outputs, stderr included, are under resultCid)
    JobFailed,
    /// the provider could not run the job (image missing, out of memory, bad input, ...)
    ProviderError,
    /// no deal was agreed before the match deadline; the client was refunded
    Expired,
    /// a deal was agreed but no result came before the execution deadline; refunded + collateral
    TimedOut,
    /// the client challenged and mediation upheld the provider's result
    UpheldByMediation,
    /// the client challenged and mediation overturned the provider's result
    OverturnedByMediation
}

/// @notice On-chain job states. Every transition moves to a higher number; 5-8 are terminal.
enum JobStatus {
    None,
    Requested,
    Agreed,
    ResultSubmitted,
    Challenged,
    Settled,
    Expired,
    TimedOut,
    Overturned
}

/// @notice What the callback carries. For Expired/TimedOut and the mediation verdicts the byte
///         fields are empty and exitCode is 0 (the provider's result was in the earlier callback).
struct JobResult {
    Outcome status;
    bytes resultCid;
    bytes output;
    int32 exitCode;
    string error;
}

/// @notice A job as stored. Packed into five slots; `deadline` is the deadline of the current phase.
struct Job {
    // slot 0
    address client;
    JobStatus status;
    /// Requested: match deadline; Agreed: execution deadline; ResultSubmitted: end of the challenge
    /// window; Challenged: mediation deadline
    uint40 deadline;
    uint32 callbackGasLimit;
    /// the protocol terms (fee, audit rate, tax, jackpot share) in force when the job was
    /// requested: {ILilypad-termsOf}
    uint16 terms;
    // slot 1
    bytes32 requestHash;
    // slot 2
    uint96 maxPrice;
    /// seconds, until the result is in; then, for a job that may be audited, the result's block
    /// number (its audit draw is seeded by the block AUDIT_SEED_DELAY after it), and 2^32 - 1
    /// once the draw passed it over and that was recorded ({ILilypad-audit})
    uint32 executionTimeout;
    uint32 challengeWindow;
    /// at most 32768 (MAX_OUTPUT_BYTES)
    uint16 maxOutputBytes;
    uint24 resultsCollateralBps;
    /// timeout collateral as basis points of the price, fixed when the job was requested
    uint24 timeoutCollateralBps;
    /// the chance, in basis points, that the protocol audits the result (the terms' audit rate
    /// plus the request's extraAuditBps for a deterministic job, 0 for any other)
    uint16 auditBps;
    /// the request's `deterministic`: only such a job can be challenged
    bool deterministic;
    /// the submitted result is a ProviderError (the provider could not run the job): it earns
    /// nothing, and settling it refunds the client in full
    bool providerError;
    // slot 3 (deal)
    address provider;
    /// the deal's price. Before the deal (provider zero) it holds what the request asks of its
    /// provider, for {ILilypad-agreeDeal}: `minDelivered | minReliabilityBps << 32 | named << 48`
    /// (`named`: 1 when the request names its providers), 0 when it asks nothing
    uint96 price;
    // slot 4 (result)
    /// the commitment to the whole result the provider submitted: status, exit code, result CID
    /// and inline output (see {resultCommitment})
    bytes32 resultHash;
}

/// @notice A challenge in progress or done: who mediates it, the fee the client paid and the
///         mediators' share of a slash, both fixed when the challenge opened.
struct Challenge {
    address mediation;
    uint80 fee;
    uint16 mediatorShareBps;
    /// who opened the protocol's audit of the result ({ILilypad-audit}); zero for a client's
    /// challenge. It is paid the jackpot if the result is overturned; the fee came from the
    /// audit fund and goes back there if no mediator earns it
    address auditor;
}

/// @notice The money terms of a job, fixed when it is requested (each {ILilypad-setParams}
///         appends one; a job keeps the id it was requested under).
struct Terms {
    /// protocol fee, basis points of the price, credited to the treasury
    uint16 feeBps;
    /// audit tax, basis points of the price of every deterministic job, credited to the audit fund
    uint16 taxBps;
    /// basis points of every overturned result's slashed collateral that go to the jackpot
    uint16 jackpotBps;
    /// the protocol's audit rate, basis points: the chance each deterministic result is audited
    uint16 auditBps;
    /// the mediation fee, which prices an audit rate a client buys ({JobRequest-extraAuditBps})
    uint96 mediationFee;
}

/// @notice Where a job's protocol audit stands ({ILilypad-auditState}).
enum AuditState {
    /// not to be audited: audits were off when it was requested, it is not deterministic, the
    /// draw passed it over, or its result is not (or no longer) waiting
    None,
    /// the block whose hash draws it does not exist yet
    Pending,
    /// drawn for an audit: `audit` opens it; the job does not settle before
    Due,
    /// drawn and passed over: it settles as usual (`audit` records it)
    Clear
}

/// @notice A provider's record, kept by the contract in the transactions that make it: results it
///         submitted by status, deals it let time out, its results that went to mediation and how
///         mediation ended, and the collateral it lost (timeouts and overturned results).
struct Reputation {
    // slot 0
    /// results submitted as Succeeded
    uint32 succeeded;
    /// results submitted as JobFailed (the module ran and exited non-zero)
    uint32 failed;
    /// results submitted as ProviderError (it could not run the job; such results are not paid)
    uint32 providerErrors;
    /// deals it took and did not deliver before the execution deadline
    uint32 timedOut;
    /// its results that were challenged
    uint32 mediated;
    /// of those, upheld (the verdict, or a stale challenge closed in its favour)
    uint32 upheld;
    /// of those, overturned
    uint32 overturned;
    /// its results the protocol audited (they count in upheld or overturned too once decided)
    uint32 audited;
    // slot 1
    /// collateral slashed from it, in token units
    uint128 slashed;
    /// of its audited results, those upheld
    uint32 passedAudits;
}

/// @notice A job's latest callback that failed (reverted or ran out of gas), until it is handed
///         over again with {ILilypad-redeliverCallback}; `redelivered` once it was.
struct FailedCallback {
    Outcome status;
    bool redelivered;
}

/// @notice Protocol parameters (owner-settable within the bounds the contract enforces).
struct Params {
    uint32 maxCallbackGas;
    uint32 maxOutputBytes;
    uint32 minMatchTimeout;
    uint32 maxMatchTimeout;
    uint32 minExecutionTimeout;
    uint32 maxExecutionTimeout;
    uint32 minChallengeWindow;
    uint32 maxChallengeWindow;
    uint32 minResultsCollateralBps;
    uint32 maxResultsCollateralBps;
    /// timeout collateral a deal locks, as basis points of the price (snapshotted into each job)
    uint32 minTimeoutCollateralBps;
    /// protocol fee taken from the price on settlement (at most 10%)
    uint16 protocolFeeBps;
    /// share of slashed results collateral that goes to the mediators (at most 50%)
    uint16 mediatorShareBps;
    /// seconds the mediation has to reach a verdict
    uint32 mediationTimeout;
    /// fee a client pays to challenge a result; it pays the mediators. An audit pays them as
    /// much of it as the audit fund holds
    uint96 mediationFee;
    /// chance, basis points, that the protocol audits a deterministic result (at most 100%; not
    /// zero only while a mediation is set). A request's results collateral multiplier must then
    /// be at least (1/p - 1) x 10000 ({ILilypad-CollateralBelowAuditBound})
    uint16 auditBps;
    /// audit tax, basis points of the price of each deterministic job (at most 50%)
    uint16 taxBps;
    /// basis points of an overturned result's slashed collateral that go to the jackpot (at most 50%)
    uint16 jackpotBps;
}

/// @notice What a mediation contract is told when a challenge starts.
struct MediationCase {
    address client;
    address provider;
    bytes32 requestHash;
    /// the provider's result commitment (status, exit code, result CID, inline output; see
    /// {ILilypad-resultCommitment}); mediators vote the commitment of their own re-run
    bytes32 resultHash;
    /// the mediation should resolve before this; after it plus a grace period anyone can close the
    /// challenge on Lilypad itself (provider paid, fee refunded)
    uint64 deadline;
}

/// @title ILilypad
/// @notice The Lilypad job marketplace: escrow, deals, results, settlement, registry, challenges.
interface ILilypad {
    // ------------------------------------------------------------------ events: jobs
    /// @notice A job was requested. `sequence` grows by exactly one per request (it equals jobId),
    ///         so an indexer that has seen 1..n has missed nothing.
    event JobRequested(
        uint256 indexed jobId, address indexed client, uint64 sequence, bytes32 requestHash, JobRequest request
    );
    event DealAgreed(
        uint256 indexed jobId,
        address indexed provider,
        uint256 price,
        uint256 timeoutCollateral,
        uint256 resultsCollateral,
        uint64 executionDeadline
    );
    /// @notice A provider's result was accepted; `result.status` is 1 (Succeeded), 2 (JobFailed) or
    ///         3 (ProviderError) and `output` is the inline output.
    event ResultSubmitted(
        uint256 indexed jobId, address indexed provider, ResultData result, bytes output, uint64 challengeDeadline
    );
    event JobSettled(
        uint256 indexed jobId,
        address indexed provider,
        uint256 providerPayout,
        uint256 protocolFee,
        uint256 clientRefund
    );
    event JobExpired(uint256 indexed jobId, address indexed client, uint256 refund);
    event JobTimedOut(uint256 indexed jobId, address indexed provider, uint256 refund, uint256 slashedCollateral);
    event JobChallenged(
        uint256 indexed jobId, address indexed client, address mediation, uint256 fee, uint64 mediationDeadline
    );
    /// @notice A challenge ended. `toClient`/`toMediators` are what the verdict moved beyond settlement.
    event ChallengeResolved(
        uint256 indexed jobId, bool providerCorrect, bool stale, uint256 toClient, uint256 toMediators
    );
    /// @notice The protocol's audit of a result opened: it goes to mediation like a challenge, its
    ///         fee paid from the audit fund.
    event JobAudited(
        uint256 indexed jobId, address indexed auditor, address mediation, uint256 fee, uint64 mediationDeadline
    );
    /// @notice The audit draw passed the job's result over; it settles as usual.
    event AuditCleared(uint256 indexed jobId);
    /// @notice A settled deterministic job paid its audit tax into the audit fund.
    event AuditTaxPaid(uint256 indexed jobId, uint256 tax);
    /// @notice An overturned result added `added` to the jackpot and whoever exposed it (the
    ///         client who challenged, or the auditor) was credited `paid` of it; `left` stays.
    event JackpotPaid(uint256 indexed jobId, address indexed to, uint256 added, uint256 paid, uint256 left);
    /// @notice The client's callback returned normally.
    event CallbackDelivered(uint256 indexed jobId, Outcome status);
    /// @notice The client's callback reverted or ran out of gas; nothing else changed.
    event CallbackFailed(uint256 indexed jobId, Outcome status);
    /// @notice The client asked for no callback (callbackGasLimit = 0).
    event CallbackSkipped(uint256 indexed jobId, Outcome status);

    // ------------------------------------------------------------------ events: accounts
    event Withdrawn(address indexed account, uint256 amount);
    event ProviderRegistered(address indexed provider, string metadataUrl);
    event ProviderDeregistered(address indexed provider);
    event CollateralDeposited(address indexed account, uint256 amount);
    event CollateralWithdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ events: admin
    event ParamsSet(Params params);
    event TreasurySet(address treasury);
    event MediationSet(address mediation);

    // ------------------------------------------------------------------ errors: requests
    error EmptyModule();
    error ModuleTooLong(uint256 length, uint256 max);
    error EmptyVersion();
    error VersionTooLong(uint256 length, uint256 max);
    error TooManyInputs(uint256 count, uint256 max);
    error EmptyInputKey(uint256 index);
    error InputKeyTooLong(uint256 index, uint256 length, uint256 max);
    error InvalidInputKey(uint256 index, uint256 position);
    error InputTooLarge(uint256 index, uint256 length, uint256 max);
    error InputsTooLarge(uint256 totalBytes, uint256 max);
    error DuplicateInputKey(uint256 index);
    error AmountTooLarge(uint256 amount, uint256 max);
    error CallbackGasTooHigh(uint256 requested, uint256 max);
    error MaxOutputBytesTooHigh(uint256 requested, uint256 max);
    error MatchTimeoutOutOfRange(uint256 value, uint256 min, uint256 max);
    error ExecutionTimeoutOutOfRange(uint256 value, uint256 min, uint256 max);
    error ChallengeWindowOutOfRange(uint256 value, uint256 min, uint256 max);
    error ResultsCollateralMultiplierOutOfRange(uint256 value, uint256 min, uint256 max);
    /// @notice With the protocol auditing a deterministic result with chance p, cheating pays
    ///         unless the results collateral is at least price x (1/p - 1): raise the multiplier
    ///         to `requiredBps` (docs/economics.md).
    error CollateralBelowAuditBound(uint256 multiplierBps, uint256 requiredBps);
    /// @notice A request's extraAuditBps is above `max`: 100% less the protocol's rate for a
    ///         deterministic job, 0 for any other (only a deterministic result can be audited).
    error ExtraAuditOutOfRange(uint256 extraAuditBps, uint256 max);
    error TooManyProviders(uint256 count, uint256 max);
    /// @notice A request's minReliabilityBps is above 10000.
    error ReliabilityOutOfRange(uint256 minReliabilityBps);

    // ------------------------------------------------------------------ errors: lifecycle
    error JobNotFound(uint256 jobId);
    error InvalidJobStatus(uint256 jobId, JobStatus status);
    error DeadlinePassed(uint256 jobId, uint256 deadline);
    error DeadlineNotReached(uint256 jobId, uint256 deadline);
    error SignatureExpired(uint256 expiry);
    error InvalidSignature(address expectedSigner);
    error RequestHashMismatch(uint256 jobId, bytes32 expected, bytes32 got);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error TimeoutCollateralMismatch(uint256 signed, uint256 required);
    error ResultsCollateralMismatch(uint256 signed, uint256 required);
    error NotAProvider(address account);
    error InsufficientCollateral(address account, uint256 required, uint256 available);
    /// @notice The job's request names the providers it accepts, and `provider` is not one.
    error ProviderNotAccepted(uint256 jobId, address provider);
    /// @notice `provider`'s record is below what the job's request asks: it delivered
    ///         `delivered` results and `reliabilityBps` of its deals ended without its fault.
    error RecordBelowMinimum(address provider, uint256 delivered, uint256 reliabilityBps);
    error InvalidResultStatus(uint8 status);
    error ExitCodeMismatch(Outcome status, int32 exitCode);
    error MissingResultCid();
    error ResultCidTooLong(uint256 length, uint256 max);
    error MissingErrorText();
    error ErrorTextTooLong(uint256 length, uint256 max);
    error OutputTooLarge(uint256 length, uint256 max);
    error InsufficientGasForCallback(uint256 available, uint256 required);
    error NoFailedCallback(uint256 jobId);
    error ResultMismatch(uint256 jobId);
    error CallbackGasTooLow(uint256 given, uint256 min);
    error NotClient(address caller);
    error NoMediation();
    error NotMediation(address caller);
    error TooManyRewardees(uint256 count, uint256 max);
    /// @notice The job's result is not waiting for an audit draw (audits off, not deterministic,
    ///         already passed over, or no result waiting).
    error NotAuditable(uint256 jobId);
    /// @notice The block whose hash decides the job's audit does not exist yet.
    error AuditPending(uint256 jobId, uint256 seedBlock);
    /// @notice The job was drawn for an audit: it cannot settle before {audit} ran it.
    error AuditRequired(uint256 jobId);

    // ------------------------------------------------------------------ errors: accounts, admin
    error NothingToWithdraw();
    error ZeroAmount();
    error EmptyMetadataUrl();
    error MetadataUrlTooLong(uint256 length, uint256 max);
    error NotRegistered(address account);
    error ZeroAddress();
    error InvalidParam(string name);
    /// @notice A request marked deterministic must pin its module by id.
    error UnpinnedDeterministicModule();
    /// @notice The job's module is not deterministic, so its result cannot be re-run and judged.
    error NotDeterministic(uint256 jobId);

    // ------------------------------------------------------------------ jobs
    /// @notice The ERC-20 that pays for jobs and backs collateral.
    function token() external view returns (IERC20);

    /// @notice Requests a job; escrows `request.maxPrice` plus the premium of its extra audit rate
    ///         ({auditPremium}) from the caller (approve both first).
    function runJob(JobRequest calldata request) external returns (uint256 jobId);

    /// @notice What a request's `extraAuditBps` costs its client under the current parameters:
    ///         `extraAuditBps x mediationFee / 10000`, rounded up (the mediators' expected fee).
    function auditPremium(uint256 extraAuditBps) external view returns (uint256);

    /// @notice Records a deal signed by the provider (callable by anyone, e.g. a relayer). The
    ///         provider must be one the request accepts (ProviderNotAccepted) with the record it
    ///         asks (RecordBelowMinimum).
    function agreeDeal(Deal calldata deal, bytes calldata providerSignature) external;

    /// @notice The commitment a result is judged by, as stored in a job's `resultHash` and voted by
    ///         mediators: `keccak256(abi.encode(uint8 status, int32 exitCode, keccak256(resultCid),
    ///         outputHash))`, `outputHash` being keccak256 of the inline output.
    function resultCommitment(uint8 status, int32 exitCode, bytes calldata resultCid, bytes32 outputHash)
        external
        pure
        returns (bytes32);

    /// @notice Records a result signed by the provider and calls the client back.
    function submitResult(ResultData calldata result, bytes calldata inlineOutput, bytes calldata providerSignature)
        external;

    /// @notice Pays out a job whose challenge window has closed: the provider gets the price minus
    ///         the fee (and, for a deterministic job, the audit tax) and the client the rest of
    ///         maxPrice; a ProviderError result earns nothing and the client gets all of maxPrice
    ///         back. A job that may be audited settles only once its draw passed it over
    ///         (AuditPending before the draw's block, AuditRequired when drawn: see {audit}).
    function settle(uint256 jobId) external;

    /// @notice Settles every listed job that can be settled now; skips the others.
    function settleMany(uint256[] calldata jobIds) external returns (uint256 settled);

    /// @notice The client accepts a result before its challenge window closes.
    function acceptResult(uint256 jobId) external;

    /// @notice Ends a job that found no deal before its match deadline (full refund, the audit
    ///         premium included; callback).
    function expire(uint256 jobId) external;

    /// @notice Ends a job whose provider sent no result before the execution deadline (full
    ///         refund, the audit premium included, plus the timeout collateral; callback).
    function timeout(uint256 jobId) external;

    /// @notice The client disputes a result within the challenge window, paying the mediation fee.
    ///         Only a job requested with `deterministic` (and so a pinned module id) can be
    ///         challenged; any other reverts NotDeterministic.
    function challenge(uint256 jobId) external;

    /// @notice The mediation contract that handles `jobId`'s challenge reports its verdict.
    function resolveChallenge(uint256 jobId, bool providerCorrect, address[] calldata rewardedMediators) external;

    /// @notice Closes a challenge its mediation failed to resolve in time (provider paid, fee refunded).
    function resolveStaleChallenge(uint256 jobId) external;

    /// @notice Decides the protocol's audit of a result (anyone may call it once the block
    ///         AUDIT_SEED_DELAY after the result's exists): drawn with the job's `auditBps`
    ///         chance from that block's hash, or when the hash is gone (older than 256 blocks).
    ///         Drawn: opens a mediation case as a challenge does, its fee from the audit fund, the
    ///         caller recorded as its auditor. Passed over: records it, and the job settles as
    ///         usual. Returns whether it was drawn.
    function audit(uint256 jobId) external returns (bool audited);

    /// @notice Records the pass of every listed result the audit draw passed over (see {audit}),
    ///         in one transaction; skips the others. Returns how many it recorded.
    function clearAudits(uint256[] calldata jobIds) external returns (uint256 cleared);

    /// @notice Hands a job's failed callback (its latest one, which reverted or ran out of gas)
    ///         to the client once more, with `gasLimit` gas (at least the job's callbackGasLimit),
    ///         paid by the caller: the client or anyone. Once per failed callback: a re-delivery
    ///         that fails too is not recorded again. For a result (Succeeded, JobFailed,
    ///         ProviderError) pass it as submitted (`result` and `inlineOutput` as in
    ///         {ResultSubmitted}); it is checked against the job's stored commitment. The error
    ///         text is not part of the commitment, so a re-delivered result carries an empty error
    ///         (the provider's text is in {ResultSubmitted}). For the other outcomes only
    ///         `result.jobId` is read and the callback carries no result.
    function redeliverCallback(ResultData calldata result, bytes calldata inlineOutput, uint32 gasLimit) external;

    /// @notice Sends the caller everything credited to it.
    function withdraw() external returns (uint256 amount);

    // ------------------------------------------------------------------ registry
    /// @notice Registers the caller as a resource provider (or updates its metadata URL).
    function registerProvider(string calldata metadataUrl) external;
    /// @notice The caller stops taking new deals; running deals and collateral are unaffected.
    function deregisterProvider() external;
    /// @notice Adds `amount` to the caller's free collateral (approve it first).
    function depositCollateral(uint256 amount) external;
    /// @notice Sends `amount` of the caller's free collateral back; locked collateral cannot leave.
    function withdrawCollateral(uint256 amount) external;

    // ------------------------------------------------------------------ views
    /// @notice A job as stored (status None for an unknown id).
    function getJob(uint256 jobId) external view returns (Job memory);
    /// @notice The job's latest failed callback (status None: none failed, or a later callback
    ///         superseded it) and whether it was re-delivered.
    function failedCallback(uint256 jobId) external view returns (FailedCallback memory);
    /// @notice The mediation handling a job's challenge and the fee the client paid.
    function getChallenge(uint256 jobId) external view returns (Challenge memory);
    /// @notice Where `jobId`'s protocol audit stands.
    function auditState(uint256 jobId) external view returns (AuditState);
    /// @notice The audit fund: taxes paid in, audit fees paid out.
    function auditFund() external view returns (uint256);
    /// @notice The jackpot: shares of slashed collateral, half of it paid to each next exposer.
    function jackpot() external view returns (uint256);
    /// @notice The terms with id `id` (a job's `terms`).
    function termsOf(uint16 id) external view returns (Terms memory);
    /// @notice The protocol parameters new requests are checked against.
    function params() external view returns (Params memory);
    /// @notice What `account` can take out with {withdraw}.
    function balanceOf(address account) external view returns (uint256);
    /// @notice An account's free and locked collateral.
    function collateralOf(address account) external view returns (uint256 free, uint256 locked);
    /// @notice The metadata URL a provider registered.
    function metadataUrl(address account) external view returns (string memory);
    /// @notice Whether `account` is a registered provider.
    function isProvider(address account) external view returns (bool);
    /// @notice `provider`'s record: results by status, timeouts, mediations and their outcome,
    ///         collateral slashed (all zero for an account that never took a job).
    function reputationOf(address provider) external view returns (Reputation memory);
    /// @notice How many providers are registered.
    function providerCount() external view returns (uint256);
    /// @notice The registered provider at `index` (order changes when one deregisters).
    function providerAt(uint256 index) external view returns (address);
    /// @notice Jobs requested so far; also the id and sequence number of the latest one.
    function requestCount() external view returns (uint64);
    /// @notice Who is credited protocol fees.
    function treasury() external view returns (address);
    /// @notice The mediation contract new challenges go to (zero: challenges disabled).
    function mediation() external view returns (address);
}
