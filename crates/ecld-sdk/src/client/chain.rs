//! Reading the contracts: images, offers, token totals and deposits.

use alloy::{
    primitives::B256,
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use ecld_contracts::{IERC20Permit, ImageRegistry, Marketplace};
use ecld_types::{Address, ImageId, OfferId, U256};
use serde::{Deserialize, Serialize};

use super::Client;
use crate::Error;

/// Platform bits of the ImageRegistry.
const PLATFORM_SIM: u8 = 1;
const PLATFORM_SGX: u8 = 2;
const PLATFORM_TDX: u8 = 4;

/// An image as the ImageRegistry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Its id.
    pub id: ImageId,
    /// The name users pick it by.
    pub name: String,
    /// Its version.
    pub version: String,
    /// CID of its WebAssembly module in the store.
    pub code_cid: String,
    /// The measurement the CAS requires of its enclaves.
    pub measurement: B256,
    /// X25519 public key inputs are encrypted to (raw 32 bytes).
    pub enclave_key: B256,
    /// The same key as an age recipient (`age1…`); empty if the key is not a valid point.
    pub enclave_recipient: String,
    /// The address whose signatures prove its executions.
    pub enclave_signer: Address,
    /// The CAS identity that provisions its secrets.
    pub cas_identity: Address,
    /// Allowed TEE platforms (bitmask: 1 sim, 2 SGX, 4 TDX).
    pub platforms: u8,
    /// Who may deprecate it.
    pub owner: Address,
    /// Whether it takes no new tasks.
    pub deprecated: bool,
    /// Whether its publisher revoked it: no claim or proof for it is accepted, and its
    /// tasks' escrows can be reclaimed at once.
    #[serde(default)]
    pub revoked: bool,
}

impl Image {
    /// Whether the simulated TEE (no protection at all) may run it.
    pub const fn allows_sim(&self) -> bool {
        self.platforms & PLATFORM_SIM != 0
    }

    /// The allowed platforms by name.
    pub fn platform_names(&self) -> Vec<&'static str> {
        [(PLATFORM_SIM, "sim"), (PLATFORM_SGX, "sgx"), (PLATFORM_TDX, "tdx")]
            .into_iter()
            .filter(|(bit, _)| self.platforms & bit != 0)
            .map(|(_, name)| name)
            .collect()
    }
}

/// A node's offer on the Marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its id.
    pub id: OfferId,
    /// The node's account.
    pub node: Address,
    /// The image it serves (`None`: any image allowing its platform).
    pub image: Option<ImageId>,
    /// TEE platform bit (1 sim, 2 SGX, 4 TDX).
    pub platform: u8,
    /// Concurrent tasks.
    pub slots: u16,
    /// Slots in use.
    pub used_slots: u16,
    /// Memory per task, MB.
    pub memory_mb: u32,
    /// Longest run time, seconds.
    pub max_runtime_s: u32,
    /// Price per task in token base units.
    pub price: U256,
    /// Whether it was withdrawn.
    pub withdrawn: bool,
}

/// The Marketplace's token accounting: `escrowed == paid + refunded + held`, and the
/// contract's token balance is `held + deposits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Total ever escrowed.
    pub escrowed: U256,
    /// Total paid to nodes.
    pub paid: U256,
    /// Total refunded to requesters.
    pub refunded: U256,
    /// Escrow still held for live tasks.
    pub held: U256,
    /// The Marketplace's actual token balance.
    pub balance: U256,
    /// The accounts' deposits: the sum of `balanceOf` over every account that ever
    /// deposited.
    #[serde(default)]
    pub deposits: U256,
}

impl Ledger {
    /// Whether the books balance: every escrow is paid, refunded or held, and the
    /// Marketplace's tokens are exactly the escrows held plus the deposits.
    pub fn conserved(&self) -> bool {
        self.paid.checked_add(self.refunded).and_then(|s| s.checked_add(self.held))
            == Some(self.escrowed)
            && self.held.checked_add(self.deposits) == Some(self.balance)
    }
}

impl Client {
    pub(crate) fn registry(
        &self,
    ) -> ImageRegistry::ImageRegistryInstance<alloy::providers::DynProvider> {
        ImageRegistry::new(self.inner.deployment.registry, self.inner.provider.clone())
    }

    pub(crate) fn marketplace(
        &self,
    ) -> Marketplace::MarketplaceInstance<alloy::providers::DynProvider> {
        Marketplace::new(self.inner.deployment.marketplace, self.inner.provider.clone())
    }

    /// Logs of `E` from the Marketplace (or `address`), from the deployment block on,
    /// optionally filtered on the first indexed topic.
    pub(crate) async fn logs<E: SolEvent>(
        &self,
        address: Address,
        topic1: Option<B256>,
        from_block: Option<u64>,
    ) -> Result<Vec<(E, Log)>, Error> {
        let mut filter = Filter::new()
            .address(address)
            .event_signature(E::SIGNATURE_HASH)
            .from_block(from_block.unwrap_or(self.inner.deployment.deploy_block));
        if let Some(t) = topic1 {
            filter = filter.topic1(t);
        }
        let logs = self.inner.provider.get_logs(&filter).await.map_err(|e| self.chain_err(e))?;
        logs.into_iter()
            .map(|log| {
                let decoded = log.log_decode::<E>().map_err(|e| {
                    Error::Protocol(format!("undecodable {} log: {e}", E::SIGNATURE))
                })?;
                Ok((decoded.inner.data, log))
            })
            .collect()
    }

    /// Every image published in the ImageRegistry, oldest first.
    ///
    /// # Errors
    /// [`Error::Chain`] when the chain cannot be read.
    pub async fn images(&self) -> Result<Vec<Image>, Error> {
        let logs = self
            .logs::<ImageRegistry::ImagePublished>(self.inner.deployment.registry, None, None)
            .await?;
        let mut out = Vec::with_capacity(logs.len());
        for (ev, _) in logs {
            out.push(self.image(ImageId(ev.imageId)).await?);
        }
        Ok(out)
    }

    /// One image by id.
    ///
    /// # Errors
    /// [`Error::ImageNotFound`] when it is not published.
    pub async fn image(&self, id: ImageId) -> Result<Image, Error> {
        let img = self
            .registry()
            .getImage(id.0)
            .call()
            .await
            .map_err(|_| Error::ImageNotFound(id.to_string()))?;
        Ok(Image {
            id,
            name: img.name,
            version: img.version,
            code_cid: img.codeCid,
            measurement: img.measurement,
            enclave_key: img.enclaveKey,
            enclave_recipient: crate::keys::recipient_of(img.enclaveKey)
                .map(|r| r.to_string())
                .unwrap_or_default(),
            enclave_signer: img.enclaveSigner,
            cas_identity: img.casIdentity,
            platforms: img.platforms,
            owner: img.owner,
            deprecated: img.deprecated,
            revoked: img.revoked,
        })
    }

    /// The image named `name_or_id`: an id (`0x` + 64 hex digits), or the name of a
    /// published, non-deprecated image (the latest published when several versions share
    /// the name).
    ///
    /// # Errors
    /// [`Error::ImageNotFound`].
    pub async fn resolve_image(&self, name_or_id: &str) -> Result<Image, Error> {
        if let Ok(id) = name_or_id.parse::<ImageId>() {
            return self.image(id).await;
        }
        let images = self.images().await?;
        images
            .into_iter()
            .rev()
            .find(|i| i.name == name_or_id && !i.deprecated)
            .ok_or_else(|| Error::ImageNotFound(name_or_id.to_owned()))
    }

    /// Every offer that is not withdrawn, by id.
    ///
    /// # Errors
    /// [`Error::Chain`].
    pub async fn offers(&self) -> Result<Vec<Offer>, Error> {
        let m = self.marketplace();
        let count = m.offerCount().call().await.map_err(|e| self.chain_err(e))?;
        let mut out = Vec::new();
        for raw in 1..=count {
            let o = m.getOffer(raw).call().await.map_err(|e| self.chain_err(e))?;
            let Some(id) = OfferId::new(raw) else { continue };
            if o.withdrawn || o.node == Address::ZERO {
                continue;
            }
            out.push(Offer {
                id,
                node: o.node,
                image: (o.imageId != B256::ZERO).then_some(ImageId(o.imageId)),
                platform: o.platform,
                slots: o.slots,
                used_slots: o.usedSlots,
                memory_mb: o.memoryMb,
                max_runtime_s: o.maxRuntimeS,
                price: U256::from(o.price),
                withdrawn: o.withdrawn,
            });
        }
        Ok(out)
    }

    /// The Marketplace's token accounting, deposits included (their accounts found in the
    /// `Deposited` logs).
    ///
    /// # Errors
    /// [`Error::Chain`].
    pub async fn ledger(&self) -> Result<Ledger, Error> {
        let market = self.marketplace();
        let mut accounts: Vec<Address> = self
            .logs::<Marketplace::Deposited>(self.inner.deployment.marketplace, None, None)
            .await?
            .into_iter()
            .map(|(ev, _)| ev.account)
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut deposits = U256::ZERO;
        for account in accounts {
            let d = market.balanceOf(account).call().await.map_err(|e| self.chain_err(e))?;
            deposits = deposits.saturating_add(d);
        }
        let t = market.totals().call().await.map_err(|e| self.chain_err(e))?;
        let balance = self.token_balance(self.inner.deployment.marketplace).await?;
        Ok(Ledger {
            escrowed: t.escrowed,
            paid: t.paid,
            refunded: t.refunded,
            held: t.held,
            balance,
            deposits,
        })
    }

    pub(crate) async fn token_balance(&self, account: Address) -> Result<U256, Error> {
        IERC20Permit::new(self.inner.deployment.token, &self.inner.provider)
            .balanceOf(account)
            .call()
            .await
            .map_err(|e| self.chain_err(e))
    }
}

#[cfg(test)]
mod ledger_tests {
    use super::*;

    fn ledger(held: u64, deposits: u64, balance: u64) -> Ledger {
        Ledger {
            escrowed: U256::from(10_000u64),
            paid: U256::from(6_000u64),
            refunded: U256::from(4_000u64 - held),
            held: U256::from(held),
            balance: U256::from(balance),
            deposits: U256::from(deposits),
        }
    }

    #[test]
    fn the_marketplace_holds_the_escrows_plus_the_deposits() {
        assert!(ledger(1_000, 2_500, 3_500).conserved());
        assert!(ledger(1_000, 0, 1_000).conserved());
        // Deposits the books do not count, or tokens missing from the balance.
        assert!(!ledger(1_000, 2_500, 1_000).conserved());
        assert!(!ledger(1_000, 0, 3_500).conserved());
        assert!(!ledger(1_000, 2_500, 3_499).conserved());
        // An escrow neither paid, refunded nor held.
        let mut lost = ledger(1_000, 2_500, 3_500);
        lost.escrowed += U256::from(1u64);
        assert!(!lost.conserved());
    }
}
