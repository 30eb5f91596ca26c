// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {LilypadClient} from "../src/LilypadClient.sol";
import {JobRequest, JobResult, Deal, ResultData, Params, AuditState} from "../src/interfaces/ILilypad.sol";

/// @dev A client whose callback does nothing: submitResult is measured with it.
contract NoopClient is LilypadClient {
    constructor(address lilypad_) LilypadClient(lilypad_) {}

    function run(JobRequest memory request) external returns (uint256) {
        return _sendRequest(request);
    }

    function _onJobResult(uint256, JobResult calldata) internal override {}
}

/// @dev Named gas snapshots (snapshots/Lilypad.json) behind the gas table in docs/solidity.md. The
///      profile runs tests with `isolate = true`, so each top-level call is its own transaction and a
///      figure is what its receipt's gasUsed would be: 21,000 base and calldata included, storage
///      cold at the start. "steady" means the counters and balances the call writes are already
///      non-zero, as on a chain in use; "first" is the first such call on a fresh deployment.
contract GasTest is LilypadTestBase {
    NoopClient internal noop;

    function setUp() public override {
        super.setUp();
        noop = new NoopClient(address(lilypad));
        _fund(address(noop), 1_000 ether);
    }

    function _cowsayRequest() internal pure returns (JobRequest memory r) {
        r = _request();
        r.inputs[0].value = "hello, world";
        r.callbackGasLimit = 100_000;
    }

    function _lifecycle(uint256 jobId, string memory tag) internal {
        bool record = bytes(tag).length != 0;
        _dealAndResult(jobId, tag);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.prank(relayer);
        lilypad.settle(jobId);
        if (record) vm.snapshotGasLastCall("Lilypad", string.concat("settle_", tag));
    }

    function test_Gas_Lifecycle() public {
        JobRequest memory r = _cowsayRequest();

        // first job ever: the request counter, provider, treasury and client balances start at 0
        vm.prank(alice);
        lilypad.runJob(r);
        vm.snapshotGasLastCall("Lilypad", "runJob_first");
        uint256 first = noop.run(r);
        _lifecycle(first, "first");

        // steady state
        vm.prank(alice);
        lilypad.runJob(r);
        vm.snapshotGasLastCall("Lilypad", "runJob_steady");
        uint256 steady = noop.run(r);
        _lifecycle(steady, "steady");
    }

    function test_Gas_OtherPaths() public {
        JobRequest memory r = _cowsayRequest();
        // warm the counters and balances once
        _lifecycle(noop.run(r), "");

        uint256 a = noop.run(r);
        uint256 b = noop.run(r);
        _agree(b);
        vm.warp(block.timestamp + EXECUTION_TIMEOUT);
        lilypad.expire(a);
        vm.snapshotGasLastCall("Lilypad", "expire_noopCallback");
        lilypad.timeout(b);
        vm.snapshotGasLastCall("Lilypad", "timeout_noopCallback");

        uint256 c = _jobWithResult();
        client.accept(c);
        vm.snapshotGasLastCall("Lilypad", "acceptResult_viaClient");

        uint256[] memory ids = new uint256[](10);
        for (uint256 i; i < ids.length; ++i) {
            ids[i] = noop.run(r);
            _agree(ids[i]);
            vm.prank(relayer);
            ResultData memory res = _result(ids[i]);
            lilypad.submitResult(res, OUTPUT, _signResult(providerKey, res, OUTPUT));
        }
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settleMany(ids);
        vm.snapshotGasLastCall("Lilypad", "settleMany_10");

        uint256 d = _jobWithResult();
        client.challenge(d);
        vm.snapshotGasLastCall("Lilypad", "challenge_viaClient_3of5");
        vm.roll(consortium.caseOf(d).seedBlock + 1);
        consortium.draw(d);
        vm.snapshotGasLastCall("Lilypad", "mediation_draw_3of5");
        address[] memory chosen = consortium.mediatorsOf(d);
        bytes32 h = lilypad.getJob(d).resultHash;
        for (uint256 i; i < 3; ++i) {
            _commitVote(d, chosen[i], h);
        }
        vm.snapshotGasLastCall("Lilypad", "mediation_commit_last");
        _revealVote(d, chosen[0], h);
        vm.snapshotGasLastCall("Lilypad", "mediation_reveal");
        _revealVote(d, chosen[1], h);
        _revealVote(d, chosen[2], h);
        vm.snapshotGasLastCall("Lilypad", "mediation_reveal_resolving_upheld");

        vm.prank(provider);
        lilypad.withdraw();
        vm.snapshotGasLastCall("Lilypad", "withdraw");
    }

    /// @dev Moves past `jobId`'s audit seed block and gives that block a hash whose draw is `wanted`.
    /// @dev The EIP-2935 history contract's runtime code.
    bytes internal constant HISTORY_CODE =
        hex"3373fffffffffffffffffffffffffffffffffffffffe14604657602036036042575f35600143038111604257611fff81430311604257611fff9006545f5260205ff35b5f5ffd5b5f35611fff60014303065500";

    function _drawAs(uint256 jobId, AuditState wanted) internal {
        uint256 seedBlock = uint256(lilypad.getJob(jobId).executionTimeout) + lilypad.AUDIT_SEED_DELAY();
        vm.roll(seedBlock + 1);
        for (uint256 i;; ++i) {
            vm.setBlockhash(seedBlock, keccak256(abi.encode("gas", i)));
            if (lilypad.auditState(jobId) == wanted) return;
        }
    }

    /// @dev Deal and result for `jobId`, recorded under `tag` when it is not empty.
    function _dealAndResult(uint256 jobId, string memory tag) internal {
        bool record = bytes(tag).length != 0;
        Deal memory d = _deal(jobId);
        bytes memory dealSig = _signDeal(providerKey, d);
        vm.prank(relayer);
        lilypad.agreeDeal(d, dealSig);
        if (record) vm.snapshotGasLastCall("Lilypad", string.concat("agreeDeal_", tag));
        ResultData memory r = _result(jobId);
        bytes memory output = bytes(" ______________\n< hello, world >\n --------------\n");
        bytes memory resultSig = _signResult(providerKey, r, output);
        vm.prank(relayer);
        lilypad.submitResult(r, output, resultSig);
        if (record) vm.snapshotGasLastCall("Lilypad", string.concat("submitResult_noopCallback_", tag));
    }

    /// With audits on (50%, a 5% tax): the happy path of a result the draw passed over (settled
    /// within 256 blocks, so settle reads the draw itself), `audit` recording a pass, and the
    /// happy path of an audited result (audit, draw, votes, the resolving reveal settles it).
    function test_Gas_Audits() public {
        Params memory p = lilypad.params();
        p.auditBps = 5_000;
        p.taxBps = 500;
        vm.prank(owner);
        lilypad.setParams(p);
        JobRequest memory r = _cowsayRequest();
        // warm the counters, balances and the audit fund once
        uint256 warm = noop.run(r);
        _dealAndResult(warm, "");
        _drawAs(warm, AuditState.Clear);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        lilypad.settle(warm);

        vm.prank(alice);
        lilypad.runJob(r);
        vm.snapshotGasLastCall("Lilypad", "runJob_auditsOn");
        uint256 passed = noop.run(r);
        _dealAndResult(passed, "auditsOn");
        _drawAs(passed, AuditState.Clear);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.prank(relayer);
        lilypad.settle(passed);
        vm.snapshotGasLastCall("Lilypad", "settle_auditsOn_passedOver");

        uint256 recorded = noop.run(r);
        _dealAndResult(recorded, "");
        _drawAs(recorded, AuditState.Clear);
        vm.prank(relayer);
        lilypad.audit(recorded);
        vm.snapshotGasLastCall("Lilypad", "audit_passedOver");

        // a window past the EVM's 256 block hashes, on a chain with the EIP-2935 history
        uint256 late = noop.run(r);
        _dealAndResult(late, "");
        _drawAs(late, AuditState.Clear);
        uint256 seedBlock = uint256(lilypad.getJob(late).executionTimeout) + lilypad.AUDIT_SEED_DELAY();
        vm.etch(lilypad.BLOCK_HISTORY(), HISTORY_CODE);
        vm.store(lilypad.BLOCK_HISTORY(), bytes32(seedBlock % 8_191), blockhash(seedBlock));
        vm.roll(seedBlock + 1_000);
        vm.warp(block.timestamp + CHALLENGE_WINDOW);
        vm.prank(relayer);
        lilypad.settle(late);
        vm.snapshotGasLastCall("Lilypad", "settle_auditsOn_fromHistory");

        // ten passes recorded in one call, as the relayer batches them for long windows
        uint256[] memory batch = new uint256[](10);
        for (uint256 i; i < batch.length; ++i) {
            batch[i] = noop.run(r);
            _dealAndResult(batch[i], "");
            _drawAs(batch[i], AuditState.Clear);
        }
        vm.prank(relayer);
        assertEq(lilypad.clearAudits(batch), 10);
        vm.snapshotGasLastCall("Lilypad", "clearAudits_10");

        uint256 audited = noop.run(r);
        _dealAndResult(audited, "");
        _drawAs(audited, AuditState.Due);
        vm.prank(relayer);
        lilypad.audit(audited);
        vm.snapshotGasLastCall("Lilypad", "audit_opens_3of5");
        vm.roll(consortium.caseOf(audited).seedBlock + 1);
        consortium.draw(audited);
        address[] memory chosen = consortium.mediatorsOf(audited);
        bytes32 h = lilypad.getJob(audited).resultHash;
        for (uint256 i; i < 3; ++i) {
            _commitVote(audited, chosen[i], h);
        }
        _revealVote(audited, chosen[0], h);
        _revealVote(audited, chosen[1], h);
        _revealVote(audited, chosen[2], h);
        vm.snapshotGasLastCall("Lilypad", "mediation_reveal_resolving_audit_upheld");
    }
}
