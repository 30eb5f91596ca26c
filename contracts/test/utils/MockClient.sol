// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadClient} from "../../src/LilypadClient.sol";
import {JobRequest, JobResult, Outcome} from "../../src/interfaces/ILilypad.sol";

/// @dev A client contract whose callback can record, revert, burn all gas, return a huge payload,
///      or try to re-enter Lilypad.
contract MockClient is LilypadClient {
    enum Mode {
        Record,
        Revert,
        Burn,
        HugeReturn,
        BigMemory,
        ReenterWithdraw,
        ReenterSettle,
        ReenterRunJob,
        ReenterChallenge
    }

    Mode public mode;
    uint256 public reenterJobId;
    bool public reentryBlocked;
    bytes public reentryError;
    uint256 public gasAtEntry;

    mapping(uint256 jobId => uint256) public callbackCount;
    mapping(uint256 jobId => Outcome[]) internal _outcomes;
    mapping(uint256 jobId => JobResult) internal _last;

    constructor(address lilypad_) LilypadClient(lilypad_) {}

    function setMode(Mode m) external {
        mode = m;
    }

    function setReenterJob(uint256 jobId) external {
        reenterJobId = jobId;
    }

    function run(JobRequest memory request) external returns (uint256) {
        return _sendRequest(request);
    }

    function challenge(uint256 jobId) external {
        _challenge(jobId);
    }

    function accept(uint256 jobId) external {
        _acceptResult(jobId);
    }

    function withdrawAll() external returns (uint256) {
        return _withdrawFromLilypad();
    }

    function outcomes(uint256 jobId) external view returns (Outcome[] memory) {
        return _outcomes[jobId];
    }

    function last(uint256 jobId) external view returns (JobResult memory) {
        return _last[jobId];
    }

    function _onJobResult(uint256 jobId, JobResult calldata result) internal override {
        gasAtEntry = gasleft();
        Mode m = mode;
        if (m == Mode.Revert) revert("client says no");
        if (m == Mode.Burn) {
            while (true) {}
        }
        if (m == Mode.HugeReturn) {
            assembly {
                return(0, 262144)
            }
        }
        if (m == Mode.BigMemory) {
            // the same memory growth as HugeReturn, but nothing returned
            assembly {
                if eq(mload(262112), 1) { revert(0, 0) }
                return(0, 0)
            }
        }
        if (m >= Mode.ReenterWithdraw) {
            _reenter(m);
        }
        callbackCount[jobId] += 1;
        _outcomes[jobId].push(result.status);
        _last[jobId] = result;
    }

    function _reenter(Mode m) private {
        bytes memory call;
        if (m == Mode.ReenterWithdraw) call = abi.encodeCall(lilypad.withdraw, ());
        else if (m == Mode.ReenterSettle) call = abi.encodeCall(lilypad.acceptResult, (reenterJobId));
        else if (m == Mode.ReenterChallenge) call = abi.encodeCall(lilypad.challenge, (reenterJobId));
        else call = abi.encodeCall(lilypad.runJob, (_cheapRequest()));
        (bool ok, bytes memory err) = address(lilypad).call(call);
        reentryBlocked = !ok;
        reentryError = err;
    }

    function _cheapRequest() private pure returns (JobRequest memory r) {
        r = _newRequest("cowsay", "1.0.0", 0);
    }
}
