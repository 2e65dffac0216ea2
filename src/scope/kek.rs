//! The scope key as a key-encryption key ([`EncryptionScope::kek`]) and
//! the allow-list of a scope's key versions ([`ScopeResolver`]).
//!
//! [`EncryptionScope::kek`]: super::EncryptionScope::kek

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;

use super::material::Usage;
use super::{parse_scope_kid, scope_kid, scope_kid_version, Inner, ScopeKey};
use crate::error::Error;
use crate::kek::lease::Window;
use crate::kek::{KeyEncryptionKey, KeyLease, KeyResolver, WrapAlgorithm, WrappedKey};
use crate::key::KeyMaterial;

/// A scope key as a KEK: A256KW under one version, or under whichever
/// version is current at wrap time.
pub(super) struct ScopeKek {
    inner: Arc<Inner>,
    /// `None`: follows the record's current version.
    version: Option<u32>,
    kid: String,
}

impl fmt::Debug for ScopeKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeKek").field("kid", &self.kid).finish()
    }
}

impl ScopeKek {
    /// The KEK that seals under the current version (`scope:<id>`).
    pub(super) fn following(inner: Arc<Inner>) -> ScopeKek {
        let kid = format!("scope:{}", inner.id);
        ScopeKek {
            inner,
            version: None,
            kid,
        }
    }

    /// The KEK of version `version`, whose id is `kid`.
    fn fixed(inner: Arc<Inner>, version: u32, kid: String) -> ScopeKek {
        ScopeKek {
            inner,
            version: Some(version),
            kid,
        }
    }

    /// The version to wrap under now, and its key.
    async fn wrapping_key(&self) -> crate::Result<(u32, Arc<ScopeKey>)> {
        let Some(v) = self.version else {
            return self.inner.sealing_key().await;
        };
        let key = self.inner.key(v).await?;
        if key.usage != Usage::SealAndOpen {
            return Err(Error::KeyPolicy(format!(
                "scope `{}`, key version {v} may only open objects (it was once wrapped bare); seal with the scope's current key",
                self.inner.id
            )));
        }
        Ok((v, key))
    }
}

#[async_trait]
impl KeyEncryptionKey for ScopeKek {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn algorithm(&self) -> WrapAlgorithm {
        WrapAlgorithm::A256Kw
    }

    /// Wraps under the current version (or this KEK's version). Cost: no
    /// KMS call and no store read once the key is cached.
    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        WrapAlgorithm::A256Kw.check_material_len(material.len())?;
        let (v, key) = self.wrapping_key().await?;
        let wrapped = self
            .inner
            .provider
            .key_wrap
            .wrap(&key.key, false, material.expose_secret_bytes())
            .map_err(|_| Error::Internal("AES key wrap failed"))?;
        let kek_id = match self.version {
            Some(_) => self.kid.clone(),
            None => key.kid.clone(),
        };
        debug_assert_eq!(kek_id, scope_kid(&self.inner.id, v));
        Ok(WrappedKey {
            alg: WrapAlgorithm::A256Kw,
            kek_id,
            wrapped,
        })
    }

    /// Unwraps under this KEK's version (for the KEK that follows the
    /// record, the version current now; read objects through
    /// [`ScopeResolver`], which uses the version each header names).
    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let v = self
            .version
            .unwrap_or_else(|| self.inner.current.load(Ordering::Acquire));
        let key = self.inner.key(v).await?;
        let failed = || Error::UnwrapFailed {
            kek_id: self.kid.clone(),
        };
        let clear = self
            .inner
            .provider
            .key_wrap
            .unwrap(&key.key, false, wrapped)
            .map_err(|_| failed())?;
        KeyMaterial::from_bytes(&clear).map_err(|_| failed())
    }

    /// A lease bound to the scope key version `kek_id` names: it stops
    /// with the scope's cached state (destroyed at once, revoked or
    /// unreachable within the TTL). No lock, no I/O.
    fn lease(&self, kek_id: &str) -> Option<KeyLease> {
        let v = scope_kid_version(kek_id, &self.inner.id)?;
        if self.version.is_some_and(|mine| mine != v) {
            return None;
        }
        let window = Window {
            soft: self.inner.window_soft.load(Ordering::Relaxed),
            hard: self.inner.window_hard.load(Ordering::Relaxed),
        };
        Some(KeyLease::new(self.inner.clone(), v, window))
    }
}

/// Resolves `scope:<id>/<version>` for the versions of one scope (and
/// nothing else). Cost: a parse and an allocation; a version the cached
/// record lacks is looked up when its key is first needed (one store read
/// at most per [`CachePolicy::unknown_version_reread`](super::CachePolicy::unknown_version_reread)).
#[derive(Clone)]
pub struct ScopeResolver {
    inner: Arc<Inner>,
}

impl fmt::Debug for ScopeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeResolver")
            .field("scope", &self.inner.id)
            .finish()
    }
}

impl ScopeResolver {
    pub(super) fn new(inner: Arc<Inner>) -> ScopeResolver {
        ScopeResolver { inner }
    }
}

impl KeyResolver for ScopeResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        let (id, v) = parse_scope_kid(kek_id)?;
        if id != self.inner.id {
            return None;
        }
        Some(Arc::new(ScopeKek::fixed(
            self.inner.clone(),
            v,
            kek_id.to_owned(),
        )))
    }
}
