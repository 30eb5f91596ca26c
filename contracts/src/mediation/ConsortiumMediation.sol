// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ILilypad, MediationCase, JobStatus} from "../interfaces/ILilypad.sol";
import {IMediation} from "../interfaces/IMediation.sol";

/// @title ConsortiumMediation
/// @notice The default {IMediation}, with its own staked mediators. A mediator registers, stakes
///         tokens here and, while it has at least {mediatorStake} free, sits in the drawable set.
///         Leaving takes two steps: {requestUnbond} (or {deregisterMediator}) sets stake aside, and
///         {completeUnbond} pays it out {UNBONDING_DELAY} later. A mediator that asked to leave is
///         never drawn for a case opened after its request, but still is for the cases opened
///         before it (their pool was fixed before their seed block), so nobody can reshape the
///         pool once a seed hash is known, nor take its stake away from a draw it sees coming.
///         Joining is delayed the same way: a mediator that enters the pool (or comes back to it)
///         is drawn only for cases opened after it did, so a deposit made once a seed hash is known
///         cannot steer that draw.
///         When a client challenges a result the case fixes its terms (N, k, stake, periods) and a
///         future seed block; once that block exists anyone calls {draw}, which picks N drawable
///         mediators (never the client or the provider) from its hash and locks {mediatorStake} of
///         each. Each drawn mediator re-runs the job and {commit}s
///         `keccak256(abi.encode(resultHash, salt, mediator))` within the commit period (blinded:
///         nobody can copy a vote), then {reveal}s `resultHash` and `salt` in the reveal period.
///         A hash revealed by at least k mediators decides (2k > N, so at most one can): the
///         provider's own commitment upholds the result, any other overturns it. With no such hash
///         the result stands (the challenger carries the burden of proof).
///
///         Stakes: a mediator who revealed the deciding hash (or, without a decision, any hash)
///         gets its stake back and shares the client's fee (and, if overturned, the mediators' share
///         of the provider's slashed collateral) on Lilypad. A mediator who did not commit, did not
///         reveal, or revealed against the decision is slashed: its locked stake is split among the
///         rewarded mediators here, or credited to the client if nobody is rewarded. Everything is
///         credited; {withdraw} pays it out.
/// @dev The draw is seeded by `blockhash(seedBlock)`, a block after the challenge: the client cannot
///      pick it by choosing when to challenge, and only the proposer of that block can bias it, by
///      withholding the block at the cost of its reward. If nobody draws within 256 blocks the hash
///      is gone and {draw} sets a new seed block. See docs/protocol.md.
contract ConsortiumMediation is IMediation, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Most mediators per case.
    uint256 public constant MAX_MEDIATORS = 15;
    /// @notice Blocks between a challenge (or a redraw) and the block whose hash seeds the draw.
    uint256 public constant SEED_DELAY = 2;
    /// @notice How far back the EVM keeps block hashes.
    uint256 public constant BLOCKHASH_WINDOW = 256;
    /// @notice Most bytes of a mediator's metadata URL.
    uint256 public constant MAX_METADATA_URL_BYTES = 512;
    /// @notice Seconds between {requestUnbond} and {completeUnbond}. Longer than a case's whole
    ///         timeline (commit plus reveal period, at most half of it, see {setPeriods}), so a
    ///         mediator drawn for a case opened before its request is still staked when it ends.
    uint32 public constant UNBONDING_DELAY = 14 days;

    /// @notice A mediator's stake and place in the drawable set.
    struct Mediator {
        uint128 free;
        uint128 locked;
        /// 1-based position in the draw pool; 0 when not in it
        uint32 position;
        bool registered;
        /// in the pool only for cases opened before its unbonding request (see {requestUnbond})
        bool leaving;
        /// stake set aside by {requestUnbond}, paid out by {completeUnbond}
        uint128 unbonding;
        /// when {completeUnbond} may pay `unbonding`
        uint40 unbondReadyAt;
        /// {casesOpened} when it started leaving: only cases up to this one may draw it
        uint32 leftAt;
        /// {casesOpened} + 1 when it last became drawable: only cases opened after it may draw it
        /// (1-based, so this slot is written once when the mediator first joins, not at its
        /// first draw)
        uint32 joinedAt;
        /// cases it was drawn for
        uint32 drawn;
        /// of those resolved, the ones it was rewarded in (revealed the deciding hash, or any
        /// hash when nothing decided)
        uint32 rewarded;
        /// of those resolved, the ones it lost its stake in (no commit, no reveal, or against
        /// the decision)
        uint32 slashes;
        /// stake it lost in all
        uint128 slashedAmount;
    }

    /// @notice A case. Its terms (n, k, stake, periods) are fixed when the challenge opens.
    struct Case {
        // slot 0
        bytes32 providerHash;
        // slot 1
        address client;
        /// block whose hash seeds the draw; 0 once drawn
        uint64 seedBlock;
        uint8 n;
        uint8 k;
        uint8 commits;
        uint8 reveals;
        // slot 2
        address provider;
        /// commits are taken before this (set at the draw; brought forward when all have committed)
        uint40 commitDeadline;
        /// reveals are taken before this
        uint40 revealDeadline;
        bool opened;
        bool resolved;
        // slot 3
        uint128 stake;
        uint32 commitPeriod;
        uint32 revealPeriod;
        /// 1-based: this case was the `openIndex`-th opened
        uint32 openIndex;
        /// {poolJoins} when the case opened (the draw skips those who joined since)
        uint32 joinsAtOpen;
        address[] mediators;
    }

    /// @notice The Lilypad contract this mediation serves.
    ILilypad public immutable lilypad;
    /// @notice The token stakes are held in (Lilypad's).
    IERC20 public immutable token;
    /// @notice Stake locked from each drawn mediator, and the free stake that makes one drawable.
    uint128 public immutable mediatorStake;
    /// @notice N: mediators drawn per case.
    uint8 public mediatorsPerCase;
    /// @notice k: matching reveals that decide a case.
    uint8 public threshold;
    /// @notice Seconds drawn mediators have to commit, from the draw.
    uint32 public commitPeriod;
    /// @notice Seconds they have to reveal, from the end of the commit phase.
    uint32 public revealPeriod;
    /// @notice How many cases were opened so far.
    uint32 public casesOpened;
    /// @notice How many times a mediator became drawable so far (joined or came back to the pool).
    uint32 public poolJoins;

    mapping(address mediator => Mediator) internal _mediators;
    /// the draw pool: drawable mediators and leaving ones (in `_leavingCount`)
    address[] internal _drawable;
    uint256 internal _leavingCount;
    mapping(uint256 jobId => Case) internal _cases;
    /// @notice The blinded vote a mediator committed for a job (zero: none).
    mapping(uint256 jobId => mapping(address mediator => bytes32)) public commitmentOf;
    /// @notice The result hash a mediator revealed for a job (zero: none).
    mapping(uint256 jobId => mapping(address mediator => bytes32)) public revealOf;
    /// @notice Reveals per result hash for a job.
    mapping(uint256 jobId => mapping(bytes32 resultHash => uint256)) public tally;
    /// @notice Tokens credited to an account (slashed stakes), paid out by {withdraw}.
    mapping(address account => uint256) public balanceOf;
    /// @notice The metadata URL a mediator registered.
    mapping(address mediator => string) public metadataUrl;

    event ConsortiumSet(uint8 mediatorsPerCase, uint8 threshold);
    event PeriodsSet(uint32 commitPeriod, uint32 revealPeriod);
    event MediatorRegistered(address indexed mediator, string metadataUrl);
    event MediatorDeregistered(address indexed mediator);
    event StakeDeposited(address indexed mediator, uint256 amount);
    /// @notice `amount` of free stake was set aside; {completeUnbond} pays it from `readyAt`. The
    ///         mediator is not drawn for cases opened from now on unless its free stake is still
    ///         at least {mediatorStake}.
    event UnbondRequested(address indexed mediator, uint256 amount, uint64 readyAt);
    event StakeWithdrawn(address indexed mediator, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice A case opened; {draw} can be called once block `seedBlock` exists.
    event MediationStarted(uint256 indexed jobId, bytes32 providerHash, uint64 seedBlock);
    /// @notice The seed block's hash was lost (more than 256 blocks old): a new seed block is set.
    event DrawRescheduled(uint256 indexed jobId, uint64 seedBlock);
    /// @notice Mediators were drawn and their stakes locked.
    event MediatorsDrawn(uint256 indexed jobId, address[] mediators, uint64 commitDeadline, uint64 revealDeadline);
    event VoteCommitted(uint256 indexed jobId, address indexed mediator, bytes32 commitment);
    event VoteRevealed(uint256 indexed jobId, address indexed mediator, bytes32 resultHash);
    /// @notice A mediator lost its locked stake for this case (no commit, no reveal, or against the
    ///         decision).
    event MediatorSlashed(uint256 indexed jobId, address indexed mediator, uint256 amount);
    /// @notice `quorum` false means the fallback decided (no hash reached the threshold).
    event MediationResolved(uint256 indexed jobId, bool providerCorrect, bool quorum, address[] rewarded);

    error OnlyLilypad(address caller);
    error InvalidConsortium(uint8 mediatorsPerCase, uint8 threshold);
    error InvalidPeriods(uint32 commitPeriod, uint32 revealPeriod);
    error ZeroStake();
    error ZeroAmount();
    error EmptyMetadataUrl();
    error MetadataUrlTooLong(uint256 length, uint256 max);
    error NotRegistered(address account);
    error InsufficientStake(address mediator, uint256 required, uint256 available);
    error StakeTooLarge(uint256 amount);
    error NothingToWithdraw();
    error NothingUnbonding(address mediator);
    error UnbondingNotReady(address mediator, uint256 readyAt);
    error CaseExists(uint256 jobId);
    error UnknownCase(uint256 jobId);
    error NotEnoughMediators(uint256 found, uint256 required);
    error SeedBlockNotReached(uint256 jobId, uint256 seedBlock);
    error AlreadyDrawn(uint256 jobId);
    error NotDrawn(uint256 jobId);
    error NotSelected(uint256 jobId, address caller);
    error AlreadyCommitted(uint256 jobId, address mediator);
    error CommitClosed(uint256 jobId, uint256 deadline);
    error RevealNotOpen(uint256 jobId, uint256 opensAt);
    error RevealClosed(uint256 jobId, uint256 deadline);
    error NotCommitted(uint256 jobId, address mediator);
    error AlreadyRevealed(uint256 jobId, address mediator);
    error CommitmentMismatch(uint256 jobId, address mediator);
    error ZeroResultHash();
    error ZeroCommitment();
    error AlreadyResolved(uint256 jobId);
    error VotingOpen(uint256 jobId, uint256 deadline);
    error ChallengeClosed(uint256 jobId, JobStatus status);

    /// @param lilypad_ the Lilypad contract that will call {startMediation}
    /// @param initialOwner who may change N, k and the periods for new cases
    /// @param mediatorsPerCase_ N
    /// @param threshold_ k, with 2k > N and k <= N
    /// @param mediatorStake_ stake locked per drawn mediator (and needed free to be drawable)
    /// @param commitPeriod_ seconds to commit after the draw
    /// @param revealPeriod_ seconds to reveal after the commit phase
    constructor(
        ILilypad lilypad_,
        address initialOwner,
        uint8 mediatorsPerCase_,
        uint8 threshold_,
        uint128 mediatorStake_,
        uint32 commitPeriod_,
        uint32 revealPeriod_
    ) Ownable(initialOwner) {
        if (mediatorStake_ == 0) revert ZeroStake();
        lilypad = lilypad_;
        token = lilypad_.token();
        mediatorStake = mediatorStake_;
        _setConsortium(mediatorsPerCase_, threshold_);
        _setPeriods(commitPeriod_, revealPeriod_);
    }

    // ================================================================== admin

    /// @notice Sets N and k for cases opened from now on (owner only).
    function setConsortium(uint8 mediatorsPerCase_, uint8 threshold_) external onlyOwner {
        _setConsortium(mediatorsPerCase_, threshold_);
    }

    /// @notice Sets the commit and reveal periods for cases opened from now on (owner only). Both
    ///         together may be at most half of {UNBONDING_DELAY}, which leaves the other half for
    ///         the draw.
    function setPeriods(uint32 commitPeriod_, uint32 revealPeriod_) external onlyOwner {
        _setPeriods(commitPeriod_, revealPeriod_);
    }

    // ================================================================== mediators

    /// @notice Registers the caller as a mediator (or replaces its metadata URL). It becomes
    ///         drawable once it has {mediatorStake} free.
    function registerMediator(string calldata metadataUrl_) external nonReentrant {
        uint256 len = bytes(metadataUrl_).length;
        if (len == 0) revert EmptyMetadataUrl();
        if (len > MAX_METADATA_URL_BYTES) revert MetadataUrlTooLong(len, MAX_METADATA_URL_BYTES);
        metadataUrl[msg.sender] = metadataUrl_;
        _mediators[msg.sender].registered = true;
        _sync(msg.sender);
        emit MediatorRegistered(msg.sender, metadataUrl_);
    }

    /// @notice The caller stops being a mediator: it is not drawn for cases opened from now on,
    ///         and all its free stake starts unbonding ({requestUnbond}). Cases opened before still
    ///         draw it; cases it was drawn for still take its votes and keep its stake locked until
    ///         they resolve.
    function deregisterMediator() external nonReentrant {
        Mediator storage m = _mediators[msg.sender];
        if (!m.registered) revert NotRegistered(msg.sender);
        m.registered = false;
        if (m.free != 0) _requestUnbond(msg.sender, m.free);
        else _sync(msg.sender);
        emit MediatorDeregistered(msg.sender);
    }

    /// @notice Adds `amount` to the caller's free stake (approve this contract first).
    function depositStake(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Mediator storage m = _mediators[msg.sender];
        uint256 free = uint256(m.free) + amount;
        if (free + m.locked > type(uint128).max) revert StakeTooLarge(amount);
        // forge-lint: disable-next-line(unsafe-typecast)
        m.free = uint128(free);
        _sync(msg.sender);
        emit StakeDeposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice First step of a stake withdrawal: sets `amount` of the caller's free stake aside
    ///         ({completeUnbond} pays it {UNBONDING_DELAY} from now; a second request adds to it and
    ///         restarts the delay). Stake locked in cases cannot be requested. If the caller's free
    ///         stake falls below {mediatorStake} it is not drawn for cases opened from now on; a
    ///         case opened before may still draw it, locking its stake from the unbonding part.
    function requestUnbond(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 free = _mediators[msg.sender].free;
        if (free < amount) revert InsufficientStake(msg.sender, amount, free);
        _requestUnbond(msg.sender, amount);
    }

    /// @notice Second step: pays the caller its unbonding stake once {UNBONDING_DELAY} has passed
    ///         since its latest {requestUnbond}.
    function completeUnbond() external nonReentrant returns (uint256 amount) {
        Mediator storage m = _mediators[msg.sender];
        amount = m.unbonding;
        if (amount == 0) revert NothingUnbonding(msg.sender);
        if (block.timestamp < m.unbondReadyAt) revert UnbondingNotReady(msg.sender, m.unbondReadyAt);
        m.unbonding = 0;
        m.unbondReadyAt = 0;
        _sync(msg.sender);
        emit StakeWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Sends the caller every token credited to it (its share of slashed stakes).
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = balanceOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        balanceOf[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ================================================================== cases

    /// @inheritdoc IMediation
    /// @dev Fixes the case's terms and its seed block. Reverts with NotEnoughMediators when fewer
    ///      than N drawable mediators are neither the client nor the provider (the challenge then
    ///      reverts). Mediators without stake are never in the drawable set, so registering empty
    ///      accounts cannot make this fail.
    function startMediation(uint256 jobId, MediationCase calldata c) external {
        if (msg.sender != address(lilypad)) revert OnlyLilypad(msg.sender);
        Case storage cs = _cases[jobId];
        if (cs.opened) revert CaseExists(jobId);
        uint8 n = mediatorsPerCase;
        uint256 available = _drawable.length - _leavingCount;
        if (_isDrawable(c.client)) --available;
        if (c.provider != c.client && _isDrawable(c.provider)) --available;
        if (available < n) revert NotEnoughMediators(available, n);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 seedBlock = uint64(block.number + SEED_DELAY); // block numbers fit in 64 bits
        cs.providerHash = c.resultHash;
        cs.client = c.client;
        cs.seedBlock = seedBlock;
        cs.n = n;
        cs.k = threshold;
        cs.provider = c.provider;
        cs.opened = true;
        cs.stake = mediatorStake;
        cs.commitPeriod = commitPeriod;
        cs.revealPeriod = revealPeriod;
        cs.openIndex = ++casesOpened;
        cs.joinsAtOpen = poolJoins;
        emit MediationStarted(jobId, c.resultHash, seedBlock);
    }

    /// @notice Draws the case's mediators from the hash of its seed block and locks their stakes
    ///         (anyone may call it once the seed block exists). If the seed block is more than 256
    ///         blocks old its hash is gone: a new seed block is set instead and nothing is drawn.
    /// @return drawn whether mediators were drawn (false: rescheduled)
    function draw(uint256 jobId) external nonReentrant returns (bool drawn) {
        Case storage cs = _cases[jobId];
        if (!cs.opened) revert UnknownCase(jobId);
        uint256 seedBlock = cs.seedBlock;
        if (seedBlock == 0) revert AlreadyDrawn(jobId);
        if (block.number <= seedBlock) revert SeedBlockNotReached(jobId, seedBlock);
        JobStatus status = lilypad.getJob(jobId).status;
        if (status != JobStatus.Challenged) revert ChallengeClosed(jobId, status);
        if (block.number - seedBlock > BLOCKHASH_WINDOW) {
            // forge-lint: disable-next-line(unsafe-typecast)
            uint64 next = uint64(block.number + SEED_DELAY);
            cs.seedBlock = next;
            emit DrawRescheduled(jobId, next);
            return false;
        }
        bytes32 seed = keccak256(abi.encode(blockhash(seedBlock), block.chainid, address(this), jobId));
        uint128 stake = cs.stake;
        address[] memory chosen = _draw(seed, cs);
        for (uint256 i; i < chosen.length; ++i) {
            Mediator storage m = _mediators[chosen[i]];
            uint128 free = m.free;
            if (free >= stake) {
                m.free = free - stake;
            } else {
                // a mediator leaving, drawn for a case opened before its request
                m.free = 0;
                m.unbonding -= stake - free;
            }
            m.locked += stake;
            ++m.drawn;
            _sync(chosen[i]);
        }
        uint40 commitDeadline = uint40(block.timestamp + cs.commitPeriod);
        uint40 revealDeadline = commitDeadline + cs.revealPeriod;
        cs.seedBlock = 0;
        cs.commitDeadline = commitDeadline;
        cs.revealDeadline = revealDeadline;
        cs.mediators = chosen;
        emit MediatorsDrawn(jobId, chosen, commitDeadline, revealDeadline);
        return true;
    }

    /// @notice A drawn mediator commits its blinded vote, {commitmentFor}(resultHash, salt, itself),
    ///         before the commit deadline. When all have committed the reveal phase opens at once.
    function commit(uint256 jobId, bytes32 commitment) external nonReentrant {
        Case storage cs = _drawnCase(jobId);
        if (commitment == bytes32(0)) revert ZeroCommitment();
        if (block.timestamp >= cs.commitDeadline) revert CommitClosed(jobId, cs.commitDeadline);
        if (!_isChosen(cs.mediators, msg.sender)) revert NotSelected(jobId, msg.sender);
        if (commitmentOf[jobId][msg.sender] != bytes32(0)) revert AlreadyCommitted(jobId, msg.sender);
        commitmentOf[jobId][msg.sender] = commitment;
        uint8 commits = ++cs.commits;
        if (commits == cs.n) {
            // nothing is left to commit: the reveal phase starts now
            uint40 now_ = uint40(block.timestamp);
            cs.commitDeadline = now_;
            cs.revealDeadline = now_ + cs.revealPeriod;
        }
        emit VoteCommitted(jobId, msg.sender, commitment);
    }

    /// @notice A mediator reveals the result hash and salt it committed to, once the commit phase is
    ///         over and before the reveal deadline. The reveal that completes every commitment
    ///         resolves the case on Lilypad in the same transaction, which calls the client back:
    ///         send enough gas for its callbackGasLimit.
    function reveal(uint256 jobId, bytes32 resultHash, bytes32 salt) external nonReentrant {
        Case storage cs = _drawnCase(jobId);
        if (block.timestamp < cs.commitDeadline) revert RevealNotOpen(jobId, cs.commitDeadline);
        if (block.timestamp >= cs.revealDeadline) revert RevealClosed(jobId, cs.revealDeadline);
        if (resultHash == bytes32(0)) revert ZeroResultHash();
        bytes32 committed = commitmentOf[jobId][msg.sender];
        if (committed == bytes32(0)) revert NotCommitted(jobId, msg.sender);
        if (revealOf[jobId][msg.sender] != bytes32(0)) revert AlreadyRevealed(jobId, msg.sender);
        if (commitmentFor(resultHash, salt, msg.sender) != committed) revert CommitmentMismatch(jobId, msg.sender);
        revealOf[jobId][msg.sender] = resultHash;
        ++tally[jobId][resultHash];
        uint8 reveals = ++cs.reveals;
        emit VoteRevealed(jobId, msg.sender, resultHash);
        if (reveals == cs.commits) _resolve(jobId, cs);
    }

    /// @notice Closes a case whose phases ran out (anyone may call it): after the reveal deadline,
    ///         or after the commit deadline when nobody committed. Non-voters are slashed.
    function finalize(uint256 jobId) external nonReentrant {
        Case storage cs = _drawnCase(jobId);
        uint256 closesAt = cs.commits == 0 ? cs.commitDeadline : cs.revealDeadline;
        if (block.timestamp < closesAt) revert VotingOpen(jobId, closesAt);
        _resolve(jobId, cs);
    }

    // ================================================================== views

    /// @notice The blinded vote a mediator commits: `keccak256(abi.encode(resultHash, salt, mediator))`.
    function commitmentFor(bytes32 resultHash, bytes32 salt, address mediator) public pure returns (bytes32) {
        return keccak256(abi.encode(resultHash, salt, mediator));
    }

    /// @notice The mediators drawn for a job (empty before the draw).
    function mediatorsOf(uint256 jobId) external view returns (address[] memory) {
        return _cases[jobId].mediators;
    }

    /// @notice A case as stored, mediators included.
    function caseOf(uint256 jobId) external view returns (Case memory) {
        return _cases[jobId];
    }

    /// @notice A mediator's free and locked stake.
    function stakeOf(address mediator) external view returns (uint256 free, uint256 locked) {
        Mediator storage m = _mediators[mediator];
        return (m.free, m.locked);
    }

    /// @notice A mediator's stake set aside by {requestUnbond} and when {completeUnbond} may pay it
    ///         (0, 0: nothing unbonding).
    function unbondingOf(address mediator) external view returns (uint256 amount, uint256 readyAt) {
        Mediator storage m = _mediators[mediator];
        return (m.unbonding, m.unbondReadyAt);
    }

    /// @notice A mediator's record: cases it was drawn for, and of those resolved, the ones it
    ///         was rewarded in and the ones it was slashed in, with the stake it lost. Drawn cases
    ///         not yet resolved are `drawn - rewarded - slashes`.
    function recordOf(address mediator)
        external
        view
        returns (uint256 drawn, uint256 rewarded, uint256 slashes, uint256 slashedAmount)
    {
        Mediator storage m = _mediators[mediator];
        return (m.drawn, m.rewarded, m.slashes, m.slashedAmount);
    }

    /// @notice Whether `account` is a registered mediator.
    function isMediator(address account) external view returns (bool) {
        return _mediators[account].registered;
    }

    /// @notice Whether `account` can be drawn for a case opened now (registered, with
    ///         {mediatorStake} free).
    function isDrawable(address account) external view returns (bool) {
        return _isDrawable(account);
    }

    /// @notice How many mediators can be drawn for a case opened now.
    function drawableCount() external view returns (uint256) {
        return _drawable.length - _leavingCount;
    }

    /// @notice How many entries the draw pool has: the drawable mediators and those leaving (drawn
    ///         only for cases opened before their unbonding request).
    function poolSize() external view returns (uint256) {
        return _drawable.length;
    }

    /// @notice The draw pool's entry at `index`, below {poolSize} (order changes when one leaves).
    function drawableAt(uint256 index) external view returns (address) {
        return _drawable[index];
    }

    // ================================================================== internals

    function _setConsortium(uint8 n, uint8 k) private {
        if (n == 0 || n > MAX_MEDIATORS || k > n || 2 * uint256(k) <= n) revert InvalidConsortium(n, k);
        mediatorsPerCase = n;
        threshold = k;
        emit ConsortiumSet(n, k);
    }

    function _setPeriods(uint32 commit_, uint32 reveal_) private {
        if (commit_ == 0 || reveal_ == 0 || uint256(commit_) + reveal_ > UNBONDING_DELAY / 2) {
            revert InvalidPeriods(commit_, reveal_);
        }
        commitPeriod = commit_;
        revealPeriod = reveal_;
        emit PeriodsSet(commit_, reveal_);
    }

    function _drawnCase(uint256 jobId) private view returns (Case storage cs) {
        cs = _cases[jobId];
        if (!cs.opened) revert UnknownCase(jobId);
        if (cs.resolved) revert AlreadyResolved(jobId);
        if (cs.mediators.length == 0) revert NotDrawn(jobId);
    }

    function _isDrawable(address who) private view returns (bool) {
        Mediator storage m = _mediators[who];
        return m.position != 0 && !m.leaving;
    }

    /// @dev Sets `amount` of `who`'s free stake aside for {UNBONDING_DELAY} (checked by callers).
    function _requestUnbond(address who, uint256 amount) private {
        Mediator storage m = _mediators[who];
        // forge-lint: disable-next-line(unsafe-typecast)
        m.free -= uint128(amount);
        // forge-lint: disable-next-line(unsafe-typecast)
        m.unbonding += uint128(amount);
        uint40 readyAt = uint40(block.timestamp + UNBONDING_DELAY);
        m.unbondReadyAt = readyAt;
        _sync(who);
        emit UnbondRequested(who, amount, readyAt);
    }

    /// @dev Puts `who` in the draw pool, or takes it out, to match its registration and stake
    ///      (swap-and-pop, so the pool stays dense). Drawable: registered with {mediatorStake} free.
    ///      A pool entry that stops being drawable while its unbonding stake still covers a draw
    ///      stays in the pool as leaving, until {completeUnbond}: cases opened before its request
    ///      can still draw it, so leaving cannot change a draw whose seed is known. A leaving entry
    ///      stays leaving while its unbonding is unpaid (a deposit cannot bring it back early). An
    ///      entry that becomes drawable records {casesOpened} + 1 in `joinedAt`: cases opened before
    ///      never draw it, so joining cannot change a draw whose seed is known either.
    function _sync(address who) private {
        Mediator storage m = _mediators[who];
        uint256 position = m.position;
        bool wasLeaving = m.leaving;
        bool active = m.registered && m.free >= mediatorStake && !(wasLeaving && m.unbonding != 0);
        bool eligible = active || (position != 0 && m.unbonding != 0 && m.free + m.unbonding >= mediatorStake);
        bool leaving = eligible && !active;
        if (active && (position == 0 || wasLeaving)) {
            // joins the pool, or comes back to it: drawn only for cases opened from now on
            m.joinedAt = casesOpened + 1;
            ++poolJoins;
        }
        if (leaving != wasLeaving) {
            m.leaving = leaving;
            if (leaving) {
                // from now on only the cases opened so far may draw it
                m.leftAt = casesOpened;
                ++_leavingCount;
            } else {
                --_leavingCount;
            }
        }
        if (eligible && position == 0) {
            _drawable.push(who);
            // forge-lint: disable-next-line(unsafe-typecast)
            m.position = uint32(_drawable.length);
        } else if (!eligible && position != 0) {
            uint256 last = _drawable.length;
            if (position != last) {
                address moved = _drawable[last - 1];
                _drawable[position - 1] = moved;
                // forge-lint: disable-next-line(unsafe-typecast)
                _mediators[moved].position = uint32(position);
            }
            _drawable.pop();
            m.position = 0;
        }
    }

    /// @dev A partial Fisher-Yates shuffle over the pool's indices (swaps kept in a small memory
    ///      list): positions are visited in a uniformly random order without repeats, and the first
    ///      n that are neither party and eligible for this case are taken. An entry is eligible
    ///      only if it joined the pool before the case opened; a leaving one only for a case
    ///      opened before its request (and before its unbonding is due). At most two entries are
    ///      parties, so this ends within n + 2 steps plus one per leaving entry and one per join
    ///      since the case opened (each leaving entry holds at least {mediatorStake}).
    function _draw(bytes32 seed, Case storage cs) private view returns (address[] memory chosen) {
        uint256 n = cs.n;
        uint256 pool = _drawable.length;
        uint256 steps = n + 2 + _leavingCount + (poolJoins - cs.joinsAtOpen);
        if (steps > pool) steps = pool;
        chosen = new address[](n);
        uint256[] memory swapFrom = new uint256[](steps);
        uint256[] memory swapTo = new uint256[](steps);
        uint256 found;
        for (uint256 t; t < steps && found < n; ++t) {
            uint256 j = t + uint256(keccak256(abi.encode(seed, t))) % (pool - t);
            uint256 picked = _lookup(swapFrom, swapTo, t, j);
            // position j now holds what position t held
            swapFrom[t] = j;
            swapTo[t] = _lookup(swapFrom, swapTo, t, t);
            address m = _drawable[picked];
            if (_eligible(m, cs)) chosen[found++] = m;
        }
        if (found < n) revert NotEnoughMediators(found, n);
    }

    /// @dev Whether pool entry `who` may be drawn for case `cs`: not one of its parties, in the pool
    ///      since before the case opened, and either drawable or leaving since after the case
    ///      opened (and not yet due its unbonding).
    function _eligible(address who, Case storage cs) private view returns (bool) {
        if (who == cs.client || who == cs.provider) return false;
        Mediator storage m = _mediators[who];
        if (m.joinedAt > cs.openIndex) return false;
        if (!m.leaving) return true;
        return m.leftAt >= cs.openIndex && block.timestamp < m.unbondReadyAt && m.free + m.unbonding >= cs.stake;
    }

    /// @dev The index currently at position `pos` of the virtual shuffled array.
    function _lookup(uint256[] memory from, uint256[] memory to, uint256 used, uint256 pos)
        private
        pure
        returns (uint256)
    {
        for (uint256 i = used; i > 0; --i) {
            if (from[i - 1] == pos) return to[i - 1];
        }
        return pos;
    }

    function _isChosen(address[] storage mediators, address who) private view returns (bool) {
        for (uint256 i; i < mediators.length; ++i) {
            if (mediators[i] == who) return true;
        }
        return false;
    }

    /// @dev The hash revealed by at least k decides; without one the result stands. Rewarded: those
    ///      who revealed the deciding hash (without a decision: everyone who revealed); their stakes
    ///      are released. Everyone else is slashed, the slashed stakes split among the rewarded (the
    ///      client if none). Effects first; Lilypad is called last, and only while the challenge is
    ///      still open there (its stale path may have closed it).
    function _resolve(uint256 jobId, Case storage cs) private {
        cs.resolved = true;
        address[] memory mediators = cs.mediators;
        uint256 k = cs.k;
        bytes32 winning;
        for (uint256 i; i < mediators.length; ++i) {
            bytes32 v = revealOf[jobId][mediators[i]];
            if (v != bytes32(0) && tally[jobId][v] >= k) {
                winning = v;
                break;
            }
        }
        bool quorum = winning != bytes32(0);
        uint256 stake = cs.stake;
        address[] memory rewarded = new address[](mediators.length);
        uint256 count;
        uint256 slashed;
        for (uint256 i; i < mediators.length; ++i) {
            address who = mediators[i];
            Mediator storage m = _mediators[who];
            // forge-lint: disable-next-line(unsafe-typecast)
            m.locked -= uint128(stake);
            bytes32 v = revealOf[jobId][who];
            if (v != bytes32(0) && (!quorum || v == winning)) {
                rewarded[count++] = who;
                // forge-lint: disable-next-line(unsafe-typecast)
                m.free += uint128(stake);
                ++m.rewarded;
                _sync(who);
            } else {
                slashed += stake;
                ++m.slashes;
                // forge-lint: disable-next-line(unsafe-typecast)
                m.slashedAmount += uint128(stake);
                emit MediatorSlashed(jobId, who, stake);
            }
        }
        assembly ("memory-safe") {
            mstore(rewarded, count)
        }
        if (slashed != 0) {
            if (count == 0) {
                balanceOf[cs.client] += slashed;
            } else {
                uint256 each = slashed / count;
                balanceOf[rewarded[0]] += slashed - each * (count - 1);
                for (uint256 i = 1; i < count; ++i) {
                    balanceOf[rewarded[i]] += each;
                }
            }
        }
        bool providerCorrect = !quorum || winning == cs.providerHash;
        emit MediationResolved(jobId, providerCorrect, quorum, rewarded);
        if (lilypad.getJob(jobId).status == JobStatus.Challenged) {
            lilypad.resolveChallenge(jobId, providerCorrect, rewarded);
        }
    }
}
