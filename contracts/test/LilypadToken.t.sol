// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {LilypadToken} from "../src/LilypadToken.sol";

contract LilypadTokenTest is Test {
    LilypadToken internal token;
    address internal owner = makeAddr("owner");
    address internal alice = makeAddr("alice");

    function setUp() public {
        token = new LilypadToken(owner);
    }

    function test_OwnerMints() public {
        vm.prank(owner);
        token.mint(alice, 5 ether);
        assertEq(token.balanceOf(alice), 5 ether);
        assertEq(token.totalSupply(), 5 ether);
    }

    function test_RevertWhen_StrangerMints() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        token.mint(alice, 1);
    }

    function testFuzz_MintThenTransferConservesSupply(uint128 minted, uint128 sent) public {
        vm.assume(sent <= minted);
        vm.prank(owner);
        token.mint(alice, minted);
        vm.prank(alice);
        token.transfer(owner, sent);
        assertEq(token.balanceOf(alice) + token.balanceOf(owner), token.totalSupply());
        assertEq(token.balanceOf(owner), sent);
    }
}
