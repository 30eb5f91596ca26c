// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {LilypadClient} from "../LilypadClient.sol";
import {JobRequest, JobResult, Outcome} from "../interfaces/ILilypad.sol";

/// @title CowsayClient
/// @notice Example text job: anyone pays `maxPrice` to have a cow say their message off-chain; the
///         contract keeps each job's status, output CID and inline output.
/// @dev Copy it as a template. The caller pays the max price; refunds (maxPrice - price, or all of
///      it if the job expires) are credited to this contract and the owner sweeps them.
contract CowsayClient is LilypadClient, Ownable {
    using SafeERC20 for IERC20;

    struct Answer {
        Outcome status;
        int32 exitCode;
        string resultCid;
        string output;
        string error;
    }

    /// @notice The module and version the jobs run (as named in the provider's job-modules).
    string public module;
    /// @notice The module's version.
    string public version;
    /// @notice The id of the module definition the jobs run (`lilypad module id cowsay 1.0.0`); zero
    ///         until the owner sets it: jobs are then unpinned and cannot be challenged. The
    ///         module is deterministic, so a pinned job is marked so.
    bytes32 public moduleId;
    /// @notice What each job escrows.
    uint256 public maxPrice;
    /// @notice The latest outcome per job. A mediation verdict updates only `status`.
    mapping(uint256 jobId => Answer) public answers;

    event CowsayRequested(uint256 indexed jobId, address indexed requester, string message);
    event CowsayAnswered(uint256 indexed jobId, Outcome status);

    /// @param lilypad_ the Lilypad contract
    /// @param owner_ who may sweep refunds, challenge and change the price
    /// @param module_ the cowsay module's name, e.g. "cowsay"
    /// @param version_ its version
    /// @param maxPrice_ what each job escrows
    constructor(address lilypad_, address owner_, string memory module_, string memory version_, uint256 maxPrice_)
        LilypadClient(lilypad_)
        Ownable(owner_)
    {
        module = module_;
        version = version_;
        maxPrice = maxPrice_;
    }

    /// @notice Asks for `message` (the module input `message`) to be cowsaid; the caller pays
    ///         `maxPrice` (approve this contract first).
    function cowsay(string calldata message) external returns (uint256 jobId) {
        lilypadToken.safeTransferFrom(msg.sender, address(this), maxPrice);
        JobRequest memory request = _newRequest(module, version, maxPrice);
        request = _pinModule(request, moduleId, moduleId != bytes32(0));
        request = _withInput(request, "message", message);
        request.maxOutputBytes = 1_024;
        // Storing up to 1 KiB of text costs about 33 slots of 20k gas, plus the CID.
        request.callbackGasLimit = 900_000;
        jobId = _sendRequest(request);
        emit CowsayRequested(jobId, msg.sender, message);
    }

    /// @notice The inline output of a job (empty until the result arrives).
    function outputOf(uint256 jobId) external view returns (string memory) {
        return answers[jobId].output;
    }

    /// @notice Disputes a job's result, paying the mediation fee from this contract (owner only).
    function challenge(uint256 jobId) external onlyOwner {
        _challenge(jobId);
    }

    /// @notice Accepts a job's result early so the provider is paid now (owner only).
    function acceptResult(uint256 jobId) external onlyOwner {
        _acceptResult(jobId);
    }

    /// @notice Pins the module definition later jobs run, by id; zero unpins it (owner only).
    function setModuleId(bytes32 moduleId_) external onlyOwner {
        moduleId = moduleId_;
    }

    /// @notice Changes what each job escrows (owner only).
    function setMaxPrice(uint256 maxPrice_) external onlyOwner {
        maxPrice = maxPrice_;
    }

    /// @notice Withdraws refunds from Lilypad and sends this contract's tokens to `to` (owner only).
    function sweep(address to) external onlyOwner returns (uint256 amount) {
        _withdrawFromLilypad();
        amount = lilypadToken.balanceOf(address(this));
        lilypadToken.safeTransfer(to, amount);
    }

    function _onJobResult(uint256 jobId, JobResult calldata result) internal override {
        Answer storage answer = answers[jobId];
        answer.status = result.status;
        if (result.status <= Outcome.ProviderError) {
            answer.exitCode = result.exitCode;
            answer.resultCid = string(result.resultCid);
            answer.output = string(result.output);
            answer.error = result.error;
        }
        emit CowsayAnswered(jobId, result.status);
    }
}
