// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title LilypadToken
/// @notice The ERC-20 that dev and test deployments use to pay for jobs and post collateral.
/// @dev A production deployment names an existing token instead. Only the owner (the deployer)
///      mints, so a dev chain can fund clients, providers and mediators from its deploy script.
contract LilypadToken is ERC20, Ownable {
    /// @param initialOwner the account allowed to mint
    constructor(address initialOwner) ERC20("Lilypad Dev Token", "LPD") Ownable(initialOwner) {}

    /// @notice Creates `amount` tokens (18 decimals) for `to`.
    /// @dev Reverts with OwnableUnauthorizedAccount for anyone but the owner.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
