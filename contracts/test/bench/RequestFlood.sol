// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ILilypad, JobRequest} from "../../src/interfaces/ILilypad.sol";

/// @title RequestFlood
/// @notice Benchmark helper for relayer/benches/relayer.rs: makes many job requests in one
///         transaction, so a test chain holds thousands of requests after a few blocks. Each request
///         is a real `runJob` (its own job id, sequence and `JobRequested` event) escrowed from this
///         contract's token balance; transfer it enough tokens first. Test chains only.
contract RequestFlood {
    ILilypad public immutable lilypad;

    constructor(ILilypad lilypad_) {
        lilypad = lilypad_;
        lilypad_.token().approve(address(lilypad_), type(uint256).max);
    }

    /// @notice Requests `request` `n` times; returns the first and last job ids.
    function flood(JobRequest calldata request, uint256 n) external returns (uint256 first, uint256 last) {
        for (uint256 i; i < n; ++i) {
            last = lilypad.runJob(request);
            if (i == 0) first = last;
        }
    }
}
