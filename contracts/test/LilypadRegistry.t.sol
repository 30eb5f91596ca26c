// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {Lilypad} from "../src/Lilypad.sol";
import {ILilypad, JobStatus, Params} from "../src/interfaces/ILilypad.sol";

contract LilypadRegistryTest is LilypadTestBase {
    address internal carol = makeAddr("carol");

    function test_RegisterProvider_SetsRoleAndUrl() public {
        vm.expectEmit(address(lilypad));
        emit ILilypad.ProviderRegistered(carol, "https://carol.example/rp.json");
        vm.prank(carol);
        lilypad.registerProvider("https://carol.example/rp.json");
        assertTrue(lilypad.isProvider(carol));
        assertEq(lilypad.metadataUrl(carol), "https://carol.example/rp.json");
        assertEq(lilypad.providerCount(), 3);
        assertEq(lilypad.providerAt(2), carol);

        // registering again updates the URL, does not duplicate
        vm.prank(carol);
        lilypad.registerProvider("https://carol.example/v2.json");
        assertEq(lilypad.metadataUrl(carol), "https://carol.example/v2.json");
        assertEq(lilypad.providerCount(), 3);
    }

    function test_DeregisterProvider() public {
        vm.expectEmit(address(lilypad));
        emit ILilypad.ProviderDeregistered(provider);
        vm.prank(provider);
        lilypad.deregisterProvider();
        assertFalse(lilypad.isProvider(provider));
        assertEq(lilypad.providerCount(), 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotRegistered.selector, provider));
        vm.prank(provider);
        lilypad.deregisterProvider();
    }

    function test_RevertWhen_MetadataUrlEmptyOrTooLong() public {
        vm.startPrank(carol);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.EmptyMetadataUrl.selector));
        lilypad.registerProvider("");
        vm.expectRevert(abi.encodeWithSelector(ILilypad.MetadataUrlTooLong.selector, 513, 512));
        lilypad.registerProvider(string(new bytes(513)));
        vm.stopPrank();
    }

    function test_Collateral_DepositAndWithdrawFreeOnly() public {
        _fund(carol, 50 ether);
        vm.startPrank(carol);
        token.approve(address(lilypad), 50 ether);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CollateralDeposited(carol, 50 ether);
        lilypad.depositCollateral(50 ether);
        vm.expectEmit(address(lilypad));
        emit ILilypad.CollateralWithdrawn(carol, 20 ether);
        lilypad.withdrawCollateral(20 ether);
        vm.stopPrank();
        assertEq(_free(carol), 30 ether);
        assertEq(token.balanceOf(carol), 20 ether);
    }

    function test_RevertWhen_WithdrawLockedCollateral() public {
        uint256 jobId = _requestJob();
        _agree(jobId); // locks PRICE
        uint256 free = _free(provider);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.InsufficientCollateral.selector, provider, free + 1, free));
        vm.prank(provider);
        lilypad.withdrawCollateral(free + 1);
        vm.prank(provider);
        lilypad.withdrawCollateral(free);
        assertEq(_locked(provider), PRICE);
    }

    function test_RevertWhen_ZeroCollateralAmounts() public {
        vm.startPrank(provider);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAmount.selector));
        lilypad.depositCollateral(0);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAmount.selector));
        lilypad.withdrawCollateral(0);
        vm.stopPrank();
    }

    function test_RevertWhen_CollateralOverflowsAccount() public {
        uint256 tooMuch = uint256(type(uint120).max);
        _fund(carol, tooMuch);
        vm.startPrank(carol);
        token.approve(address(lilypad), tooMuch);
        lilypad.depositCollateral(tooMuch - 1);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.AmountTooLarge.selector, 2, type(uint120).max));
        lilypad.depositCollateral(2);
        vm.stopPrank();
    }

    function testFuzz_Collateral_RoundTrip(uint120 deposit, uint120 withdrawn) public {
        vm.assume(deposit > 0);
        withdrawn = uint120(bound(withdrawn, 1, deposit));
        _fund(carol, deposit);
        vm.startPrank(carol);
        token.approve(address(lilypad), deposit);
        lilypad.depositCollateral(deposit);
        lilypad.withdrawCollateral(withdrawn);
        vm.stopPrank();
        assertEq(_free(carol), deposit - withdrawn);
        assertEq(token.balanceOf(carol), withdrawn);
    }

    // ------------------------------------------------------------------ admin

    function test_Constructor_RejectsZeroAddresses() public {
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAddress.selector));
        new Lilypad(IERC20(address(0)), owner, treasury);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAddress.selector));
        new Lilypad(token, owner, address(0));
    }

    function test_RevertWhen_StrangerSetsParams() public {
        Params memory p = lilypad.params();
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        lilypad.setParams(p);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        lilypad.setTreasury(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        lilypad.setMediation(alice);
        vm.stopPrank();
    }

    function test_SetParams_EmitsAndStores() public {
        Params memory p = lilypad.params();
        p.maxCallbackGas = 3_000_000;
        p.mediationFee = 7 ether;
        vm.expectEmit(address(lilypad));
        emit ILilypad.ParamsSet(p);
        vm.prank(owner);
        lilypad.setParams(p);
        assertEq(lilypad.params().maxCallbackGas, 3_000_000);
        assertEq(lilypad.params().mediationFee, 7 ether);
    }

    function test_RevertWhen_ParamsOutOfBounds() public {
        string[12] memory names = [
            "maxCallbackGas",
            "maxOutputBytes",
            "matchTimeout",
            "matchTimeout",
            "executionTimeout",
            "executionTimeout",
            "challengeWindow",
            "resultsCollateralBps",
            "minTimeoutCollateralBps",
            "protocolFeeBps",
            "mediatorShareBps",
            "mediationTimeout"
        ];
        for (uint256 i; i < names.length; ++i) {
            Params memory p = lilypad.params();
            if (i == 0) p.maxCallbackGas = 5_000_001;
            if (i == 1) p.maxOutputBytes = 32_769;
            if (i == 2) p.minMatchTimeout = 0;
            if (i == 3) p.minMatchTimeout = p.maxMatchTimeout + 1;
            if (i == 4) p.maxExecutionTimeout = 365 days + 1;
            if (i == 5) p.minExecutionTimeout = 0;
            if (i == 6) p.minChallengeWindow = p.maxChallengeWindow + 1;
            if (i == 7) p.maxResultsCollateralBps = 1_000_001;
            if (i == 8) p.minTimeoutCollateralBps = 1_000_001;
            if (i == 9) p.protocolFeeBps = 1_001;
            if (i == 10) p.mediatorShareBps = 5_001;
            if (i == 11) p.mediationTimeout = 0;
            vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidParam.selector, names[i]));
            vm.prank(owner);
            lilypad.setParams(p);
        }
    }

    function test_SetTreasury_AndRejectZero() public {
        vm.expectEmit(address(lilypad));
        emit ILilypad.TreasurySet(carol);
        vm.prank(owner);
        lilypad.setTreasury(carol);
        assertEq(lilypad.treasury(), carol);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAddress.selector));
        vm.prank(owner);
        lilypad.setTreasury(address(0));
    }

    function test_SetMediation_CannotTurnChallengesOff() public {
        uint256 jobId = _jobWithResult();
        vm.expectRevert(abi.encodeWithSelector(ILilypad.ZeroAddress.selector));
        vm.prank(owner);
        lilypad.setMediation(address(0));
        // The result inside its window stays challengeable.
        client.challenge(jobId);
        assertEq(uint8(lilypad.getJob(jobId).status), uint8(JobStatus.Challenged));
    }

    function test_OwnershipIsTwoStep() public {
        vm.prank(owner);
        lilypad.transferOwnership(carol);
        assertEq(lilypad.owner(), owner);
        vm.prank(carol);
        lilypad.acceptOwnership();
        assertEq(lilypad.owner(), carol);
    }

    function test_StrangerCannotResolveChallenge() public {
        uint256 jobId = _jobWithResult();
        client.challenge(jobId);
        vm.expectRevert(abi.encodeWithSelector(ILilypad.NotMediation.selector, alice));
        vm.prank(alice);
        lilypad.resolveChallenge(jobId, false, new address[](0));
    }
}
