// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// The five-minute client of docs/solidity.md, verbatim below this line: the bindings' tests fail
// when the two differ, and Docs.t.sol runs it against Lilypad with _newRequest's defaults.
import {LilypadClient} from "lilypad/LilypadClient.sol"; // contracts/src/
import {JobRequest, JobResult, Outcome} from "lilypad/interfaces/ILilypad.sol";

contract MyClient is LilypadClient {
    mapping(uint256 => bytes) public outputs;
    mapping(uint256 => string) public cids;

    constructor(address lilypad) LilypadClient(lilypad) {}

    function ask(string calldata message) external returns (uint256 jobId) {
        JobRequest memory r = _newRequest("cowsay", "1.0.0", 1 ether); // module, version, maxPrice
        r = _withInput(r, "message", message);
        jobId = _sendRequest(r); // approves Lilypad and escrows maxPrice from this contract
    }

    function _onJobResult(uint256 jobId, JobResult calldata result) internal override {
        if (result.status == Outcome.Succeeded) {
            outputs[jobId] = result.output; // at most r.maxOutputBytes
            cids[jobId] = string(result.resultCid); // the outputs on IPFS
        }
    }
}
