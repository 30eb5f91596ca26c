// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LilypadTestBase} from "./utils/LilypadTestBase.sol";
import {Lilypad} from "../src/Lilypad.sol";
import {ILilypad, Deal, JobRequest, JobStatus, Job, Params} from "../src/interfaces/ILilypad.sol";

contract LilypadDealTest is LilypadTestBase {
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        jobId = _requestJob();
    }

    function _expectDealRevert(Deal memory d, bytes memory sig, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(relayer);
        lilypad.agreeDeal(d, sig);
    }

    function test_AgreeDeal_LocksTimeoutCollateralAndRecordsTerms() public {
        Deal memory d = _deal(jobId);
        vm.expectEmit(address(lilypad));
        emit ILilypad.DealAgreed(jobId, provider, PRICE, PRICE, 2 * PRICE, uint64(block.timestamp + EXECUTION_TIMEOUT));
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));

        Job memory job = lilypad.getJob(jobId);
        assertEq(uint8(job.status), uint8(JobStatus.Agreed));
        assertEq(job.deadline, block.timestamp + EXECUTION_TIMEOUT);
        assertEq(job.provider, provider);
        assertEq(job.price, PRICE);
        assertEq(_free(provider), PROVIDER_COLLATERAL - PRICE);
        assertEq(_locked(provider), PRICE);
    }

    function test_TypehashAndDomainMatchIndependentHashes() public view {
        assertEq(lilypad.DEAL_TYPEHASH(), keccak256(bytes(DEAL_TYPE)));
        assertEq(lilypad.RESULT_TYPEHASH(), keccak256(bytes(RESULT_TYPE)));
        assertEq(lilypad.domainSeparator(), _domainSeparator());
    }

    function test_Eip712DomainFields() public view {
        (, string memory name, string memory version, uint256 chainId, address verifying,,) = lilypad.eip712Domain();
        assertEq(name, "Lilypad");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(lilypad));
    }

    function test_AgreeDeal_AtMaxPriceAndMinimumCollateral() public {
        Deal memory d = _deal(jobId, provider, MAX_PRICE);
        d.timeoutCollateral = MAX_PRICE; // 1x price
        d.resultsCollateral = 2 * MAX_PRICE; // 2x price
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
    }

    function test_AgreeDeal_ZeroPrice() public {
        Deal memory d = _deal(jobId, provider, 0);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        assertEq(_locked(provider), 0);
    }

    function test_RevertWhen_JobNotFound() public {
        Deal memory d = _deal(jobId);
        d.jobId = 99;
        _expectDealRevert(d, _signDeal(providerKey, d), abi.encodeWithSelector(ILilypad.JobNotFound.selector, 99));
    }

    function test_RevertWhen_DealAlreadyAgreed() public {
        Deal memory d = _agree(jobId);
        bytes memory sig = _signDeal(providerKey, d);
        _expectDealRevert(d, sig, abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Agreed));
    }

    function test_RevertWhen_MatchDeadlinePassed() public {
        Deal memory d = _deal(jobId);
        d.expiry = block.timestamp + 1 days;
        bytes memory sig = _signDeal(providerKey, d);
        uint256 deadline = lilypad.getJob(jobId).deadline;
        vm.warp(deadline);
        _expectDealRevert(d, sig, abi.encodeWithSelector(ILilypad.DeadlinePassed.selector, jobId, deadline));
    }

    function test_RevertWhen_SignatureExpired() public {
        Deal memory d = _deal(jobId);
        d.expiry = block.timestamp + 10;
        bytes memory sig = _signDeal(providerKey, d);
        vm.warp(block.timestamp + 11);
        _expectDealRevert(d, sig, abi.encodeWithSelector(ILilypad.SignatureExpired.selector, d.expiry));
    }

    function test_RevertWhen_RequestHashDiffers() public {
        Deal memory d = _deal(jobId);
        d.requestHash = keccak256("another request");
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(
                ILilypad.RequestHashMismatch.selector, jobId, lilypad.getJob(jobId).requestHash, d.requestHash
            )
        );
    }

    function test_RevertWhen_PriceAboveMax() public {
        Deal memory d = _deal(jobId, provider, MAX_PRICE + 1);
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.PriceAboveMax.selector, MAX_PRICE + 1, MAX_PRICE)
        );
    }

    function test_RevertWhen_ResultsCollateralIsNotPriceTimesMultiplier() public {
        Deal memory d = _deal(jobId);
        d.resultsCollateral = 2 * PRICE - 1;
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.ResultsCollateralMismatch.selector, 2 * PRICE - 1, 2 * PRICE)
        );
        d.resultsCollateral = 2 * PRICE + 1;
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.ResultsCollateralMismatch.selector, 2 * PRICE + 1, 2 * PRICE)
        );
    }

    function test_RevertWhen_TimeoutCollateralIsNotPriceTimesMultiplier() public {
        Deal memory d = _deal(jobId);
        d.timeoutCollateral = PRICE - 1;
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.TimeoutCollateralMismatch.selector, PRICE - 1, PRICE)
        );
        d.timeoutCollateral = type(uint256).max;
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.TimeoutCollateralMismatch.selector, type(uint256).max, PRICE)
        );
    }

    function test_CollateralRoundsDown() public {
        Deal memory d = _deal(jobId, provider, 3);
        d.timeoutCollateral = 3;
        d.resultsCollateral = 6;
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        // a job with a 1.5x multiplier: 3 * 15000 / 10000 = 4.5 -> 4
        JobRequest memory r = _request();
        r.resultsCollateralMultiplierBps = 15_000;
        uint256 second = _requestJob(r);
        d = _deal(second, provider, 3);
        d.timeoutCollateral = 3;
        d.resultsCollateral = 4;
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
    }

    function test_RevertWhen_SignedBySomeoneElse() public {
        Deal memory d = _deal(jobId);
        (, uint256 mallory) = makeAddrAndKey("mallory");
        _expectDealRevert(
            d, _signDeal(mallory, d), abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider)
        );
        // another registered provider cannot sign on the first one's behalf either
        _expectDealRevert(
            d, _signDeal(provider2Key, d), abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider)
        );
    }

    function test_RevertWhen_RelayerAltersTerms() public {
        Deal memory d = _deal(jobId);
        bytes memory sig = _signDeal(providerKey, d);
        // a lower price with consistent collateral: the checks pass, the signature does not
        Deal memory altered = _deal(jobId, provider, PRICE - 1);
        altered.expiry = d.expiry;
        _expectDealRevert(altered, sig, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        // a longer expiry
        altered = _deal(jobId);
        altered.expiry = d.expiry + 1;
        _expectDealRevert(altered, sig, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        // the deal moved to another provider
        altered = _deal(jobId, provider2, PRICE);
        altered.expiry = d.expiry;
        _expectDealRevert(altered, sig, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider2));
    }

    function test_RevertWhen_SignatureMalformed() public {
        Deal memory d = _deal(jobId);
        _expectDealRevert(d, hex"1234", abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        _expectDealRevert(d, new bytes(65), abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
    }

    function test_RevertWhen_HighSSignature() public {
        Deal memory d = _deal(jobId);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(providerKey, _digest(_dealHash(d)));
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes memory malleated = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        _expectDealRevert(d, malleated, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
    }

    function test_RevertWhen_NotARegisteredProvider() public {
        (address stranger, uint256 strangerKey) = makeAddrAndKey("stranger");
        Deal memory d = _deal(jobId, stranger, PRICE);
        _expectDealRevert(
            d, _signDeal(strangerKey, d), abi.encodeWithSelector(ILilypad.NotAProvider.selector, stranger)
        );
        vm.prank(provider);
        lilypad.deregisterProvider();
        d = _deal(jobId);
        _expectDealRevert(
            d, _signDeal(providerKey, d), abi.encodeWithSelector(ILilypad.NotAProvider.selector, provider)
        );
    }

    function test_RevertWhen_NotEnoughFreeCollateral() public {
        vm.prank(provider);
        lilypad.withdrawCollateral(PROVIDER_COLLATERAL - (PRICE - 1));
        Deal memory d = _deal(jobId);
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.InsufficientCollateral.selector, provider, PRICE, PRICE - 1)
        );
    }

    function test_RevertWhen_CollateralLockedByAnotherDeal() public {
        uint256 second = _requestJob();
        vm.prank(provider);
        lilypad.withdrawCollateral(PROVIDER_COLLATERAL - PRICE);
        Deal memory d = _deal(jobId);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        Deal memory d2 = _deal(second);
        _expectDealRevert(
            d2,
            _signDeal(providerKey, d2),
            abi.encodeWithSelector(ILilypad.InsufficientCollateral.selector, provider, PRICE, 0)
        );
    }

    function test_RevertWhen_SignatureReplayedForAnotherJob() public {
        Deal memory d = _agree(jobId);
        bytes memory sig = _signDeal(providerKey, d);
        uint256 second = _requestJob(); // same request, so the same requestHash
        assertEq(lilypad.getJob(second).requestHash, d.requestHash);
        d.jobId = second;
        _expectDealRevert(d, sig, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
    }

    function test_RevertWhen_SignatureReplayedOnAnotherChain() public {
        Deal memory d = _deal(jobId);
        bytes memory sig = _signDeal(providerKey, d); // signed for chain 31337
        vm.chainId(8453);
        _expectDealRevert(d, sig, abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        // the same terms signed for the new chain are accepted
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
    }

    function test_RevertWhen_SignatureReplayedOnAnotherDeployment() public {
        Deal memory d = _deal(jobId);
        bytes memory sig = _signDeal(providerKey, d);

        // a second deployment with the same job 1 (same client, same request, same provider)
        Lilypad other = new Lilypad(token, owner, treasury);
        _fund(provider, PROVIDER_COLLATERAL);
        vm.startPrank(provider);
        other.registerProvider("https://provider.example/");
        token.approve(address(other), PROVIDER_COLLATERAL);
        other.depositCollateral(PROVIDER_COLLATERAL);
        vm.stopPrank();
        vm.prank(alice);
        token.approve(address(other), MAX_PRICE);
        vm.prank(alice);
        uint256 otherJob = other.runJob(_request());
        assertEq(otherJob, jobId);
        assertEq(other.getJob(otherJob).requestHash, d.requestHash);

        vm.expectRevert(abi.encodeWithSelector(ILilypad.InvalidSignature.selector, provider));
        other.agreeDeal(d, sig);
    }

    function test_RevertWhen_ExpiredJobGetsDeal() public {
        vm.warp(block.timestamp + MATCH_TIMEOUT);
        lilypad.expire(jobId);
        Deal memory d = _deal(jobId);
        _expectDealRevert(
            d,
            _signDeal(providerKey, d),
            abi.encodeWithSelector(ILilypad.InvalidJobStatus.selector, jobId, JobStatus.Expired)
        );
    }

    function testFuzz_AgreeDeal_Amounts(uint256 price, uint32 multiplierBps, uint256 wrongBy) public {
        price = bound(price, 0, MAX_PRICE);
        multiplierBps = uint32(bound(multiplierBps, 0, 100_000));
        JobRequest memory r = _request();
        r.resultsCollateralMultiplierBps = multiplierBps;
        uint256 id = _requestJob(r);
        Deal memory d = _deal(id, provider, price);
        d.resultsCollateral = price * multiplierBps / 10_000;
        wrongBy = bound(wrongBy, 0, 3);
        if (wrongBy != 0) {
            d.resultsCollateral += wrongBy;
            _expectDealRevert(
                d,
                _signDeal(providerKey, d),
                abi.encodeWithSelector(
                    ILilypad.ResultsCollateralMismatch.selector, d.resultsCollateral, d.resultsCollateral - wrongBy
                )
            );
            return;
        }
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        assertEq(_free(provider) + _locked(provider), PROVIDER_COLLATERAL);
        assertEq(_locked(provider), price);
    }

    function testFuzz_AgreeDeal_Timing(uint256 elapsed) public {
        elapsed = bound(elapsed, 0, 2 * MATCH_TIMEOUT);
        Deal memory d = _deal(jobId);
        d.expiry = type(uint256).max;
        bytes memory sig = _signDeal(providerKey, d);
        vm.warp(block.timestamp + elapsed);
        if (elapsed >= MATCH_TIMEOUT) {
            vm.expectRevert(
                abi.encodeWithSelector(ILilypad.DeadlinePassed.selector, jobId, lilypad.getJob(jobId).deadline)
            );
        }
        lilypad.agreeDeal(d, sig);
    }

    function test_MinTimeoutCollateralFixedAtRequestTime() public {
        vm.startPrank(owner);
        Params memory p = lilypad.params();
        p.minTimeoutCollateralBps = 50_000;
        lilypad.setParams(p);
        vm.stopPrank();
        // the job requested before the change still takes a 1x timeout collateral
        Deal memory d = _deal(jobId);
        vm.prank(relayer);
        lilypad.agreeDeal(d, _signDeal(providerKey, d));
        // a new job needs 5x
        uint256 second = _requestJob();
        Deal memory d2 = _deal(second);
        _expectDealRevert(
            d2,
            _signDeal(providerKey, d2),
            abi.encodeWithSelector(ILilypad.TimeoutCollateralMismatch.selector, PRICE, 5 * PRICE)
        );
        d2.timeoutCollateral = 5 * PRICE;
        vm.prank(relayer);
        lilypad.agreeDeal(d2, _signDeal(providerKey, d2));
        assertEq(_locked(provider), 6 * PRICE);
    }
}
