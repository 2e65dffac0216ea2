//! Key-encryption keys held in a PKCS#11 HSM (feature `pkcs11`).
//!
//! A [`Pkcs11Kek`] is addressed by an RFC 7512 URI such as
//! `pkcs11:token=kek-test;object=cmk;type=secret-key` (see [`Pkcs11Uri`]).
//! Its key never leaves the HSM: every wrap and unwrap is a call into the
//! token. Supported keys and mechanisms:
//!
//! | key | algorithm | mechanism |
//! |---|---|---|
//! | AES-256 secret key | A256KW | `CKM_AES_KEY_WRAP` (RFC 3394) |
//! | AES-256 secret key | A256KWP | `CKM_AES_KEY_WRAP_PAD` (RFC 5649) |
//! | RSA key pair | RSA-OAEP-256 | `CKM_RSA_PKCS_OAEP`, SHA-256, MGF1-SHA-256, empty label |
//! | RSA key pair | RSA-OAEP | `CKM_RSA_PKCS_OAEP`, SHA-1, MGF1-SHA-1, empty label |
//!
//! SoftHSM2 2.6.1 accepts OAEP only with SHA-1; asking it for RSA-OAEP-256
//! gives [`KekErrorKind::Unsupported`] ("mechanism not supported by this
//! token"), as does any token that refuses a mechanism.
//!
//! # How the data key comes back to the host
//!
//! The envelope body is encrypted in software, so an unwrapped data key must
//! reach process memory. Each direction picks one of two paths when the KEK
//! is built ([`Pkcs11Path`]), from the key's attributes and the token's
//! mechanism flags:
//!
//! * [`Pkcs11Path::Cipher`]: `C_Encrypt`/`C_Decrypt` with the wrap
//!   mechanism, used when the key has `CKA_ENCRYPT`/`CKA_DECRYPT` and the
//!   token lists `CKF_ENCRYPT`/`CKF_DECRYPT` for the mechanism. One call,
//!   no object is created.
//! * [`Pkcs11Path::KeyObject`]: `C_WrapKey`/`C_UnwrapKey` through a
//!   transient **session** object (`CKA_TOKEN=false`, a generic secret with
//!   every usage flag false). To wrap, the data key is imported as such an
//!   object and wrapped; to unwrap, the token unwraps into one with
//!   `CKA_SENSITIVE=false`, `CKA_EXTRACTABLE=true`, the crate reads
//!   `CKA_VALUE` and destroys it at once. A session object is visible only to
//!   this process and disappears with its session; if it cannot be destroyed
//!   the session is closed instead of going back to the pool.
//!
//! The cipher path is preferred when both are possible (fewer calls, no
//! object). SoftHSM2 2.6.1 offers `CKM_AES_KEY_WRAP` and
//! `CKM_AES_KEY_WRAP_PAD` with `CKF_WRAP|CKF_UNWRAP` only (`C_EncryptInit`
//! answers `CKR_MECHANISM_INVALID`), so AES KEKs on SoftHSM take the
//! key-object path, while its RSA keys take the cipher path. Both paths give
//! output byte-identical to RFC 3394/5649 and to the local KEK, which the
//! tests check by importing the same AES key into the token. Choosing per
//! key also covers production HSMs whose KEKs carry only
//! `CKA_WRAP`/`CKA_UNWRAP`, and those that forbid extractable session keys
//! but allow `C_Decrypt`.
//!
//! # Key id
//!
//! The id recorded in headers is the canonical URI
//! ([`Pkcs11Uri::canonical`]): `pkcs11:token=<label>;object=<label>;id=<id>;type=<type>`
//! with the object and id exactly as configured (whichever were given),
//! values percent-encoded the same way every time. An RSA key is recorded
//! as `type=private` even by a KEK built on its public half, because the
//! header names the key that can open the entry.
//!
//! # Concurrency
//!
//! The module is loaded and `C_Initialize`d once per process (with
//! `CKF_OS_LOCKING_OK`). Each KEK keeps a bounded pool of logged-in
//! sessions, because a session cannot be shared between threads; every
//! call runs on a blocking thread (`tokio::task::spawn_blocking`), never on
//! the async executor. Called outside a tokio runtime, the calls run inline.
//!
//! Login state belongs to the process and the token, not to one KEK: once
//! any session of the process is logged in to a token, all are.
//! Opening a session and logging in are retried when the token fails
//! transiently (for example under load), under the KEK's
//! [`RetryConfig`]
//! ([`Pkcs11KekBuilder::retry`]); a PIN error never is.
//!
//! # Secrets
//!
//! The PIN comes from [`Pkcs11KekBuilder::pin`] or the `CMK_PKCS11_PIN`
//! environment variable, never from the URI (`pin-value` is refused). It is
//! held in a zeroizing buffer and every `Debug` shows `[REDACTED]`. Data keys
//! read back from the token are zeroized after use. One copy is out of the
//! crate's reach: on the key-object path, `cryptoki` reads `CKA_VALUE`
//! through an internal buffer that it frees without zeroizing (the cipher
//! path has no such copy). Error messages name the
//! URI, token and PKCS#11 return code, never key bytes or the PIN.

mod discover;
mod errors;
mod pool;
mod uri;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::{Zeroize, Zeroizing};

use self::discover::Handles;
use self::errors::{Ctx, Stage, BACKEND};
use self::pool::{Pin, PooledSession, SessionPool};
use super::{KeyEncryptionKey, WrapAlgorithm, WrappedKey};
use crate::error::{Error, KekError, KekErrorKind};
use crate::key::{KeyMaterial, DATA_KEY_LEN};
use crate::retry::Backoff;
use crate::RetryConfig;

pub use self::uri::{Pkcs11ObjectType, Pkcs11Uri};

/// Environment variable naming the PKCS#11 module when the builder does not.
pub const MODULE_ENV: &str = "PKCS11_MODULE";
/// Environment variable holding the user PIN when the builder has none.
pub const PIN_ENV: &str = "CMK_PKCS11_PIN";
/// Sessions a KEK opens at most, unless [`Pkcs11KekBuilder::max_sessions`]
/// says otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 8;

/// How one direction (wrap or unwrap) of a [`Pkcs11Kek`] calls the token.
/// See the [module documentation](self) for when each is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pkcs11Path {
    /// `C_Encrypt` / `C_Decrypt` with the wrap mechanism.
    Cipher,
    /// `C_WrapKey` / `C_UnwrapKey` through a transient session object.
    KeyObject,
}

/// Builds a [`Pkcs11Kek`]: [`Pkcs11Kek::builder`], optional settings,
/// then [`build`](Pkcs11KekBuilder::build). Not `Clone`: it may hold the
/// PIN.
pub struct Pkcs11KekBuilder {
    uri: String,
    module: Option<PathBuf>,
    pin: Option<Pin>,
    alg: Option<WrapAlgorithm>,
    max_sessions: usize,
    probe: bool,
    retry: RetryConfig,
}

impl fmt::Debug for Pkcs11KekBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw URI is not shown: it might hold a `pin-value` that
        // `build` is going to refuse.
        f.debug_struct("Pkcs11KekBuilder")
            .field("uri", &Pkcs11Uri::parse(&self.uri).ok())
            .field("module", &self.module)
            .field("pin", &self.pin)
            .field("algorithm", &self.alg)
            .field("max_sessions", &self.max_sessions)
            .field("probe", &self.probe)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Pkcs11KekBuilder {
    /// The PKCS#11 module (shared library) to load. Without it, the URI's
    /// `module-path` query attribute, then the `PKCS11_MODULE` environment
    /// variable are used.
    pub fn module(mut self, path: impl AsRef<Path>) -> Self {
        self.module = Some(path.as_ref().to_path_buf());
        self
    }

    /// The user PIN. Without it, `CMK_PKCS11_PIN` is read; with neither, no
    /// login is attempted.
    pub fn pin(mut self, pin: impl Into<String>) -> Self {
        self.pin = Some(Pin::new(pin.into()));
        self
    }

    /// The wrap algorithm. Default: A256KW for a secret key, RSA-OAEP-256
    /// for an RSA key.
    pub fn algorithm(mut self, alg: WrapAlgorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// The most sessions this KEK opens on the token (default
    /// [`DEFAULT_MAX_SESSIONS`]; at least 1). Callers beyond it wait.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self
    }

    /// How opening a session and `C_Login` are retried when the token fails
    /// transiently, for example under load (default
    /// [`RetryConfig::default`]; `per_request_timeout` does not apply). A
    /// PIN error is never retried.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Whether [`build`](Self::build) proves the key works by wrapping and
    /// unwrapping an all-zero throwaway key (default `true`). The probe
    /// turns a refused mechanism, a missing permission or a wrong key type
    /// into a build error instead of a failure on first use.
    pub fn probe(mut self, probe: bool) -> Self {
        self.probe = probe;
        self
    }

    /// Loads the module (once per process), finds the token and the key,
    /// logs in, checks the key fits the algorithm, and probes it.
    ///
    /// This blocks on the HSM; from async code use
    /// [`build_async`](Self::build_async).
    ///
    /// Errors: [`Error::Kek`] with [`KekErrorKind::Misconfigured`] (bad
    /// URI, no module, key of the wrong type or size),
    /// [`KekErrorKind::NotFound`] (token or key absent),
    /// [`KekErrorKind::Unauthenticated`] (wrong PIN),
    /// [`KekErrorKind::Unsupported`] (mechanism refused),
    /// [`KekErrorKind::KeyUsage`] (the key may neither wrap nor unwrap).
    pub fn build(self) -> crate::Result<Pkcs11Kek> {
        let uri = Pkcs11Uri::parse(&self.uri)?;
        let module = match (&self.module, uri.module_path(), std::env::var_os(MODULE_ENV)) {
            (Some(m), _, _) => m.clone(),
            (None, Some(m), _) => PathBuf::from(m),
            (None, None, Some(m)) if !m.is_empty() => PathBuf::from(m),
            _ => {
                return Err(misconfigured(format!(
                    "no PKCS#11 module given: set {MODULE_ENV}, add `module-path` to the URI or call .module()"
                )))
            }
        };
        let had_pin = pin_given(&self.pin);
        let pin = self.pin.or_else(|| {
            std::env::var(PIN_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .map(Pin::new)
        });
        let ctx = pool::module(&module).map_err(|e| {
            misconfigured(format!(
                "cannot load the PKCS#11 module {}: {}",
                module.display(),
                match &e {
                    CkError::LibraryLoading(le) => le.to_string(),
                    other => other.to_string(),
                }
            ))
        })?;
        let (slot, token) = discover::find_token(&ctx, &uri, &module)?;
        let pool = SessionPool::new(ctx, slot, pin, self.max_sessions, Backoff::new(self.retry));
        let r = discover::resolve(&uri, &token, &pool, self.alg, had_pin)?;
        let kek = Pkcs11Kek {
            inner: Arc::new(Inner {
                kek_id: r.kek_id,
                alg: r.alg,
                token,
                module,
                uri,
                object_type: r.object_type,
                wrap_path: r.wrap_path,
                unwrap_path: r.unwrap_path,
                wrapped_len: r.wrapped_len,
                handles: Mutex::new(Some(r.handles)),
                pool,
            }),
        };
        if self.probe {
            kek.inner.probe()?;
        }
        Ok(kek)
    }

    /// [`build`](Self::build) on a blocking thread.
    pub async fn build_async(self) -> crate::Result<Pkcs11Kek> {
        blocking(move || self.build()).await
    }
}

/// A key-encryption key in a PKCS#11 token. See the [module
/// documentation](self).
///
/// Cheap to clone (an `Arc`); `Debug` shows the key id, algorithm, token,
/// module and paths, never the PIN.
#[derive(Clone)]
pub struct Pkcs11Kek {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Pkcs11Kek")
            .field("kek_id", &i.kek_id)
            .field("alg", &i.alg)
            .field("token", &i.token)
            .field("module", &i.module)
            .field("wrap_path", &i.wrap_path)
            .field("unwrap_path", &i.unwrap_path)
            .field("pool", &i.pool)
            .finish()
    }
}

impl Pkcs11Kek {
    /// Starts building a KEK for `uri` (an RFC 7512 PKCS#11 URI; parsed and
    /// checked by [`Pkcs11KekBuilder::build`]).
    pub fn builder(uri: impl Into<String>) -> Pkcs11KekBuilder {
        Pkcs11KekBuilder {
            uri: uri.into(),
            module: None,
            pin: None,
            alg: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            probe: true,
            retry: RetryConfig::default(),
        }
    }

    /// The URI as configured.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.inner.uri
    }

    /// The label of the token holding the key.
    pub fn token_label(&self) -> &str {
        &self.inner.token
    }

    /// How wraps reach the token; `None` if this key cannot wrap (an RSA
    /// private key without a matching public key object).
    pub fn wrap_path(&self) -> Option<Pkcs11Path> {
        self.inner.wrap_path
    }

    /// How unwraps reach the token; `None` if this key cannot unwrap (an
    /// RSA public key).
    pub fn unwrap_path(&self) -> Option<Pkcs11Path> {
        self.inner.unwrap_path
    }

    /// The most sessions this KEK opens.
    pub fn max_sessions(&self) -> usize {
        self.inner.pool.max_sessions()
    }
}

#[async_trait]
impl KeyEncryptionKey for Pkcs11Kek {
    fn key_id(&self) -> &str {
        &self.inner.kek_id
    }

    fn algorithm(&self) -> WrapAlgorithm {
        self.inner.alg
    }

    /// The token: `pkcs11:token=<label>` (the key id up to the object).
    fn key_container(&self) -> Option<String> {
        let id = &self.inner.kek_id;
        Some(id.split(';').next().unwrap_or(id).to_string())
    }

    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        self.inner.alg.check_material_len(material.len())?;
        let inner = Arc::clone(&self.inner);
        let bytes = Zeroizing::new(material.expose_secret_bytes().to_vec());
        blocking(move || inner.wrap_blocking(&bytes)).await
    }

    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let inner = Arc::clone(&self.inner);
        let wrapped = wrapped.to_vec();
        blocking(move || inner.unwrap_blocking(&wrapped)).await
    }
}

/// Runs `f` on tokio's blocking pool, or inline outside a runtime.
async fn blocking<T, F>(f: F) -> crate::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> crate::Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt.spawn_blocking(f).await.map_err(|e| {
            Error::from(KekError::new(
                BACKEND,
                KekErrorKind::Other,
                if e.is_panic() {
                    "the PKCS#11 worker thread panicked"
                } else {
                    "the PKCS#11 call was cancelled"
                },
            ))
        })?,
        Err(_) => f(),
    }
}

fn pin_given(pin: &Option<Pin>) -> bool {
    pin.is_some() || std::env::var_os(PIN_ENV).is_some_and(|p| !p.is_empty())
}

fn misconfigured(message: String) -> Error {
    KekError::new(BACKEND, KekErrorKind::Misconfigured, message).into()
}

struct Inner {
    kek_id: String,
    alg: WrapAlgorithm,
    token: String,
    module: PathBuf,
    uri: Pkcs11Uri,
    /// The class of the object the URI names.
    object_type: Pkcs11ObjectType,
    wrap_path: Option<Pkcs11Path>,
    unwrap_path: Option<Pkcs11Path>,
    /// Length of a wrapped key, for the unwrap-only probe.
    wrapped_len: usize,
    handles: Mutex<Option<Handles>>,
    pool: SessionPool,
}

impl Inner {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            uri: &self.kek_id,
            token: &self.token,
            alg: self.alg,
        }
    }

    fn map(&self, e: CkError, stage: Stage) -> Error {
        errors::map(e, stage, &self.ctx())
    }

    fn unwrap_failed(&self) -> Error {
        Error::UnwrapFailed {
            kek_id: self.kek_id.clone(),
        }
    }

    fn cached_handles(&self) -> Option<Handles> {
        *self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_handles(&self, h: Option<Handles>) {
        *self.handles.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    /// Looks the key objects up again (after a stale handle).
    fn find_handles(&self, s: &Session) -> crate::Result<Handles> {
        let find =
            |ty| discover::find_objects(s, &self.uri, ty).map_err(|e| self.map(e, Stage::FindKey));
        let primary = find(self.object_type)?;
        let Some(&main) = primary.first().filter(|_| primary.len() == 1) else {
            return Err(KekError::new(
                BACKEND,
                KekErrorKind::NotFound,
                format!(
                    "key `{}` is no longer found on token `{}`",
                    self.kek_id, self.token
                ),
            )
            .into());
        };
        Ok(match self.object_type {
            Pkcs11ObjectType::Private => {
                let public = find(Pkcs11ObjectType::Public)?;
                Handles {
                    wrap: (public.len() == 1).then(|| public[0]),
                    unwrap: Some(main),
                }
            }
            Pkcs11ObjectType::Public => Handles {
                wrap: Some(main),
                unwrap: None,
            },
            _ => Handles {
                wrap: Some(main),
                unwrap: Some(main),
            },
        })
    }

    /// Runs `op` on a pooled session with the key handles, retrying once
    /// after a stale handle, a lost login or a dead session.
    fn run<T>(
        &self,
        stage: Stage,
        mut op: impl FnMut(&mut PooledSession<'_>, Handles) -> Result<T, CkError>,
    ) -> crate::Result<T> {
        let mut retried = false;
        loop {
            let mut s = self.pool.get().map_err(|e| self.map(e, Stage::Session))?;
            let h = match self.cached_handles() {
                Some(h) => h,
                None => {
                    let h = self.find_handles(&s)?;
                    self.set_handles(Some(h));
                    h
                }
            };
            let e = match op(&mut s, h) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if errors::session_is_broken(&e) {
                s.discard();
            }
            if !retried {
                retried = true;
                if errors::is_stale_handle(&e) {
                    self.set_handles(None);
                    continue;
                }
                if errors::is_not_logged_in(&e) {
                    self.pool.login(&s).map_err(|e| self.map(e, Stage::Login))?;
                    continue;
                }
                if matches!(
                    errors::rv(&e),
                    Some(RvError::SessionHandleInvalid | RvError::SessionClosed)
                ) {
                    continue;
                }
            }
            return Err(self.map(e, stage));
        }
    }

    fn cannot(&self, what: &str, why: &str) -> Error {
        KekError::new(
            BACKEND,
            KekErrorKind::KeyUsage,
            format!(
                "key `{}` on token `{}` cannot {what}: {why}",
                self.kek_id, self.token
            ),
        )
        .into()
    }

    fn wrap_blocking(&self, dek: &[u8]) -> crate::Result<WrappedKey> {
        let Some(path) = self.wrap_path else {
            return Err(self.cannot(
                "wrap",
                "no public key object with the same label/id, or the key lacks CKA_ENCRYPT and CKA_WRAP",
            ));
        };
        if self.alg == WrapAlgorithm::A256Kwp
            && path == Pkcs11Path::KeyObject
            && !dek.len().is_multiple_of(8)
        {
            // C_WrapKey wraps a key object, and tokens may pad its value to
            // a multiple of 8 bytes first (SoftHSM2 2.6 does): the unwrap
            // would then return another, longer key.
            return Err(Error::InvalidKey(format!(
                "A256KWP through C_WrapKey on token `{}` takes a multiple of 8 bytes, not {}",
                self.token,
                dek.len()
            )));
        }
        let wrapped = self.run(Stage::Wrap, |s, h| {
            let key = h.wrap.ok_or(CkError::Pkcs11(
                RvError::KeyHandleInvalid,
                Function::WrapKey,
            ))?;
            let mech = mechanism(self.alg);
            match path {
                Pkcs11Path::Cipher => s.encrypt(&mech, key, dek),
                Pkcs11Path::KeyObject => wrap_via_object(s, &mech, key, dek),
            }
        })?;
        if wrapped.is_empty() || wrapped.len() > 1024 {
            return Err(KekError::new(
                BACKEND,
                KekErrorKind::Other,
                format!(
                    "token `{}` returned a {}-byte wrapped key for `{}`",
                    self.token,
                    wrapped.len(),
                    self.kek_id
                ),
            )
            .into());
        }
        Ok(WrappedKey {
            alg: self.alg,
            kek_id: self.kek_id.clone(),
            wrapped,
        })
    }

    fn unwrap_blocking(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let Some(path) = self.unwrap_path else {
            return Err(self.cannot(
                "unwrap",
                "it is only the public part of an RSA key, or lacks CKA_DECRYPT and CKA_UNWRAP",
            ));
        };
        if wrapped.is_empty() || wrapped.len() > 1024 {
            return Err(self.unwrap_failed());
        }
        let clear = self.run(Stage::Unwrap, |s, h| {
            let key = h.unwrap.ok_or(CkError::Pkcs11(
                RvError::KeyHandleInvalid,
                Function::UnwrapKey,
            ))?;
            let mech = mechanism(self.alg);
            match path {
                Pkcs11Path::Cipher => s.decrypt(&mech, key, wrapped).map(Zeroizing::new),
                Pkcs11Path::KeyObject => unwrap_via_object(s, &mech, key, wrapped),
            }
        })?;
        // A length outside 16..=64 is not key material we wrapped.
        KeyMaterial::from_bytes(&clear).map_err(|_| self.unwrap_failed())
    }

    /// Proves the key works: wrap and unwrap a throwaway all-zero key, or,
    /// for an unwrap-only key, check that garbage is refused as a bad
    /// wrapped key (not as a refused mechanism or missing permission).
    fn probe(&self) -> crate::Result<()> {
        let zero = [0u8; DATA_KEY_LEN];
        if self.wrap_path.is_some() {
            let w = self.wrap_blocking(&zero)?;
            if self.unwrap_path.is_some() {
                let back = self.unwrap_blocking(&w.wrapped)?;
                if back.expose_secret_bytes() != &zero[..] {
                    return Err(KekError::new(
                        BACKEND,
                        KekErrorKind::Misconfigured,
                        format!(
                            "probe of `{}` on token `{}`: unwrap did not return the wrapped key",
                            self.kek_id, self.token
                        ),
                    )
                    .into());
                }
            }
        } else if self.unwrap_path.is_some() {
            match self.unwrap_blocking(&vec![0u8; self.wrapped_len]) {
                Ok(_) | Err(Error::UnwrapFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The mechanism for `alg`. OAEP uses an empty label (`pSourceData` NULL,
/// length 0).
fn mechanism(alg: WrapAlgorithm) -> Mechanism<'static> {
    let oaep =
        |hash, mgf| Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()));
    match alg {
        WrapAlgorithm::A256Kw => Mechanism::AesKeyWrap,
        WrapAlgorithm::A256Kwp => Mechanism::AesKeyWrapPad,
        WrapAlgorithm::RsaOaep256 => oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        WrapAlgorithm::RsaOaep => oaep(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
    }
}

/// The template of a transient data-key object: a session-only generic
/// secret that can do nothing but be (un)wrapped. An unwrapped one is
/// readable (`CKA_SENSITIVE=false`) so its value can be read once.
fn transient_key_template(readable: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(!readable),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ]
}

fn wrap_via_object(
    s: &mut PooledSession<'_>,
    mech: &Mechanism<'_>,
    key: ObjectHandle,
    dek: &[u8],
) -> Result<Vec<u8>, CkError> {
    let mut template = transient_key_template(false);
    template.push(Attribute::Value(dek.to_vec()));
    let created = s.create_object(&template);
    for a in &mut template {
        if let Attribute::Value(v) = a {
            v.zeroize();
        }
    }
    let object = created?;
    let wrapped = s.wrap_key(mech, key, object);
    if s.destroy_object(object).is_err() {
        s.discard();
    }
    wrapped
}

fn unwrap_via_object(
    s: &mut PooledSession<'_>,
    mech: &Mechanism<'_>,
    key: ObjectHandle,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CkError> {
    let object = s.unwrap_key(mech, key, wrapped, &transient_key_template(true))?;
    let read = s.get_attributes(object, &[AttributeType::Value]);
    if s.destroy_object(object).is_err() {
        s.discard();
    }
    let mut clear = Zeroizing::new(Vec::new());
    for a in read?.iter_mut() {
        if let Attribute::Value(v) = a {
            std::mem::swap(&mut *clear, v);
        }
    }
    if clear.is_empty() {
        // The token would not show the value of the key it created.
        return Err(CkError::Pkcs11(
            RvError::AttributeSensitive,
            Function::GetAttributeValue,
        ));
    }
    Ok(clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_match_algorithms() {
        assert_eq!(
            mechanism(WrapAlgorithm::A256Kw).mechanism_type(),
            MechanismType::AES_KEY_WRAP
        );
        assert_eq!(
            mechanism(WrapAlgorithm::A256Kwp).mechanism_type(),
            MechanismType::AES_KEY_WRAP_PAD
        );
        assert_eq!(
            mechanism(WrapAlgorithm::RsaOaep).mechanism_type(),
            MechanismType::RSA_PKCS_OAEP
        );
        assert_eq!(
            mechanism(WrapAlgorithm::RsaOaep256).mechanism_type(),
            MechanismType::RSA_PKCS_OAEP
        );
    }

    #[test]
    fn builder_debug_hides_pin_and_raw_uri() {
        let b = Pkcs11Kek::builder("pkcs11:token=t;object=o?pin-value=hunter2").pin("s3cr3t-pin");
        let d = format!("{b:?}");
        assert!(!d.contains("hunter2") && !d.contains("s3cr3t"), "{d}");
        assert!(d.contains("REDACTED"), "{d}");
        let e = b.build().unwrap_err().to_string();
        assert!(!e.contains("hunter2") && !e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn no_module_is_misconfigured() {
        if std::env::var_os(MODULE_ENV).is_some() {
            return; // the environment supplies one
        }
        match Pkcs11Kek::builder("pkcs11:token=t;object=o").build() {
            Err(Error::Kek(e)) => {
                assert_eq!(e.kind(), KekErrorKind::Misconfigured);
                assert!(e.to_string().contains(MODULE_ENV), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unloadable_module_is_misconfigured() {
        let e = Pkcs11Kek::builder("pkcs11:token=t;object=o")
            .module("/nonexistent/libnope.so")
            .build()
            .unwrap_err();
        match e {
            Error::Kek(k) => {
                assert_eq!(k.kind(), KekErrorKind::Misconfigured);
                assert!(k.to_string().contains("/nonexistent/libnope.so"), "{k}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_template_has_no_usage() {
        let t = transient_key_template(true);
        assert!(t.iter().any(|a| matches!(a, Attribute::Token(false))));
        assert!(t.iter().any(|a| matches!(a, Attribute::Sensitive(false))));
        for a in &t {
            match a {
                Attribute::Encrypt(b)
                | Attribute::Decrypt(b)
                | Attribute::Sign(b)
                | Attribute::Verify(b)
                | Attribute::Wrap(b)
                | Attribute::Unwrap(b)
                | Attribute::Derive(b) => assert!(!b),
                _ => {}
            }
        }
        assert!(transient_key_template(false)
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(true))));
    }
}
