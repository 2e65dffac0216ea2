//! Local key-encryption keys, kept in JWK files.

mod der;
mod jwk;

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use zeroize::Zeroizing;

use self::jwk::{Jwk, JwkKey};
use super::{KeyEncryptionKey, WrapAlgorithm, WrappedKey};
use crate::atomic_file;
use crate::error::{Error, KekError, KekErrorKind};
#[cfg(test)]
use crate::key::DataKey;
use crate::key::KeyMaterial;
use crate::provider::{CryptoProvider, OaepHash, RsaPrivateKey, RsaPublicKey};

const BACKEND: &str = "local";

/// What kind of key a [`LocalKek`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalKeyKind {
    /// A 256-bit AES key (A256KW or A256KWP).
    Aes,
    /// An RSA key pair (can wrap and unwrap).
    RsaPrivate,
    /// An RSA public key (can only wrap).
    RsaPublic,
}

enum Material {
    Aes(Zeroizing<[u8; 32]>),
    Rsa {
        public: Box<dyn RsaPublicKey>,
        private: Option<Box<dyn RsaPrivateKey>>,
    },
}

/// A KEK held in process memory, loaded from or saved to a JWK file
/// (RFC 7517): `oct` keys for A256KW/A256KWP, RSA 3072/4096 for
/// RSA-OAEP-256/RSA-OAEP.
///
/// The key id is the JWK's `kid`. The key material is zeroized on drop and
/// never printed: `Debug` shows the kid, the algorithm and the kind only.
/// Operations are CPU-only (no I/O): an AES wrap costs well under a
/// microsecond, an RSA-3072 unwrap about 0.7 ms with aws-lc-rs.
pub struct LocalKek {
    kid: String,
    alg: WrapAlgorithm,
    /// The JWK as loaded, kept for saving. For RSA this is the only place the
    /// private integers live besides the provider's key object.
    jwk: Jwk,
    material: Material,
    provider: &'static CryptoProvider,
    dir: Option<PathBuf>,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind())
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl LocalKek {
    /// Generates a new key: 32 random bytes for `A256KW`/`A256KWP`, or an RSA
    /// key of `rsa_bits` (3072 or 4096; default 3072) for `RSA-OAEP-256` /
    /// `RSA-OAEP`. With `kid == None` a random id `local-<16 hex>` is chosen.
    ///
    /// Cost: RSA generation takes from a fraction of a second to several
    /// seconds.
    pub fn generate(
        alg: WrapAlgorithm,
        kid: Option<String>,
        rsa_bits: Option<usize>,
    ) -> crate::Result<LocalKek> {
        Self::generate_with_provider(CryptoProvider::default_provider(), alg, kid, rsa_bits)
    }

    /// [`LocalKek::generate`] with a chosen provider.
    pub fn generate_with_provider(
        provider: &'static CryptoProvider,
        alg: WrapAlgorithm,
        kid: Option<String>,
        rsa_bits: Option<usize>,
    ) -> crate::Result<LocalKek> {
        let kid = match kid {
            Some(k) if k.is_empty() || k.len() > 2048 => {
                return Err(Error::InvalidKey("a key id must be 1 to 2048 bytes".into()))
            }
            Some(k) => k,
            None => {
                let mut r = [0u8; 8];
                provider.fill_random(&mut r)?;
                format!(
                    "local-{}",
                    r.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            }
        };
        let key = if alg.is_rsa() {
            let bits = rsa_bits.unwrap_or(3072);
            if bits != 3072 && bits != 4096 {
                return Err(Error::InvalidKey(format!(
                    "RSA keys must be 3072 or 4096 bits, not {bits}"
                )));
            }
            let pkcs8 = provider
                .rsa
                .generate_pkcs8(bits)
                .map_err(|_| Error::InvalidKey("RSA key generation failed".into()))?;
            let parts = der::rsa_parts_from_pkcs8(&pkcs8)
                .ok_or_else(|| Error::InvalidKey("generated RSA key could not be parsed".into()))?;
            JwkKey::RsaPrivate(parts)
        } else {
            if rsa_bits.is_some() {
                return Err(Error::ApiMisuse("a key size applies only to RSA keys"));
            }
            let mut k = Zeroizing::new([0u8; 32]);
            provider.fill_random(&mut k[..])?;
            JwkKey::Oct(k)
        };
        Self::from_jwk(Jwk { kid, alg, key }, provider, None).map_err(Error::InvalidKey)
    }

    /// Wraps an existing 256-bit AES key as a KEK (`A256KW` or `A256KWP`).
    pub fn from_aes_key(
        kid: impl Into<String>,
        alg: WrapAlgorithm,
        key: &[u8; 32],
    ) -> crate::Result<LocalKek> {
        if alg.is_rsa() {
            return Err(Error::ApiMisuse("an AES key needs A256KW or A256KWP"));
        }
        let kid = kid.into();
        if kid.is_empty() || kid.len() > 2048 {
            return Err(Error::InvalidKey("a key id must be 1 to 2048 bytes".into()));
        }
        let jwk = Jwk {
            kid,
            alg,
            key: JwkKey::Oct(Zeroizing::new(*key)),
        };
        Self::from_jwk(jwk, CryptoProvider::default_provider(), None).map_err(Error::InvalidKey)
    }

    /// Loads a JWK file. Public-only RSA keys are accepted (they can wrap but
    /// not unwrap); use [`LocalKek::from_private_jwk_file`] to insist on a
    /// key that can unwrap.
    ///
    /// Errors: [`Error::KeyFile`] naming the file and the problem (bad JSON,
    /// wrong `kty`/`alg`, wrong key size, missing `kid`, …), never the key.
    pub fn from_jwk_file(path: impl AsRef<Path>) -> crate::Result<LocalKek> {
        Self::load(path.as_ref(), false)
    }

    /// Like [`LocalKek::from_jwk_file`], but a public-only RSA key is an
    /// error.
    pub fn from_private_jwk_file(path: impl AsRef<Path>) -> crate::Result<LocalKek> {
        Self::load(path.as_ref(), true)
    }

    /// Parses JWK bytes held in memory (errors name `<memory>`).
    pub fn from_jwk_bytes(bytes: &[u8]) -> crate::Result<LocalKek> {
        let jwk = jwk::parse(bytes, false).map_err(|problem| Error::KeyFile {
            path: "<memory>".into(),
            problem,
        })?;
        Self::from_jwk(jwk, CryptoProvider::default_provider(), None).map_err(|problem| {
            Error::KeyFile {
                path: "<memory>".into(),
                problem,
            }
        })
    }

    fn load(path: &Path, need_private: bool) -> crate::Result<LocalKek> {
        let kf = |problem: String| Error::KeyFile {
            path: path.to_path_buf(),
            problem,
        };
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| kf(format!("cannot read: {e}")))?);
        let jwk = jwk::parse(&bytes, need_private).map_err(kf)?;
        let dir = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        Self::from_jwk(jwk, CryptoProvider::default_provider(), dir).map_err(kf)
    }

    fn from_jwk(
        jwk: Jwk,
        provider: &'static CryptoProvider,
        dir: Option<PathBuf>,
    ) -> Result<LocalKek, String> {
        let material = match &jwk.key {
            JwkKey::Oct(k) => Material::Aes(Zeroizing::new(**k)),
            JwkKey::RsaPrivate(parts) => {
                let invalid = || "the RSA private key is inconsistent or invalid".to_string();
                let pkcs8 = der::rsa_pkcs8_from_parts(parts).ok_or_else(invalid)?;
                let private = provider
                    .rsa
                    .private_key_from_pkcs8(pkcs8.as_bytes())
                    .map_err(|_| invalid())?;
                let spki = der::rsa_spki_from_parts(parts.n(), parts.e())
                    .ok_or_else(|| "the RSA public key is invalid".to_string())?;
                let public = provider
                    .rsa
                    .public_key_from_spki(&spki)
                    .map_err(|_| "the RSA public key is invalid".to_string())?;
                Material::Rsa {
                    public,
                    private: Some(private),
                }
            }
            JwkKey::RsaPublic { n, e } => {
                let spki = der::rsa_spki_from_parts(n, e)
                    .ok_or_else(|| "the RSA public key is invalid".to_string())?;
                let public = provider
                    .rsa
                    .public_key_from_spki(&spki)
                    .map_err(|_| "the RSA public key is invalid".to_string())?;
                Material::Rsa {
                    public,
                    private: None,
                }
            }
        };
        Ok(LocalKek {
            kid: jwk.kid.clone(),
            alg: jwk.alg,
            jwk,
            material,
            provider,
            dir,
        })
    }

    /// Uses `provider` for this key's operations from now on.
    pub fn with_provider(self, provider: &'static CryptoProvider) -> crate::Result<LocalKek> {
        let dir = self.dir.clone();
        Self::from_jwk(self.jwk, provider, dir).map_err(Error::InvalidKey)
    }

    /// Writes the key as a private JWK, mode 0600, atomically (temporary
    /// file, fsync, rename). An existing file is refused unless `overwrite`.
    pub fn save_jwk(&self, path: impl AsRef<Path>, overwrite: bool) -> crate::Result<()> {
        self.save(path.as_ref(), false, overwrite)
    }

    /// Writes the public part of an RSA key as a JWK (mode 0644); fails for
    /// AES keys.
    pub fn save_public_jwk(&self, path: impl AsRef<Path>, overwrite: bool) -> crate::Result<()> {
        self.save(path.as_ref(), true, overwrite)
    }

    fn save(&self, path: &Path, public_only: bool, overwrite: bool) -> crate::Result<()> {
        let kf = |problem: String| Error::KeyFile {
            path: path.to_path_buf(),
            problem,
        };
        let text = jwk::serialize(&self.jwk, public_only).map_err(kf)?;
        let mode = if public_only { 0o644 } else { 0o600 };
        atomic_file::write(path, mode, overwrite, text.as_bytes())
            .map_err(|e| kf(format!("cannot write: {e}")))
    }

    /// What kind of key this is.
    pub fn kind(&self) -> LocalKeyKind {
        match &self.material {
            Material::Aes(_) => LocalKeyKind::Aes,
            Material::Rsa {
                private: Some(_), ..
            } => LocalKeyKind::RsaPrivate,
            Material::Rsa { private: None, .. } => LocalKeyKind::RsaPublic,
        }
    }

    /// The directory the key file was loaded from, if any. The key hierarchy
    /// treats it as the local equivalent of a vault: rotation stays within
    /// one directory.
    pub fn key_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn unwrap_failed(&self) -> Error {
        Error::UnwrapFailed {
            kek_id: self.kid.clone(),
        }
    }

    /// Synchronous wrap (local keys do no I/O).
    pub(crate) fn wrap_sync(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        let secret = material.expose_secret_bytes();
        self.alg.check_material_len(secret.len())?;
        let wrapped = match &self.material {
            Material::Aes(k) => self
                .provider
                .key_wrap
                .wrap(k, self.alg == WrapAlgorithm::A256Kwp, secret)
                .map_err(|_| KekError::new(BACKEND, KekErrorKind::Other, "AES key wrap failed"))?,
            Material::Rsa { public, .. } => public
                .encrypt_oaep(oaep_hash(self.alg), secret)
                .map_err(|_| {
                    KekError::new(BACKEND, KekErrorKind::Other, "RSA-OAEP encryption failed")
                })?,
        };
        Ok(WrappedKey {
            alg: self.alg,
            kek_id: self.kid.clone(),
            wrapped,
        })
    }

    /// Synchronous unwrap (local keys do no I/O).
    pub(crate) fn unwrap_sync(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let clear = match &self.material {
            Material::Aes(k) => self
                .provider
                .key_wrap
                .unwrap(k, self.alg == WrapAlgorithm::A256Kwp, wrapped)
                .map_err(|_| self.unwrap_failed())?,
            Material::Rsa {
                private: Some(private),
                ..
            } => private
                .decrypt_oaep(oaep_hash(self.alg), wrapped)
                .map_err(|_| self.unwrap_failed())?,
            Material::Rsa { private: None, .. } => {
                return Err(KekError::new(
                    BACKEND,
                    KekErrorKind::KeyUsage,
                    format!(
                    "key `{}` is only the public part of an RSA key: it can wrap but not unwrap",
                    self.kid
                ),
                )
                .into())
            }
        };
        // A length outside 16..=64 is not key material we wrapped.
        KeyMaterial::from_bytes(&clear).map_err(|_| self.unwrap_failed())
    }
}

fn oaep_hash(alg: WrapAlgorithm) -> OaepHash {
    match alg {
        WrapAlgorithm::RsaOaep => OaepHash::Sha1,
        _ => OaepHash::Sha256,
    }
}

#[async_trait]
impl KeyEncryptionKey for LocalKek {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn algorithm(&self) -> WrapAlgorithm {
        self.alg
    }

    /// `local-dir:<canonical directory of the key file>`, when the key was
    /// loaded from a file.
    fn key_container(&self) -> Option<String> {
        self.dir
            .as_ref()
            .map(|d| format!("local-dir:{}", d.display()))
    }

    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        self.wrap_sync(material)
    }

    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        self.unwrap_sync(wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_key() {
        let k = LocalKek::from_aes_key("dbg", WrapAlgorithm::A256Kw, &[0x42; 32]).unwrap();
        let s = format!("{k:?}");
        assert!(s.contains("dbg") && s.contains("A256Kw"));
        assert!(!s.contains("42") && !s.contains("66"), "{s}");
    }

    #[test]
    fn aes_wrap_round_trip_both_modes() {
        for alg in [WrapAlgorithm::A256Kw, WrapAlgorithm::A256Kwp] {
            let k = LocalKek::from_aes_key("k", alg, &[7; 32]).unwrap();
            let dek = DataKey::generate(CryptoProvider::default_provider()).unwrap();
            let w = k.wrap_sync(&KeyMaterial::from_data_key(&dek)).unwrap();
            assert_eq!(w.wrapped.len(), 40);
            assert_eq!(w.alg, alg);
            assert!(k.unwrap_sync(&w.wrapped).unwrap().into_data_key().unwrap() == dek);
        }
    }
}
