//! The EIP-712 messages a resource provider signs: the deal terms and the result. The type strings
//! are those in `docs/protocol.md` and the contract's `DEAL_TYPEHASH` and `RESULT_TYPEHASH`; a
//! test checks them against the deployed contract. Also the result commitment
//! ([`result_commitment`]) the contract stores and mediators vote.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::{Signature, SignerSync, local::PrivateKeySigner};
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

alloy::sol! {
    /// The deal terms (EIP-712 type `Deal`).
    #[derive(Debug, PartialEq, Eq)]
    struct Deal {
        uint256 jobId;
        bytes32 requestHash;
        address provider;
        uint256 price;
        uint256 timeoutCollateral;
        uint256 resultsCollateral;
        uint256 expiry;
    }

    /// A result as signed (EIP-712 type `Result`): the inline output enters as its keccak256.
    #[derive(Debug, PartialEq, Eq)]
    struct Result {
        uint256 jobId;
        uint8 status;
        bytes resultCid;
        bytes32 outputHash;
        int32 exitCode;
        string error;
    }
}

/// The domain every Lilypad signature is bound to: name "Lilypad", version "1", the chain and the
/// contract, so a signature for one chain or deployment is useless on another.
pub fn domain(chain_id: u64, lilypad: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Lilypad",
        version: "1",
        chain_id: chain_id,
        verifying_contract: lilypad,
    }
}

/// Signing failed (the key could not sign the digest).
#[derive(Debug, thiserror::Error)]
#[error("signing the {what} failed: {source}")]
pub struct SignError {
    what: &'static str,
    source: alloy::signers::Error,
}

/// Signs deal terms; the 65-byte signature is what `agreeDeal` takes.
pub fn sign_deal(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    deal: &Deal,
) -> std::result::Result<Signature, SignError> {
    signer
        .sign_hash_sync(&deal.eip712_signing_hash(domain))
        .map_err(|source| SignError {
            what: "deal",
            source,
        })
}

/// Signs a result; `inline_output` is hashed into `outputHash` here.
#[allow(clippy::too_many_arguments)]
pub fn result_message(
    job_id: U256,
    status: u8,
    result_cid: &[u8],
    inline_output: &[u8],
    exit_code: i32,
    error: &str,
) -> Result {
    Result {
        jobId: job_id,
        status,
        resultCid: result_cid.to_vec().into(),
        outputHash: keccak256(inline_output),
        exitCode: exit_code,
        error: error.to_owned(),
    }
}

/// The commitment a result is judged by (the contract's `resultCommitment`): what `submitResult`
/// stores as the job's `resultHash` and what a mediator votes for its own re-run.
/// `keccak256(abi.encode(uint8 status, int32 exitCode, keccak256(resultCid), keccak256(inlineOutput)))`:
/// the outcome, the exit code, the CID and the inline output, without the job id or the error text.
pub fn result_commitment(
    status: u8,
    exit_code: i32,
    result_cid: &[u8],
    inline_output: &[u8],
) -> B256 {
    use alloy::sol_types::{SolType, sol_data};
    type Commitment = (
        sol_data::Uint<8>,
        sol_data::Int<32>,
        sol_data::FixedBytes<32>,
        sol_data::FixedBytes<32>,
    );
    keccak256(Commitment::abi_encode(&(
        status,
        exit_code,
        keccak256(result_cid),
        keccak256(inline_output),
    )))
}

/// A signature that does not recover to an address.
#[derive(Debug, thiserror::Error)]
#[error("not a valid 65-byte secp256k1 signature: {0}")]
pub struct RecoverError(String);

/// The address that signed `deal` for `domain`.
pub fn recover_deal_signer(
    domain: &Eip712Domain,
    deal: &Deal,
    signature: &[u8],
) -> std::result::Result<Address, RecoverError> {
    let sig = Signature::try_from(signature).map_err(|e| RecoverError(e.to_string()))?;
    sig.recover_address_from_prehash(&deal.eip712_signing_hash(domain))
        .map_err(|e| RecoverError(e.to_string()))
}

/// Signs a result message built by [`result_message`].
pub fn sign_result(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    result: &Result,
) -> std::result::Result<Signature, SignError> {
    signer
        .sign_hash_sync(&result.eip712_signing_hash(domain))
        .map_err(|source| SignError {
            what: "result",
            source,
        })
}

/// The type hash of [`Deal`], as the contract's `DEAL_TYPEHASH`.
pub fn deal_typehash() -> B256 {
    keccak256(Deal::eip712_encode_type().as_bytes())
}

/// The type hash of [`Result`], as the contract's `RESULT_TYPEHASH`.
pub fn result_typehash() -> B256 {
    keccak256(Result::eip712_encode_type().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_match_the_protocol_document() {
        assert_eq!(
            Deal::eip712_encode_type(),
            "Deal(uint256 jobId,bytes32 requestHash,address provider,uint256 price,uint256 timeoutCollateral,uint256 resultsCollateral,uint256 expiry)"
        );
        assert_eq!(
            Result::eip712_encode_type(),
            "Result(uint256 jobId,uint8 status,bytes resultCid,bytes32 outputHash,int32 exitCode,string error)"
        );
    }

    #[test]
    fn a_signature_recovers_to_the_signer_and_only_for_its_domain() {
        let signer = PrivateKeySigner::random();
        let lilypad = Address::repeat_byte(0x11);
        let deal = Deal {
            jobId: U256::from(1),
            requestHash: B256::repeat_byte(2),
            provider: signer.address(),
            price: U256::from(100),
            timeoutCollateral: U256::from(10),
            resultsCollateral: U256::from(200),
            expiry: U256::from(u64::MAX),
        };
        let d = domain(31337, lilypad);
        let sig = sign_deal(&signer, &d, &deal).unwrap();
        let hash = deal.eip712_signing_hash(&d);
        assert_eq!(
            sig.recover_address_from_prehash(&hash).unwrap(),
            signer.address()
        );
        let other_chain = deal.eip712_signing_hash(&domain(31338, lilypad));
        assert_ne!(
            sig.recover_address_from_prehash(&other_chain).unwrap(),
            signer.address()
        );
    }
}
