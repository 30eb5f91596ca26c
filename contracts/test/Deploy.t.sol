// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {stdJson} from "forge-std/StdJson.sol";

import {Deploy} from "../script/Deploy.s.sol";
import {Lilypad} from "../src/Lilypad.sol";
import {LilypadToken} from "../src/LilypadToken.sol";
import {ConsortiumMediation} from "../src/mediation/ConsortiumMediation.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";
import {Params} from "../src/interfaces/ILilypad.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

contract DeployTest is Test {
    using stdJson for string;

    Deploy internal script;
    uint256 internal key = 0xA11CE;
    string internal file;

    function setUp() public {
        // A real chain's clock (at timestamp 1 a timelock takes every operation for done).
        vm.warp(1_700_000_000);
        script = new Deploy();
        file = string.concat(vm.projectRoot(), "/deployments/test-deploy-", vm.toString(address(this)), ".json");
    }

    function _config() internal returns (Deploy.Config memory c) {
        c.deployerKey = key;
        c.treasury = makeAddr("treasury");
        c.protocolFeeBps = 250;
        c.mediatorsPerCase = 5;
        c.mediatorThreshold = 3;
        c.mediationFee = 2 ether;
        c.auditBps = 5_000;
        c.taxBps = 300;
        c.jackpotBps = 1_000;
        c.mediatorStake = 50 ether;
        c.commitPeriod = 600;
        c.revealPeriod = 900;
        c.fund = new address[](2);
        c.fund[0] = makeAddr("alice");
        c.fund[1] = makeAddr("bob");
        c.fundAmount = 123 ether;
        c.examples = true;
        c.cowsayModule = "cowsay";
        c.cowsayVersion = "v9";
        c.sha256Module = "sha256";
        c.sha256Version = "v9";
        c.exampleMaxPrice = 1 ether;
        c.adminDelay = 2 days;
    }

    function test_Deploy_ConfiguresEverythingAndWritesJson() public {
        Deploy.Config memory c = _config();
        Deploy.Deployment memory d = script.deploy(c);
        script.writeJson(c, d, file);

        Lilypad lilypad = Lilypad(d.lilypad);
        assertEq(address(lilypad.token()), d.token);
        assertEq(lilypad.owner(), d.timelock);
        assertEq(ConsortiumMediation(d.mediation).owner(), d.timelock);
        assertEq(TimelockController(payable(d.timelock)).getMinDelay(), 2 days);
        assertEq(lilypad.treasury(), c.treasury);
        assertEq(lilypad.params().protocolFeeBps, 250);
        assertEq(lilypad.params().mediationFee, 2 ether);
        assertEq(lilypad.params().auditBps, 5_000);
        assertEq(lilypad.params().taxBps, 300);
        assertEq(lilypad.params().jackpotBps, 1_000);
        assertEq(lilypad.mediation(), d.mediation);
        assertEq(ConsortiumMediation(d.mediation).mediatorStake(), 50 ether);
        assertEq(ConsortiumMediation(d.mediation).commitPeriod(), 600);
        assertEq(ConsortiumMediation(d.mediation).revealPeriod(), 900);
        assertEq(address(ConsortiumMediation(d.mediation).token()), d.token);
        assertEq(ConsortiumMediation(d.mediation).mediatorsPerCase(), 5);
        assertEq(ConsortiumMediation(d.mediation).threshold(), 3);
        assertEq(address(ConsortiumMediation(d.mediation).lilypad()), d.lilypad);
        assertEq(LilypadToken(d.token).balanceOf(makeAddr("alice")), 123 ether);
        assertEq(LilypadToken(d.token).balanceOf(makeAddr("bob")), 123 ether);
        assertEq(CowsayClient(d.cowsayClient).version(), "v9");
        assertTrue(d.devToken);

        string memory json = vm.readFile(file);
        assertEq(json.readUint(".chainId"), block.chainid);
        assertEq(json.readUint(".deploymentBlock"), block.number);
        assertEq(json.readAddress(".lilypad"), d.lilypad);
        assertEq(json.readAddress(".mediation"), d.mediation);
        assertEq(json.readAddress(".token"), d.token);
        assertEq(json.readAddress(".treasury"), c.treasury);
        assertEq(json.readAddress(".cowsayClient"), d.cowsayClient);
        assertEq(json.readAddress(".sha256Oracle"), d.sha256Oracle);
        assertEq(json.readAddress(".deployer"), vm.addr(key));
        assertEq(json.readAddress(".owner"), d.timelock);
        assertEq(json.readAddress(".admin"), vm.addr(key));
        assertEq(json.readUint(".adminDelay"), 2 days);
        assertTrue(json.readBool(".devToken"));
        vm.removeFile(file);
    }

    function test_Deploy_WithExistingTokenAndAnotherAdmin() public {
        LilypadToken existing = new LilypadToken(address(this));
        Deploy.Config memory c = _config();
        c.token = address(existing);
        c.fund = new address[](0);
        c.examples = false;
        c.admin = makeAddr("multisig");
        Deploy.Deployment memory d = script.deploy(c);
        assertEq(d.token, address(existing));
        assertFalse(d.devToken);
        assertEq(d.cowsayClient, address(0));
        TimelockController timelock = TimelockController(payable(d.timelock));
        assertEq(Lilypad(d.lilypad).owner(), d.timelock);
        assertTrue(timelock.hasRole(timelock.PROPOSER_ROLE(), c.admin));
        assertTrue(timelock.hasRole(timelock.EXECUTOR_ROLE(), c.admin));
        // The deployer keeps no power: no role on the timelock, not even its admin role.
        address deployer = vm.addr(key);
        assertFalse(timelock.hasRole(timelock.PROPOSER_ROLE(), deployer));
        assertFalse(timelock.hasRole(timelock.EXECUTOR_ROLE(), deployer));
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer));
        vm.prank(deployer);
        vm.expectRevert();
        Lilypad(d.lilypad).setTreasury(deployer);
    }

    /// An admin change is scheduled in the open, cannot be carried out before the delay, and
    /// takes effect after it.
    function test_AdminChange_WaitsOutTheDelay() public {
        Deploy.Config memory c = _config();
        c.admin = makeAddr("multisig");
        Deploy.Deployment memory d = script.deploy(c);
        TimelockController timelock = TimelockController(payable(d.timelock));
        Lilypad lilypad = Lilypad(d.lilypad);
        Params memory p = lilypad.params();
        p.protocolFeeBps = 900;
        bytes memory call = abi.encodeCall(Lilypad.setParams, (p));

        vm.prank(c.admin);
        vm.expectRevert(); // shorter than the delay
        timelock.schedule(d.lilypad, 0, call, bytes32(0), bytes32(0), 1 days);
        vm.prank(c.admin);
        timelock.schedule(d.lilypad, 0, call, bytes32(0), bytes32(0), 2 days);
        vm.warp(block.timestamp + 2 days - 1);
        vm.prank(c.admin);
        vm.expectRevert(); // not yet
        timelock.execute(d.lilypad, 0, call, bytes32(0), bytes32(0));
        assertEq(lilypad.params().protocolFeeBps, 250);

        vm.warp(block.timestamp + 1);
        vm.prank(c.admin);
        timelock.execute(d.lilypad, 0, call, bytes32(0), bytes32(0));
        assertEq(lilypad.params().protocolFeeBps, 900);
    }

    function test_RevertWhen_FundingWithForeignToken() public {
        Deploy.Config memory c = _config();
        c.token = address(new LilypadToken(address(this)));
        vm.expectRevert(Deploy.FundingNeedsDevToken.selector);
        script.deploy(c);
    }

    function test_ReadConfig_FromEnvironment() public {
        vm.setEnv("DEPLOYER_PRIVATE_KEY", vm.toString(key));
        vm.setEnv(
            "FUND_ADDRESSES", "0x0000000000000000000000000000000000000001,0x0000000000000000000000000000000000000002"
        );
        vm.setEnv("PROTOCOL_FEE_BPS", "300");
        vm.setEnv("AUDIT_BPS", "10000");
        Deploy.Config memory c = script.readConfig();
        assertEq(c.deployerKey, key);
        assertEq(c.treasury, vm.addr(key));
        assertEq(c.fund.length, 2);
        assertEq(c.fund[1], address(2));
        assertEq(c.protocolFeeBps, 300);
        assertEq(c.auditBps, 10_000);
        assertEq(c.taxBps, 0);
        assertEq(c.mediatorsPerCase, 3);
        assertEq(c.mediatorThreshold, 2);
        assertEq(c.mediatorStake, 10 ether);
        assertEq(c.commitPeriod, 3600);
        assertEq(c.revealPeriod, 3600);
        assertTrue(c.examples);
    }
}
