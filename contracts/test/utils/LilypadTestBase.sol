// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {Lilypad} from "../../src/Lilypad.sol";
import {LilypadToken} from "../../src/LilypadToken.sol";
import {ConsortiumMediation} from "../../src/mediation/ConsortiumMediation.sol";
import {
    ILilypad,
    InputParam,
    JobRequest,
    Deal,
    ResultData,
    Outcome,
    JobStatus,
    Job,
    Params
} from "../../src/interfaces/ILilypad.sol";
import {MockClient} from "./MockClient.sol";

/// @dev Shared set-up: a token, Lilypad, a 2-of-3 consortium, one funded provider, five staked
///      mediators and a mock client contract. EIP-712 digests are computed here from the type
///      strings, independently of the contract's own helpers, so a wrong typehash fails the tests.
abstract contract LilypadTestBase is Test {
    string internal constant DOMAIN_TYPE =
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
    string internal constant DEAL_TYPE =
        "Deal(uint256 jobId,bytes32 requestHash,address provider,uint256 price,uint256 timeoutCollateral,uint256 resultsCollateral,uint256 expiry)";
    string internal constant RESULT_TYPE =
        "Result(uint256 jobId,uint8 status,bytes resultCid,bytes32 outputHash,int32 exitCode,string error)";

    uint256 internal constant MAX_PRICE = 10 ether;
    uint256 internal constant PRICE = 8 ether;
    uint256 internal constant FEE_BPS = 250;
    uint256 internal constant MEDIATION_FEE = 1 ether;
    uint256 internal constant PROVIDER_COLLATERAL = 1_000 ether;
    uint256 internal constant MEDIATOR_COLLATERAL = 100 ether;
    uint128 internal constant MEDIATOR_STAKE = 10 ether;
    uint32 internal constant COMMIT_PERIOD = 1 hours;
    uint32 internal constant REVEAL_PERIOD = 1 hours;
    uint32 internal constant MATCH_TIMEOUT = 600;
    uint32 internal constant EXECUTION_TIMEOUT = 900;
    uint32 internal constant CHALLENGE_WINDOW = 3600;
    /// @dev Any non-zero module id (the contract never reads it; providers and mediators do).
    bytes32 internal constant MODULE_ID = keccak256("cowsay module definition");
    uint32 internal constant CALLBACK_GAS = 500_000;
    bytes internal constant CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    bytes internal constant OUTPUT = " _______\n< hello >\n -------\n";

    LilypadToken internal token;
    Lilypad internal lilypad;
    ConsortiumMediation internal consortium;
    MockClient internal client;

    address internal owner = makeAddr("owner");
    address internal treasury = makeAddr("treasury");
    address internal relayer = makeAddr("relayer");
    address internal alice = makeAddr("alice");
    address internal provider;
    uint256 internal providerKey;
    address internal provider2;
    uint256 internal provider2Key;
    address[] internal mediators;

    function setUp() public virtual {
        token = new LilypadToken(address(this));
        lilypad = new Lilypad(token, owner, treasury);
        consortium = new ConsortiumMediation(lilypad, owner, 3, 2, MEDIATOR_STAKE, COMMIT_PERIOD, REVEAL_PERIOD);
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.protocolFeeBps = uint16(FEE_BPS);
        p.mediationFee = uint96(MEDIATION_FEE);
        lilypad.setParams(p);
        lilypad.setMediation(address(consortium));
        vm.stopPrank();

        (provider, providerKey) = makeAddrAndKey("provider");
        (provider2, provider2Key) = makeAddrAndKey("provider2");
        _registerProvider(provider, PROVIDER_COLLATERAL);
        _registerProvider(provider2, PROVIDER_COLLATERAL);
        for (uint256 i; i < 5; ++i) {
            address m = makeAddr(string.concat("mediator", vm.toString(i)));
            mediators.push(m);
            _registerMediator(m, MEDIATOR_COLLATERAL);
        }

        client = new MockClient(address(lilypad));
        _fund(address(client), 1_000 ether);
        _fund(alice, 1_000 ether);
        vm.prank(alice);
        token.approve(address(lilypad), type(uint256).max);
        vm.label(address(lilypad), "Lilypad");
        vm.label(address(consortium), "ConsortiumMediation");
        vm.label(address(client), "MockClient");
    }

    // ------------------------------------------------------------------ accounts

    function _fund(address to, uint256 amount) internal {
        token.mint(to, amount);
    }

    function _registerProvider(address who, uint256 collateral) internal {
        _fund(who, collateral);
        vm.startPrank(who);
        lilypad.registerProvider("https://provider.example/");
        token.approve(address(lilypad), collateral);
        lilypad.depositCollateral(collateral);
        vm.stopPrank();
    }

    /// @dev Registers `who` as a mediator of the consortium with `stake` deposited.
    function _registerMediator(address who, uint256 stake) internal {
        _fund(who, stake);
        vm.startPrank(who);
        consortium.registerMediator("https://mediator.example/");
        if (stake != 0) {
            token.approve(address(consortium), stake);
            consortium.depositStake(stake);
        }
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ mediation

    /// @dev Rolls past the case's seed block and draws its mediators.
    function _draw(uint256 jobId) internal returns (address[] memory chosen) {
        uint256 seedBlock = consortium.caseOf(jobId).seedBlock;
        if (block.number <= seedBlock) vm.roll(seedBlock + 1);
        consortium.draw(jobId);
        chosen = consortium.mediatorsOf(jobId);
    }

    /// @dev The salt a test mediator blinds its vote with.
    function _salt(address m) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", m));
    }

    function _commitVote(uint256 jobId, address m, bytes32 h) internal {
        // computed here, independently of the contract's commitmentFor
        bytes32 c = keccak256(abi.encode(h, _salt(m), m));
        vm.prank(m);
        consortium.commit(jobId, c);
    }

    function _revealVote(uint256 jobId, address m, bytes32 h) internal {
        vm.prank(m);
        consortium.reveal(jobId, h, _salt(m));
    }

    /// @dev Each drawn mediator commits `hashes[i]` (zero: it does not commit), then every one that
    ///      committed reveals (after the commit deadline if someone did not commit).
    function _vote(uint256 jobId, address[] memory chosen, bytes32[] memory hashes) internal {
        bool all = true;
        for (uint256 i; i < hashes.length; ++i) {
            if (hashes[i] == bytes32(0)) all = false;
            else _commitVote(jobId, chosen[i], hashes[i]);
        }
        if (!all) vm.warp(consortium.caseOf(jobId).commitDeadline);
        for (uint256 i; i < hashes.length; ++i) {
            if (hashes[i] != bytes32(0)) _revealVote(jobId, chosen[i], hashes[i]);
        }
    }

    function _votes(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32[] memory h) {
        h = new bytes32[](3);
        (h[0], h[1], h[2]) = (a, b, c);
    }

    // ------------------------------------------------------------------ requests

    function _request() internal pure returns (JobRequest memory r) {
        r.module = "cowsay";
        r.version = "1.0.0";
        r.moduleId = MODULE_ID;
        r.deterministic = true;
        r.inputs = new InputParam[](1);
        r.inputs[0] = InputParam({key: "message", value: "hello = world"});
        r.maxPrice = MAX_PRICE;
        r.matchTimeout = MATCH_TIMEOUT;
        r.executionTimeout = EXECUTION_TIMEOUT;
        r.callbackGasLimit = CALLBACK_GAS;
        r.maxOutputBytes = 1024;
        r.resultsCollateralMultiplierBps = 20_000;
        r.challengeWindow = CHALLENGE_WINDOW;
    }

    /// @dev A job requested by the mock client contract.
    function _requestJob() internal returns (uint256) {
        return client.run(_request());
    }

    function _requestJob(JobRequest memory r) internal returns (uint256) {
        return client.run(r);
    }

    // ------------------------------------------------------------------ EIP-712, computed independently

    function _domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(bytes(DOMAIN_TYPE)), keccak256("Lilypad"), keccak256("1"), block.chainid, address(lilypad)
            )
        );
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
    }

    function _dealHash(Deal memory d) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(bytes(DEAL_TYPE)),
                d.jobId,
                d.requestHash,
                d.provider,
                d.price,
                d.timeoutCollateral,
                d.resultsCollateral,
                d.expiry
            )
        );
    }

    /// @dev What the contract stores for a result and mediators vote: status, exit code, CID and
    ///      inline output.
    function _commitment(ResultData memory r, bytes memory output) internal pure returns (bytes32) {
        return keccak256(abi.encode(r.status, r.exitCode, keccak256(r.resultCid), keccak256(output)));
    }

    function _resultHash(ResultData memory r, bytes memory output) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(bytes(RESULT_TYPE)),
                r.jobId,
                uint256(r.status),
                keccak256(r.resultCid),
                keccak256(output),
                int256(r.exitCode),
                keccak256(bytes(r.error))
            )
        );
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _deal(uint256 jobId) internal view returns (Deal memory d) {
        return _deal(jobId, provider, PRICE);
    }

    function _deal(uint256 jobId, address who, uint256 price) internal view returns (Deal memory d) {
        d.jobId = jobId;
        d.requestHash = lilypad.getJob(jobId).requestHash;
        d.provider = who;
        d.price = price;
        d.timeoutCollateral = price;
        d.resultsCollateral = price * 2;
        d.expiry = block.timestamp + 300;
    }

    function _signDeal(uint256 key, Deal memory d) internal view returns (bytes memory) {
        return _sign(key, _digest(_dealHash(d)));
    }

    function _agree(uint256 jobId) internal returns (Deal memory d) {
        d = _deal(jobId);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
    }

    function _result(uint256 jobId) internal pure returns (ResultData memory r) {
        r.jobId = jobId;
        r.status = uint8(Outcome.Succeeded);
        r.resultCid = CID;
        r.exitCode = 0;
        r.error = "";
    }

    function _signResult(uint256 key, ResultData memory r, bytes memory output) internal view returns (bytes memory) {
        return _sign(key, _digest(_resultHash(r, output)));
    }

    function _submit(uint256 jobId) internal returns (ResultData memory r) {
        r = _result(jobId);
        vm.prank(relayer);
        lilypad.submitResult(r, OUTPUT, _signResult(providerKey, r, OUTPUT));
    }

    /// @dev Requested -> Agreed -> ResultSubmitted for a job of the mock client.
    /// @dev A job whose provider submitted a result with `status` (and what that status needs:
    ///      a non-zero exit code for JobFailed, an error text for ProviderError).
    function _jobWithOutcome(Outcome status) internal returns (uint256 jobId) {
        jobId = _requestJob();
        _agree(jobId);
        ResultData memory r = _result(jobId);
        r.status = uint8(status);
        if (status == Outcome.JobFailed) r.exitCode = 3;
        if (status == Outcome.ProviderError) r.error = "ImageUnavailable: image lilypad/x:1 is not present";
        vm.prank(relayer);
        lilypad.submitResult(r, OUTPUT, _signResult(providerKey, r, OUTPUT));
    }

    function _jobWithResult() internal returns (uint256 jobId) {
        jobId = _requestJob();
        _agree(jobId);
        _submit(jobId);
    }

    function _status(uint256 jobId) internal view returns (JobStatus) {
        return lilypad.getJob(jobId).status;
    }

    function _free(address who) internal view returns (uint256 free) {
        (free,) = lilypad.collateralOf(who);
    }

    function _locked(address who) internal view returns (uint256 locked) {
        (, locked) = lilypad.collateralOf(who);
    }
}
