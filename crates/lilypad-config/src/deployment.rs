//! A chain's contract addresses, from the deployments JSON that `contracts/script/Deploy.s.sol`
//! writes or from an inline `[chains.contracts]` table.

use std::path::PathBuf;

use alloy_primitives::Address;

use crate::chains::{ChainConfig, Deployment};

/// The addresses the services need on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contracts {
    /// The Lilypad contract.
    pub lilypad: Address,
    /// The payment token (read from Lilypad when not listed).
    pub token: Option<Address>,
    /// The mediation contract, when there is one.
    pub mediation: Option<Address>,
    /// The block the contracts were deployed at: where indexing can start.
    pub deployment_block: Option<u64>,
}

/// Why a chain's deployment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The deployments JSON cannot be read.
    #[error("chain {chain}: cannot read deployments file {}: {source} (fix: deploy with contracts/script/Deploy.s.sol, or point deployment at the right file)", path.display())]
    Read {
        /// The chain's name.
        chain: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what Deploy.s.sol writes.
    #[error("chain {chain}: deployments file {} is malformed: {problem} (fix: deploy again, or correct the file)", path.display())]
    Malformed {
        /// The chain's name.
        chain: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file is for another chain.
    #[error("chain {chain}: deployments file {} is for chain {found}, not {expected} (fix: point deployment at deployments/{expected}.json)", path.display())]
    WrongChain {
        /// The chain's name.
        chain: String,
        /// The file.
        path: PathBuf,
        /// chain_id in chains.toml.
        expected: u64,
        /// chainId in the file.
        found: u64,
    },
    /// The inline table has no `lilypad` entry.
    #[error("chain {0}: [chains.contracts] has no lilypad address (fix: add lilypad = \"0x...\")")]
    NoLilypad(String),
}

impl ChainConfig {
    /// The chain's contract addresses.
    pub fn contracts(&self) -> Result<Contracts, DeploymentError> {
        match &self.deployment {
            Deployment::Addresses(map) => Ok(Contracts {
                lilypad: *map
                    .get("lilypad")
                    .ok_or_else(|| DeploymentError::NoLilypad(self.name.clone()))?,
                token: map.get("token").copied(),
                mediation: map.get("mediation").copied(),
                deployment_block: None,
            }),
            Deployment::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| DeploymentError::Read {
                        chain: self.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                let malformed = |problem: String| DeploymentError::Malformed {
                    chain: self.name.clone(),
                    path: path.clone(),
                    problem,
                };
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
                let found = json["chainId"]
                    .as_u64()
                    .ok_or_else(|| malformed("chainId is missing or not a number".into()))?;
                if found != self.chain_id {
                    return Err(DeploymentError::WrongChain {
                        chain: self.name.clone(),
                        path: path.clone(),
                        expected: self.chain_id,
                        found,
                    });
                }
                let address = |key: &str| -> Result<Option<Address>, DeploymentError> {
                    match json.get(key) {
                        None | Some(serde_json::Value::Null) => Ok(None),
                        Some(v) => {
                            let text = v
                                .as_str()
                                .ok_or_else(|| malformed(format!("{key} is not a string")))?;
                            let a: Address = text.parse().map_err(|_| {
                                malformed(format!("{key} {text:?} is not an address"))
                            })?;
                            Ok((a != Address::ZERO).then_some(a))
                        }
                    }
                };
                Ok(Contracts {
                    lilypad: address("lilypad")?
                        .ok_or_else(|| malformed("lilypad is missing".into()))?,
                    token: address("token")?,
                    mediation: address("mediation")?,
                    deployment_block: json["deploymentBlock"].as_u64(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::ChainsConfig;

    use super::*;

    fn chain(deployment: &str, dir: &Path) -> ChainConfig {
        let text = format!(
            "[[chains]]\nname = \"dev\"\nchain_id = 31337\nrpc = \"http://x\"\nsigner = {{ env = \"K\" }}\n{deployment}\n"
        );
        ChainsConfig::parse(&text, &dir.join("chains.toml"), &BTreeMap::new())
            .unwrap()
            .chains
            .remove(0)
    }

    #[test]
    fn reads_what_the_deploy_script_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("d.json"),
            r#"{"chainId":31337,"deploymentBlock":7,"lilypad":"0x5FbDB2315678afecb367f032d93F642f64180aa3","token":"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512","mediation":"0x0000000000000000000000000000000000000000","cowsayClient":"0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"}"#,
        )
        .unwrap();
        let c = chain("deployment = \"d.json\"", dir.path())
            .contracts()
            .unwrap();
        assert_eq!(
            c.lilypad.to_string(),
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        );
        assert!(c.token.is_some());
        assert_eq!(c.mediation, None, "the zero address means none");
        assert_eq!(c.deployment_block, Some(7));
    }

    #[test]
    fn problems_name_the_chain_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = chain("deployment = \"none.json\"", dir.path())
            .contracts()
            .unwrap_err();
        assert!(matches!(missing, DeploymentError::Read { .. }));
        assert!(
            missing.to_string().contains("chain dev")
                && missing.to_string().contains("Deploy.s.sol")
        );

        std::fs::write(
            dir.path().join("other.json"),
            r#"{"chainId":1,"lilypad":"0x5FbDB2315678afecb367f032d93F642f64180aa3"}"#,
        )
        .unwrap();
        let wrong = chain("deployment = \"other.json\"", dir.path())
            .contracts()
            .unwrap_err();
        assert!(
            matches!(
                wrong,
                DeploymentError::WrongChain {
                    expected: 31337,
                    found: 1,
                    ..
                }
            ),
            "{wrong}"
        );

        std::fs::write(
            dir.path().join("bad.json"),
            r#"{"chainId":31337,"lilypad":"0x12"}"#,
        )
        .unwrap();
        let bad = chain("deployment = \"bad.json\"", dir.path())
            .contracts()
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("lilypad \"0x12\" is not an address"),
            "{bad}"
        );
    }

    #[test]
    fn inline_addresses_need_lilypad() {
        let dir = tempfile::tempdir().unwrap();
        let c = chain(
            "[chains.contracts]\ntoken = \"0xe7f1725e7734ce288f8367e1bb143e90bb3f0512\"",
            dir.path(),
        );
        assert!(matches!(c.contracts(), Err(DeploymentError::NoLilypad(_))));
    }
}
