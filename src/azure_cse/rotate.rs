//! Key rotation: rewrap the content key under a new KEK, metadata only.

use super::decrypt::unwrap_material;
use super::encrypt::check_wrap_algorithm;
use super::metadata::EncryptionData;
use crate::error::Error;
use crate::kek::{KeyEncryptionKey, KeyResolver};

/// Rewraps the blob's content key with `new_kek` and returns the new
/// metadata; the blob body is untouched. The equivalent of the SDKs'
/// `UpdateClientSideKeyEncryptionKey`.
///
/// The current KEK is found through `resolver` (an allow-list) and the
/// unwrapped material is checked exactly as for decryption (`KeyId`,
/// `Algorithm`, protocol prefix) before anything is rewrapped. Every
/// other metadata field, known or unknown, is kept in place.
///
/// Cost: one unwrap and one wrap.
pub async fn rewrap_metadata(
    metadata: &EncryptionData,
    resolver: &dyn KeyResolver,
    new_kek: &dyn KeyEncryptionKey,
) -> crate::Result<EncryptionData> {
    let old = resolver
        .resolve(metadata.key_id())
        .ok_or_else(|| Error::unknown_kek([metadata.key_id()]))?;
    check_wrap_algorithm(new_kek.algorithm())?;
    let material = unwrap_material(metadata, old.as_ref()).await?;
    let wrapped = new_kek.wrap_key_material(&material).await?;
    check_wrap_algorithm(wrapped.alg)?;
    Ok(metadata.with_wrapped_key(wrapped.kek_id, wrapped.alg, wrapped.wrapped))
}
