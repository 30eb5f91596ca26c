// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Lilypad} from "../src/Lilypad.sol";
import {LilypadToken} from "../src/LilypadToken.sol";
import {InputParam, JobRequest, Deal, ResultData} from "../src/interfaces/ILilypad.sol";

/// @dev Fixed test vectors published in docs/protocol.md, so the off-chain signer can check its
///      encoding byte for byte. Each value is computed here from the type strings and compared
///      with the constant in the docs; a contract deployed at the vector's address accepts the
///      signatures.
contract VectorsTest is Test {
    address internal constant VERIFYING_CONTRACT = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    uint256 internal constant CHAIN_ID = 31337;
    // anvil's well-known dev key (2)
    uint256 internal constant PROVIDER_KEY = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;

    function _request() internal pure returns (JobRequest memory r) {
        r.module = "cowsay";
        r.version = "1.0.0";
        r.inputs = new InputParam[](1);
        r.inputs[0] = InputParam({key: "message", value: "hello, world"});
        r.maxPrice = 10 ether;
        r.matchTimeout = 600;
        r.executionTimeout = 900;
        r.callbackGasLimit = 100_000;
        r.maxOutputBytes = 1024;
        r.resultsCollateralMultiplierBps = 20_000;
        r.challengeWindow = 3600;
    }

    function _domainSeparator() internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Lilypad"),
                keccak256("1"),
                CHAIN_ID,
                VERIFYING_CONTRACT
            )
        );
    }

    function _deal() internal pure returns (Deal memory d) {
        d = Deal({
            jobId: 1,
            requestHash: keccak256(abi.encode(_request())),
            provider: vm.addr(PROVIDER_KEY),
            price: 8 ether,
            timeoutCollateral: 8 ether,
            resultsCollateral: 16 ether,
            expiry: 1_700_000_000
        });
    }

    function _dealDigest() internal pure returns (bytes32) {
        Deal memory d = _deal();
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Deal(uint256 jobId,bytes32 requestHash,address provider,uint256 price,uint256 timeoutCollateral,uint256 resultsCollateral,uint256 expiry)"
                ),
                d.jobId,
                d.requestHash,
                d.provider,
                d.price,
                d.timeoutCollateral,
                d.resultsCollateral,
                d.expiry
            )
        );
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
    }

    function _result() internal pure returns (ResultData memory r) {
        r = ResultData({
            jobId: 1,
            status: 2,
            resultCid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            exitCode: -1,
            error: "exit status 255"
        });
    }

    bytes internal constant OUTPUT = "hello, world\n";

    function _resultDigest() internal pure returns (bytes32) {
        ResultData memory r = _result();
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Result(uint256 jobId,uint8 status,bytes resultCid,bytes32 outputHash,int32 exitCode,string error)"
                ),
                r.jobId,
                r.status,
                keccak256(r.resultCid),
                keccak256(OUTPUT),
                r.exitCode,
                keccak256(bytes(r.error))
            )
        );
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
    }

    bytes32 internal constant REQUEST_HASH = 0x9702c0db09f45a83104d02e8aac36d3ebb35499e3abd05d02fd7b6dbe0391f7e;
    bytes32 internal constant DOMAIN_SEPARATOR = 0x75c2f412d098bfe75c1a5daf2c84d1244cf59b5e4b1e73df260ec3c506f1b7eb;
    bytes32 internal constant DEAL_DIGEST = 0x845167d9b2e7180137e2873f355dab591d69ca04989415f1de18339a07cc1f2e;
    bytes internal constant DEAL_SIGNATURE =
        hex"619b77f65bfc4cf5abe37d915776d076c66fb679b3c14ab42e00308b91095d1764c3793294d0b8da6cb8eb9f92387c4fc29e3a7766121400f2921cf9b180e8dc1c";
    bytes32 internal constant OUTPUT_HASH = 0x610d034580008b4fc994cdb99acb1c0ea8612123ad6cc49d88fda79e3f9bea64;
    bytes32 internal constant RESULT_DIGEST = 0xdf290194f82bed0751c36c60cdb2d88d83ca73cebc9c6945803b4f6719a0fc28;
    bytes internal constant RESULT_SIGNATURE =
        hex"149e5cc2fc6264f79c3e3fdc73dbcce1a32bac685a2c6ad814ef6f84fc1ac22c09af2a3c71f7a592f293c16d48b0225c291f659320c4fd89c10dace20018e8801b";

    function test_VectorsMatchTheDocs() public pure {
        assertEq(keccak256(abi.encode(_request())), REQUEST_HASH);
        assertEq(_domainSeparator(), DOMAIN_SEPARATOR);
        assertEq(_dealDigest(), DEAL_DIGEST);
        assertEq(keccak256(OUTPUT), OUTPUT_HASH);
        assertEq(_resultDigest(), RESULT_DIGEST);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(PROVIDER_KEY, DEAL_DIGEST);
        assertEq(abi.encodePacked(r, s, v), DEAL_SIGNATURE);
        (v, r, s) = vm.sign(PROVIDER_KEY, RESULT_DIGEST);
        assertEq(abi.encodePacked(r, s, v), RESULT_SIGNATURE);
    }

    /// @dev A Lilypad at the vector's address accepts the published signatures.
    function test_ContractAcceptsTheVectorSignatures() public {
        LilypadToken token = new LilypadToken(address(this));
        deployCodeTo("Lilypad.sol:Lilypad", abi.encode(token, address(this), address(this)), VERIFYING_CONTRACT);
        Lilypad lilypad = Lilypad(VERIFYING_CONTRACT);
        assertEq(lilypad.domainSeparator(), DOMAIN_SEPARATOR);
        address provider = vm.addr(PROVIDER_KEY);
        token.mint(provider, 100 ether);
        vm.startPrank(provider);
        lilypad.registerProvider("https://provider.example/");
        token.approve(address(lilypad), 100 ether);
        lilypad.depositCollateral(100 ether);
        vm.stopPrank();
        token.mint(address(this), 10 ether);
        token.approve(address(lilypad), 10 ether);
        vm.warp(1_699_999_000);
        lilypad.runJob(_request());
        lilypad.agreeDeal(_deal(), DEAL_SIGNATURE);
        lilypad.submitResult(_result(), OUTPUT, RESULT_SIGNATURE);
        ResultData memory r = _result();
        assertEq(
            lilypad.getJob(1).resultHash,
            keccak256(abi.encode(r.status, r.exitCode, keccak256(r.resultCid), keccak256(OUTPUT)))
        );
    }
}
