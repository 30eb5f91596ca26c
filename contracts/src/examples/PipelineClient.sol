// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {LilypadClient} from "../LilypadClient.sol";
import {JobRequest, JobResult, Outcome} from "../interfaces/ILilypad.sol";

/// @title PipelineClient
/// @notice Example two-step pipeline: job A runs a first module on a text; once A's result is
///         in, {next} runs job B, a second module, on A's outputs by CID (`ipfs://<A's result
///         CID>`), which B's provider fetches and checks block by block before it runs. B's
///         inline output is kept ({outputOf}).
/// @dev A callback cannot request the next job itself: Lilypad calls it from inside
///      `submitResult`, which is non-reentrant, so `runJob` there would revert. The next step is
///      a transaction of its own, by anyone (a keeper, the user): it only spends what the
///      pipeline's starter escrowed. B starts on A's result before A's challenge window closes;
///      if A's result is overturned later, the pipeline is marked Failed whatever B returns.
contract PipelineClient is LilypadClient, Ownable {
    using SafeERC20 for IERC20;

    /// @notice Where a pipeline stands.
    enum State {
        None,
        /// job A requested, its result not in yet
        RunningA,
        /// A's result is in: {next} may start B
        AReady,
        /// job B requested, its result not in yet
        RunningB,
        /// B succeeded: {outputOf} holds its inline output
        Done,
        /// a job did not succeed (failed, expired, timed out, overturned)
        Failed
    }

    struct Pipeline {
        State state;
        uint256 jobA;
        uint256 jobB;
        /// A's result CID (the UTF-8 bytes of the CID string)
        bytes resultCidA;
        /// B's inline output
        bytes outputB;
    }

    /// @notice One step's module: name, version, pinned id (zero: unpinned) and the input the
    ///         step's value is given as.
    struct Step {
        string module;
        string version;
        bytes32 moduleId;
        string inputKey;
    }

    /// @notice Job A's module and input (e.g. sha256, "text").
    Step public first;
    /// @notice Job B's module and input, which gets `ipfs://<A's result CID>` (e.g. read-cid,
    ///         "data").
    Step public second;
    /// @notice What each of the two jobs escrows.
    uint256 public maxPrice;
    /// @notice Pipelines started so far (ids 1, 2, ...).
    uint256 public pipelineCount;
    mapping(uint256 id => Pipeline) internal _pipelines;
    /// @notice The pipeline a job belongs to (0: none).
    mapping(uint256 jobId => uint256 id) public pipelineOf;

    /// @notice {next} was called for a pipeline whose job A's result is not in, or was already
    ///         used.
    error NotReady(uint256 id, State state);

    event PipelineStarted(uint256 indexed id, address indexed starter, uint256 jobA);
    event PipelineStep(uint256 indexed id, uint256 jobB, bytes resultCidA);
    event PipelineEnded(uint256 indexed id, State state);

    /// @param lilypad_ the Lilypad contract
    /// @param owner_ who may sweep refunds
    /// @param first_ job A's module
    /// @param second_ job B's module
    /// @param maxPrice_ what each job escrows (the starter pays twice this)
    constructor(address lilypad_, address owner_, Step memory first_, Step memory second_, uint256 maxPrice_)
        LilypadClient(lilypad_)
        Ownable(owner_)
    {
        first = first_;
        second = second_;
        maxPrice = maxPrice_;
    }

    /// @notice Starts a pipeline on `value` (job A's input); the caller pays both jobs' max price
    ///         (approve this contract for twice `maxPrice` first).
    function start(string calldata value) external returns (uint256 id) {
        lilypadToken.safeTransferFrom(msg.sender, address(this), 2 * maxPrice);
        id = ++pipelineCount;
        uint256 jobA = _sendRequest(_request(first, value));
        _pipelines[id].state = State.RunningA;
        _pipelines[id].jobA = jobA;
        pipelineOf[jobA] = id;
        emit PipelineStarted(id, msg.sender, jobA);
    }

    /// @notice Runs job B of pipeline `id` on job A's result (anyone may call it, once).
    function next(uint256 id) external returns (uint256 jobB) {
        Pipeline storage p = _pipelines[id];
        if (p.state != State.AReady) revert NotReady(id, p.state);
        p.state = State.RunningB;
        jobB = _sendRequest(_request(second, string.concat("ipfs://", string(p.resultCidA))));
        p.jobB = jobB;
        pipelineOf[jobB] = id;
        emit PipelineStep(id, jobB, p.resultCidA);
    }

    /// @notice Pipeline `id` as it stands.
    function pipeline(uint256 id) external view returns (Pipeline memory) {
        return _pipelines[id];
    }

    /// @notice Withdraws refunds from Lilypad and sends this contract's tokens to `to` (owner only).
    function sweep(address to) external onlyOwner returns (uint256 amount) {
        _withdrawFromLilypad();
        amount = lilypadToken.balanceOf(address(this));
        lilypadToken.safeTransfer(to, amount);
    }

    function _request(Step storage step, string memory value) private view returns (JobRequest memory request) {
        request = _newRequest(step.module, step.version, maxPrice);
        request = _pinModule(request, step.moduleId, step.moduleId != bytes32(0));
        request = _withInput(request, step.inputKey, value);
    }

    function _onJobResult(uint256 jobId, JobResult calldata result) internal override {
        uint256 id = pipelineOf[jobId];
        if (id == 0) return;
        Pipeline storage p = _pipelines[id];
        Outcome status = result.status;
        if (status == Outcome.UpheldByMediation) return; // the result already delivered stands
        bool isA = jobId == p.jobA;
        if (status == Outcome.Succeeded && isA && p.state == State.RunningA) {
            p.resultCidA = result.resultCid;
            p.state = State.AReady;
        } else if (status == Outcome.Succeeded && !isA && p.state == State.RunningB) {
            p.outputB = result.output;
            p.state = State.Done;
            emit PipelineEnded(id, State.Done);
        } else if (status != Outcome.Succeeded) {
            // a failure of either job, or A overturned after B started on it
            p.state = State.Failed;
            emit PipelineEnded(id, State.Failed);
        }
    }

    /// @notice Job B's inline output of pipeline `id` (empty until it is Done).
    function outputOf(uint256 id) external view returns (bytes memory) {
        return _pipelines[id].outputB;
    }
}
