//! The life of a client encryption key: creation (a fresh root key wrapped
//! by a KEK), unwrapping through an allow-list, and rewrapping under
//! another KEK.
//!
//! Which KEKs the SDKs can read (RSA-OAEP only) is in the `cosmos_ae`
//! module documentation, "Which key-encryption keys".

use zeroize::Zeroizing;

use crate::error::Error;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::key::DataKey;
use crate::provider::CryptoProvider;

use super::cek::{check_resource_id, ClientEncryptionKey, KeyWrapMetadata};

/// Where the KEK of a rewrapped CEK may live. The customer-managed-key rule
/// of this crate is that a key moves only within its key container (the
/// same Key Vault or Managed HSM, PKCS#11 token, or local key directory);
/// leaving it takes this explicit opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultRule {
    /// The new KEK must be in the same key container as the current one,
    /// and both containers must be known (the default of the CLI).
    SameVaultOnly,
    /// "I mean to move this key to another vault": no container check.
    AllowOtherVault,
}

/// The 32-byte root key of `cek`, unwrapped by the KEK its metadata names,
/// found through `resolver` (an allow-list: a KEK it does not know is never
/// contacted). Cost: one KEK unwrap.
///
/// Errors: [`Error::UnknownKek`] when the resolver does not know the KEK;
/// [`Error::InvalidKey`] when the KEK's algorithm is not the metadata's;
/// [`Error::UnwrapFailed`] when the unwrap fails or yields anything but 32
/// bytes; the KEK's own errors.
pub(crate) async fn unwrap_root_key(
    cek: &ClientEncryptionKey,
    resolver: &dyn KeyResolver,
) -> crate::Result<Zeroizing<[u8; 32]>> {
    let m = cek.key_wrap_metadata();
    let kek = resolver
        .resolve(m.value())
        .ok_or_else(|| Error::UnknownKek {
            kek_ids: vec![m.value().to_owned()],
        })?;
    let refused = || Error::UnwrapFailed {
        kek_id: m.value().to_owned(),
    };
    if kek.algorithm() != m.algorithm() {
        return Err(Error::InvalidKey(format!(
            "client encryption key `{}` is wrapped with {}, but the key-encryption key `{}` is set up for {} (for a Key Vault URL, append #{})",
            cek.id(),
            m.algorithm(),
            m.value(),
            kek.algorithm(),
            m.algorithm()
        )));
    }
    let material = kek.unwrap_key_material(cek.wrapped_key()).await?;
    if material.len() != 32 {
        return Err(refused());
    }
    let mut root = Zeroizing::new([0u8; 32]);
    root.copy_from_slice(material.expose_secret_bytes());
    Ok(root)
}

impl ClientEncryptionKey {
    /// Creates a client encryption key `id`: draws a 32-byte root key from
    /// the OS CSPRNG and wraps it with `kek`. The metadata's `value` is the
    /// id the KEK reports for the wrap (for Key Vault, the versioned key
    /// URL). See the [module docs](super#which-key-encryption-keys) for
    /// which KEKs the SDKs can read.
    /// Store [`to_json`](ClientEncryptionKey::to_json) as the database's
    /// client encryption key.
    ///
    /// Cost: one KEK wrap.
    pub async fn create(
        id: &str,
        kek: &dyn KeyEncryptionKey,
    ) -> crate::Result<ClientEncryptionKey> {
        check_resource_id(id, "a client encryption key id")?;
        let root = DataKey::generate(CryptoProvider::default_provider())?;
        let wrapped = kek.wrap_key(&root).await?;
        Ok(ClientEncryptionKey::new(
            id,
            KeyWrapMetadata::for_kek(&wrapped.kek_id, wrapped.alg),
            wrapped.wrapped,
        ))
    }

    /// The same key (the same root key, so every item stays readable)
    /// wrapped by `new_kek` instead. The current KEK is found through
    /// `resolver`. Every member other than `keyWrapMetadata` and
    /// `wrappedDataEncryptionKey` is kept.
    ///
    /// With [`VaultRule::SameVaultOnly`], refused with
    /// [`Error::KeyPolicy`] unless both KEKs report the same
    /// [`key_container`](KeyEncryptionKey::key_container); nothing is
    /// unwrapped then.
    ///
    /// Cost: one unwrap with the current KEK, one wrap with the new one.
    pub async fn rewrap(
        &self,
        resolver: &dyn KeyResolver,
        new_kek: &dyn KeyEncryptionKey,
        rule: VaultRule,
    ) -> crate::Result<ClientEncryptionKey> {
        let old_id = self.key_wrap_metadata().value();
        if rule == VaultRule::SameVaultOnly {
            let old = resolver.resolve(old_id).ok_or_else(|| Error::UnknownKek {
                kek_ids: vec![old_id.to_owned()],
            })?;
            check_same_container(old.as_ref(), new_kek, self.id())?;
        }
        let root = unwrap_root_key(self, resolver).await?;
        let root = DataKey::from_unwrapped(&root[..])?;
        let wrapped = new_kek.wrap_key(&root).await?;
        Ok(self.with_wrapped_key(
            KeyWrapMetadata::for_kek(&wrapped.kek_id, wrapped.alg),
            wrapped.wrapped,
        ))
    }
}

fn check_same_container(
    old: &dyn KeyEncryptionKey,
    new: &dyn KeyEncryptionKey,
    cek_id: &str,
) -> crate::Result<()> {
    match (old.key_container(), new.key_container()) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(a), Some(b)) => Err(Error::KeyPolicy(format!(
            "client encryption key `{cek_id}`: a customer-managed key moves only within its vault: the current key `{}` is in `{a}`, the new key `{}` is in `{b}` (allow another vault explicitly to move it)",
            old.key_id(),
            new.key_id()
        ))),
        _ => Err(Error::KeyPolicy(format!(
            "client encryption key `{cek_id}`: the vault of the current key `{}` or of the new key `{}` is unknown, so the same-vault rule cannot be checked (allow another vault explicitly to rewrap anyway)",
            old.key_id(),
            new.key_id()
        ))),
    }
}
