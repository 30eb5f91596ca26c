// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {ILilypad} from "../interfaces/ILilypad.sol";

/// @notice Collateral and role of a provider, in one slot.
/// @dev free + locked never exceeds type(uint120).max (checked at deposit) and every job amount is
///      below 2^116 (a uint96 price times at most 100x), so the uint120 casts on these fields
///      cannot truncate.
struct Account {
    uint120 free;
    uint120 locked;
    bool isProvider;
}

/// @title LilypadRegistry
/// @notice The provider registry and its collateral deposits and withdrawals: registering,
///         deregistering, depositing and withdrawing free collateral. Its functions are public:
///         Lilypad calls them with DELEGATECALL on its own storage (the library is linked at
///         deployment), which keeps these calls, none of them on a job's path, out of Lilypad's
///         24 KiB. Events and errors are Lilypad's ({ILilypad}); `msg.sender` is Lilypad's caller.
library LilypadRegistry {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @notice Most bytes of a metadata URL.
    uint256 internal constant MAX_METADATA_URL_BYTES = 512;

    /// @notice Registers the caller as a provider with `url` (registering again replaces it).
    function register(
        mapping(address => Account) storage accounts,
        mapping(address => string) storage metadataUrls,
        EnumerableSet.AddressSet storage providers,
        string calldata url
    ) public {
        uint256 len = bytes(url).length;
        if (len == 0) revert ILilypad.EmptyMetadataUrl();
        if (len > MAX_METADATA_URL_BYTES) revert ILilypad.MetadataUrlTooLong(len, MAX_METADATA_URL_BYTES);
        metadataUrls[msg.sender] = url;
        accounts[msg.sender].isProvider = true;
        providers.add(msg.sender);
        emit ILilypad.ProviderRegistered(msg.sender, url);
    }

    /// @notice The caller stops being a provider; its collateral stays deposited.
    function deregister(mapping(address => Account) storage accounts, EnumerableSet.AddressSet storage providers)
        public
    {
        Account storage account = accounts[msg.sender];
        if (!account.isProvider) revert ILilypad.NotRegistered(msg.sender);
        account.isProvider = false;
        providers.remove(msg.sender);
        emit ILilypad.ProviderDeregistered(msg.sender);
    }

    /// @notice Adds `amount` to the caller's free collateral, pulled from it in `token`.
    function deposit(mapping(address => Account) storage accounts, IERC20 token, uint256 amount) public {
        if (amount == 0) revert ILilypad.ZeroAmount();
        Account storage account = accounts[msg.sender];
        uint256 free = uint256(account.free) + amount;
        if (free + account.locked > type(uint120).max) revert ILilypad.AmountTooLarge(amount, type(uint120).max);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free = uint120(free);
        emit ILilypad.CollateralDeposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Sends `amount` of the caller's free collateral back to it; locked collateral stays.
    function withdraw(mapping(address => Account) storage accounts, IERC20 token, uint256 amount) public {
        if (amount == 0) revert ILilypad.ZeroAmount();
        Account storage account = accounts[msg.sender];
        uint256 free = account.free;
        if (free < amount) revert ILilypad.InsufficientCollateral(msg.sender, amount, free);
        // forge-lint: disable-next-line(unsafe-typecast)
        account.free = uint120(free - amount);
        emit ILilypad.CollateralWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }
}
