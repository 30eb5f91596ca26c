// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {console2} from "forge-std/console2.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Sha256Oracle} from "../src/examples/Sha256Oracle.sol";
import {ILilypad, Job, JobStatus} from "../src/interfaces/ILilypad.sol";

/// @title OracleClient
/// @notice A Solidity developer's session against a live Lilypad (a chain with the relayer,
///         solver and a provider running): deploy a Sha256Oracle, ask it for sha256 of a text,
///         and later check on-chain that the answer the callback stored is the one the EVM's own
///         sha256 precompile gives.
/// @dev Two steps, because a script runs against a snapshot of the chain and cannot wait for the
///      off-chain services:
///      forge script script/OracleClient.s.sol --sig "request(address,string)" $LILYPAD "some text" \
///          --rpc-url $RPC --broadcast          (CLIENT_PRIVATE_KEY: an account holding tokens)
///      ...wait for the job's callback (lilypad job <chain> <id>)...
///      forge script script/OracleClient.s.sol --sig "check(address,uint256,string)" $ORACLE $JOB \
///          "some text" --rpc-url $RPC       (reverts, and forge exits non-zero, if it is wrong)
///      ORACLE_CLIENT_FILE (optional, under deployments/): where `request` writes
///      {"oracle": ..., "jobId": ...} for scripts that drive it.
contract OracleClient is Script {
    /// @notice What each job escrows: well above a dev provider's price.
    uint256 public constant MAX_PRICE = 0.01 ether;

    /// @notice The oracle's answer differs from sha256(text) computed on-chain.
    error WrongDigest(uint256 jobId, bytes32 delivered, bytes32 expected);
    /// @notice The job did not end as a settled success (status as in JobStatus).
    error NotSettled(uint256 jobId, JobStatus status);

    /// @notice Deploys a Sha256Oracle owned by the client, approves it and requests sha256(text).
    function request(address lilypad, string calldata text) external returns (address oracle, uint256 jobId) {
        uint256 key = vm.envUint("CLIENT_PRIVATE_KEY");
        address client = vm.addr(key);
        IERC20 token = ILilypad(lilypad).token();
        vm.startBroadcast(key);
        Sha256Oracle o = new Sha256Oracle(lilypad, client, "sha256", "1.0.0", MAX_PRICE);
        token.approve(address(o), MAX_PRICE);
        jobId = o.requestDigest(text);
        vm.stopBroadcast();
        oracle = address(o);
        console2.log("oracle", oracle);
        console2.log("job", jobId);
        string memory file = vm.envOr("ORACLE_CLIENT_FILE", string(""));
        if (bytes(file).length != 0) {
            string memory k = "oracleClient";
            vm.serializeAddress(k, "oracle", oracle);
            vm.writeJson(vm.serializeUint(k, "jobId", jobId), file);
        }
    }

    /// @notice Reverts unless job `jobId` of `oracle` was answered, settled, and its stored digest
    ///         is sha256(text) as the EVM computes it.
    function check(address oracle, uint256 jobId, string calldata text) external view returns (bytes32 digest) {
        Sha256Oracle o = Sha256Oracle(oracle);
        Job memory job = o.lilypad().getJob(jobId);
        if (job.status != JobStatus.Settled) revert NotSettled(jobId, job.status);
        digest = o.digestOf(jobId); // reverts with NoDigest unless the callback stored an answer
        bytes32 expected = sha256(bytes(text));
        if (digest != expected) revert WrongDigest(jobId, digest, expected);
        console2.log("job answered and settled; digest matches the EVM's sha256:");
        console2.logBytes32(digest);
    }
}
