// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {console2} from "forge-std/console2.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

import {Lilypad} from "../src/Lilypad.sol";
import {LilypadToken} from "../src/LilypadToken.sol";
import {ConsortiumMediation} from "../src/mediation/ConsortiumMediation.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";
import {Sha256Oracle} from "../src/examples/Sha256Oracle.sol";
import {Params} from "../src/interfaces/ILilypad.sol";

/// @title Deploy
/// @notice Deploys the Lilypad suite to any chain and writes deployments/<chainId>.json.
/// @dev Environment (only DEPLOYER_PRIVATE_KEY is required):
///      DEPLOYER_PRIVATE_KEY     key that deploys everything (it keeps no power over Lilypad or the
///                               mediation unless it is also ADMIN)
///      TOKEN                    existing ERC-20 to use; unset: deploy LilypadToken (dev token)
///      TREASURY                 receives protocol fees (default: the deployer)
///      PROTOCOL_FEE_BPS         protocol fee, at most 1000 (default 100 = 1%)
///      MEDIATORS_PER_CASE       N mediators drawn per challenge (default 3)
///      MEDIATOR_THRESHOLD       k matching verdicts that decide (default 2; needs 2k > N)
///      MEDIATION_FEE            fee a client pays to challenge, token units (default 1e18); an
///                               audit pays the mediators as much of it as the audit fund holds
///      AUDIT_BPS                chance a deterministic result is audited by the protocol, basis
///                               points (default 0: no audits; a deterministic request must then
///                               lock results collateral of at least (1/p - 1) x its price)
///      TAX_BPS                  audit tax on each deterministic job's price, into the audit fund
///                               (default 0; at most 5000)
///      JACKPOT_BPS              share of an overturned result's slashed collateral that goes to
///                               the jackpot, half of which pays each exposer (default 0)
///      MEDIATOR_STAKE           stake a mediator needs free to be drawn, locked per case it is
///                               drawn for and slashed if it does not vote with the decision
///                               (default 10e18)
///      COMMIT_PERIOD            seconds drawn mediators have to commit their vote (default 3600)
///      REVEAL_PERIOD            seconds they then have to reveal it (default 3600)
///      FUND_ADDRESSES           comma-separated addresses to mint dev tokens to (dev token only)
///      FUND_AMOUNT              tokens each gets (default 10000e18)
///      DEPLOY_EXAMPLES          deploy CowsayClient and Sha256Oracle (default true)
///      COWSAY_MODULE, COWSAY_VERSION, SHA256_MODULE, SHA256_VERSION   example modules
///                               (defaults cowsay/1.0.0 and sha256/1.0.0, as in job-modules/)
///      EXAMPLE_MAX_PRICE        what each example job escrows (default 1e18)
///      ADMIN                    who proposes and carries out admin changes (default: the
///                               deployer), through the timelock that owns Lilypad and the mediation
///      ADMIN_DELAY              seconds an admin change waits between being scheduled and taking
///                               effect (default 172800 = 2 days), so providers and clients can leave
///                               first
///      DEPLOYMENT_FILE          where to write the JSON (default deployments/<chainId>.json)
///      Run: forge script script/Deploy.s.sol --rpc-url $RPC --broadcast
contract Deploy is Script {
    struct Config {
        uint256 deployerKey;
        address token;
        address treasury;
        uint16 protocolFeeBps;
        uint8 mediatorsPerCase;
        uint8 mediatorThreshold;
        uint96 mediationFee;
        uint16 auditBps;
        uint16 taxBps;
        uint16 jackpotBps;
        uint128 mediatorStake;
        uint32 commitPeriod;
        uint32 revealPeriod;
        address[] fund;
        uint256 fundAmount;
        bool examples;
        string cowsayModule;
        string cowsayVersion;
        string sha256Module;
        string sha256Version;
        uint256 exampleMaxPrice;
        /// zero: the deployer
        address admin;
        uint256 adminDelay;
    }

    struct Deployment {
        address deployer;
        address token;
        bool devToken;
        address lilypad;
        address mediation;
        address timelock;
        address cowsayClient;
        address sha256Oracle;
        uint256 startBlock;
    }

    error FundingNeedsDevToken();

    function run() external returns (Deployment memory d) {
        Config memory c = readConfig();
        d = deploy(c);
        string memory file = vm.envOr(
            "DEPLOYMENT_FILE", string.concat(vm.projectRoot(), "/deployments/", vm.toString(block.chainid), ".json")
        );
        writeJson(c, d, file);
        console2.log("Lilypad deployed at", d.lilypad);
        console2.log("deployment written to", file);
    }

    /// @notice Reads the configuration from the environment (see the contract's notes).
    function readConfig() public view returns (Config memory c) {
        c.deployerKey = vm.envUint("DEPLOYER_PRIVATE_KEY");
        address deployer = vm.addr(c.deployerKey);
        c.token = vm.envOr("TOKEN", address(0));
        c.treasury = vm.envOr("TREASURY", deployer);
        c.protocolFeeBps = uint16(vm.envOr("PROTOCOL_FEE_BPS", uint256(100)));
        c.mediatorsPerCase = uint8(vm.envOr("MEDIATORS_PER_CASE", uint256(3)));
        c.mediatorThreshold = uint8(vm.envOr("MEDIATOR_THRESHOLD", uint256(2)));
        c.mediationFee = uint96(vm.envOr("MEDIATION_FEE", uint256(1 ether)));
        c.auditBps = uint16(vm.envOr("AUDIT_BPS", uint256(0)));
        c.taxBps = uint16(vm.envOr("TAX_BPS", uint256(0)));
        c.jackpotBps = uint16(vm.envOr("JACKPOT_BPS", uint256(0)));
        c.mediatorStake = uint128(vm.envOr("MEDIATOR_STAKE", uint256(10 ether)));
        c.commitPeriod = uint32(vm.envOr("COMMIT_PERIOD", uint256(1 hours)));
        c.revealPeriod = uint32(vm.envOr("REVEAL_PERIOD", uint256(1 hours)));
        c.fund = vm.envOr("FUND_ADDRESSES", ",", new address[](0));
        c.fundAmount = vm.envOr("FUND_AMOUNT", uint256(10_000 ether));
        c.examples = vm.envOr("DEPLOY_EXAMPLES", true);
        c.cowsayModule = vm.envOr("COWSAY_MODULE", string("cowsay"));
        c.cowsayVersion = vm.envOr("COWSAY_VERSION", string("1.0.0"));
        c.sha256Module = vm.envOr("SHA256_MODULE", string("sha256"));
        c.sha256Version = vm.envOr("SHA256_VERSION", string("1.0.0"));
        c.exampleMaxPrice = vm.envOr("EXAMPLE_MAX_PRICE", uint256(1 ether));
        c.admin = vm.envOr("ADMIN", deployer);
        c.adminDelay = vm.envOr("ADMIN_DELAY", uint256(2 days));
    }

    /// @notice Deploys and configures everything as the deployer, then hands ownership of Lilypad and
    ///         the mediation to a timelock run by the admin.
    function deploy(Config memory c) public returns (Deployment memory d) {
        d.deployer = vm.addr(c.deployerKey);
        d.startBlock = block.number;
        if (c.token != address(0) && c.fund.length != 0) revert FundingNeedsDevToken();

        vm.startBroadcast(c.deployerKey);
        if (c.token == address(0)) {
            LilypadToken devToken = new LilypadToken(d.deployer);
            for (uint256 i; i < c.fund.length; ++i) {
                devToken.mint(c.fund[i], c.fundAmount);
            }
            d.token = address(devToken);
            d.devToken = true;
        } else {
            d.token = c.token;
        }

        Lilypad lilypad = new Lilypad(IERC20(d.token), d.deployer, c.treasury);
        ConsortiumMediation mediation = new ConsortiumMediation(
            lilypad,
            d.deployer,
            c.mediatorsPerCase,
            c.mediatorThreshold,
            c.mediatorStake,
            c.commitPeriod,
            c.revealPeriod
        );
        // the mediation first: audits need one
        lilypad.setMediation(address(mediation));
        Params memory p = lilypad.params();
        p.protocolFeeBps = c.protocolFeeBps;
        p.mediationFee = c.mediationFee;
        p.auditBps = c.auditBps;
        p.taxBps = c.taxBps;
        p.jackpotBps = c.jackpotBps;
        lilypad.setParams(p);
        d.lilypad = address(lilypad);
        d.mediation = address(mediation);

        if (c.examples) {
            d.cowsayClient =
                address(new CowsayClient(d.lilypad, d.deployer, c.cowsayModule, c.cowsayVersion, c.exampleMaxPrice));
            d.sha256Oracle =
                address(new Sha256Oracle(d.lilypad, d.deployer, c.sha256Module, c.sha256Version, c.exampleMaxPrice));
        }
        d.timelock = address(_handOver(lilypad, mediation, c, d.deployer));
        vm.stopBroadcast();
    }

    /// @dev Makes an OpenZeppelin TimelockController the owner of Lilypad and the mediation: every
    ///      admin change (parameters, treasury, mediation, consortium size, periods) is then scheduled by
    ///      the admin, visible on-chain (`CallScheduled`) for `adminDelay`, and only then carried
    ///      out. The timelock starts with no delay so the deployer can accept ownership through it,
    ///      then sets its delay, hands its roles to the admin and gives up its own.
    function _handOver(Lilypad lilypad, ConsortiumMediation mediation, Config memory c, address deployer)
        internal
        returns (TimelockController timelock)
    {
        address[] memory deployerOnly = new address[](1);
        deployerOnly[0] = deployer;
        timelock = new TimelockController(0, deployerOnly, deployerOnly, deployer);
        lilypad.transferOwnership(address(timelock));
        mediation.transferOwnership(address(timelock));
        _now(timelock, address(lilypad), abi.encodeCall(Ownable2Step.acceptOwnership, ()));
        _now(timelock, address(mediation), abi.encodeCall(Ownable2Step.acceptOwnership, ()));
        _now(timelock, address(timelock), abi.encodeCall(TimelockController.updateDelay, (c.adminDelay)));
        address admin = c.admin == address(0) ? deployer : c.admin;
        if (admin != deployer) {
            bytes32[3] memory roles = [timelock.PROPOSER_ROLE(), timelock.EXECUTOR_ROLE(), timelock.CANCELLER_ROLE()];
            for (uint256 i; i < roles.length; ++i) {
                timelock.grantRole(roles[i], admin);
                timelock.revokeRole(roles[i], deployer);
            }
        }
        timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer);
    }

    /// @dev Schedules and carries out a call through the timelock while its delay is still zero.
    function _now(TimelockController timelock, address target, bytes memory data) internal {
        timelock.schedule(target, 0, data, bytes32(0), bytes32(0), 0);
        timelock.execute(target, 0, data, bytes32(0), bytes32(0));
    }

    /// @notice Writes the addresses the off-chain services need (read by the Rust side).
    function writeJson(Config memory c, Deployment memory d, string memory file) public {
        string memory k = "deployment";
        vm.serializeUint(k, "chainId", block.chainid);
        vm.serializeUint(k, "deploymentBlock", d.startBlock);
        vm.serializeAddress(k, "deployer", d.deployer);
        vm.serializeAddress(k, "owner", d.timelock);
        vm.serializeAddress(k, "admin", c.admin == address(0) ? d.deployer : c.admin);
        vm.serializeUint(k, "adminDelay", c.adminDelay);
        vm.serializeAddress(k, "token", d.token);
        vm.serializeBool(k, "devToken", d.devToken);
        vm.serializeAddress(k, "lilypad", d.lilypad);
        vm.serializeAddress(k, "mediation", d.mediation);
        vm.serializeAddress(k, "treasury", c.treasury);
        vm.serializeAddress(k, "cowsayClient", d.cowsayClient);
        string memory json = vm.serializeAddress(k, "sha256Oracle", d.sha256Oracle);
        vm.writeJson(json, file);
    }
}
