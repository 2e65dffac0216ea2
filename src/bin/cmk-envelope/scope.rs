//! `scope`: operators manage encryption scopes without writing code —
//! create, show, rotate the CMK or the scope key, destroy — and
//! `encrypt` / `decrypt` seal and open objects under them.
//!
//! `STORE` is a directory (a file store, records `<dir>/<scope-id>.json`)
//! or, with feature `blob`, an Azure Blob container URL
//! (`https://ACCOUNT.blob.core.windows.net/CONTAINER`, records
//! `<scope-id>.json`; authenticated with the credential chain, or with a
//! SAS in the URL's query).
//!
//! Remote keys and stores (Key Vault, PKCS#11, Blob) run their calls on one
//! process-wide tokio runtime, so that the scope's refreshes work from any
//! thread, including the parallel engine's.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use clap::{Args, Subcommand};
use cmk_envelope::scope::{
    CachePolicy, Cmk, EncryptionScope, Etag, FsScopeStore, ScopeMode, ScopeRecord, ScopeResolver,
    ScopeStore,
};
use cmk_envelope::{
    Error, Header, KeyEncryptionKey, KeyLease, KeyMaterial, KeyResolver, WrapAlgorithm, WrappedKey,
};
use serde::Serialize;

use crate::error::CliError;
use crate::keys;

/// `cmk-envelope scope …`
#[derive(Subcommand, Debug)]
pub(crate) enum ScopeCommand {
    /// Create a scope: draw its first scope key and store it wrapped by
    /// the CMK (refused if the scope exists). Prints the record like `show`.
    Create(CreateArgs),
    /// Print a scope's record as JSON: mode, key container, versions and
    /// the keys that wrap them, the current version. Never key bytes; no
    /// key is called.
    Show(StoreScope),
    /// Re-wrap every scope key version under another CMK of the same key
    /// container (vault, token, key directory). Objects are not touched.
    RotateCmk(RotateCmkArgs),
    /// Add a scope key version and make it current (new objects are sealed
    /// under it; older versions stay readable).
    RotateKey(RotateKeyArgs),
    /// Crypto-shred a scope: delete its record. Every object sealed under
    /// it becomes unreadable, here at once and in other processes within
    /// their cache TTL.
    Destroy(DestroyArgs),
}

#[derive(Args, Debug)]
pub(crate) struct StoreScope {
    /// The scope store: a directory, or an Azure Blob container URL
    /// (feature `blob`).
    #[arg(long, value_name = "STORE")]
    store: String,
    /// The scope id (1 to 128 characters of [A-Za-z0-9._-]).
    #[arg(long, value_name = "ID")]
    scope: String,
}

#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    at: StoreScope,
    /// The key that wraps the scope key (as --kek: a JWK file, a Key Vault
    /// key URL, a PKCS#11 URI).
    #[arg(long, value_name = "KEK")]
    cmk: String,
    /// The key is held by the service, not the customer (a scope never
    /// switches between the two).
    #[arg(long)]
    service_managed: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RotateCmkArgs {
    #[command(flatten)]
    at: StoreScope,
    /// The key that wraps the scope now.
    #[arg(long, value_name = "OLD")]
    cmk: String,
    /// The key to wrap it with, in the same key container.
    #[arg(long, value_name = "NEW")]
    new_cmk: String,
}

#[derive(Args, Debug)]
pub(crate) struct RotateKeyArgs {
    #[command(flatten)]
    at: StoreScope,
    /// The key that wraps the scope.
    #[arg(long, value_name = "KEK")]
    cmk: String,
}

#[derive(Args, Debug)]
pub(crate) struct DestroyArgs {
    #[command(flatten)]
    at: StoreScope,
    /// The scope id again, to confirm.
    #[arg(long, value_name = "ID")]
    confirm: String,
}

pub(crate) fn run(cmd: &ScopeCommand) -> Result<(), CliError> {
    match cmd {
        ScopeCommand::Create(a) => {
            let store = open_store(&a.at.store, true)?;
            let (kek, resolver) = load_cmk(&a.cmk)?;
            let cmk = if a.service_managed {
                Cmk::ServiceManaged(kek)
            } else {
                Cmk::CustomerManaged(kek)
            };
            let scope = on_runtime(EncryptionScope::create_with_resolver(
                store,
                &a.at.scope,
                cmk,
                resolver,
                CachePolicy::default(),
            ))?;
            print_record(&scope.record())
        }
        ScopeCommand::Show(a) => {
            let store = open_store(&a.store, false)?;
            let (record, _) = read_record(&store, &a.scope)?;
            print_record(&record)
        }
        ScopeCommand::RotateCmk(a) => {
            let scope = open_scope(&a.at.store, &a.at.scope, &a.cmk)?;
            let (new, _) = load_cmk(&a.new_cmk)?;
            let mode = scope.record().mode;
            let rotated = on_runtime(scope.rotate_cmk(with_mode(mode, new)))?;
            print_record(&rotated.record())
        }
        ScopeCommand::RotateKey(a) => {
            let scope = open_scope(&a.at.store, &a.at.scope, &a.cmk)?;
            on_runtime(scope.rotate_scope_key())?;
            print_record(&scope.record())
        }
        ScopeCommand::Destroy(a) => {
            let store = open_store(&a.at.store, false)?;
            on_runtime(EncryptionScope::destroy_record(
                store.as_ref(),
                &a.at.scope,
                &a.confirm,
            ))
        }
    }
}

/// The process-wide runtime of remote key and store calls.
fn runtime() -> Result<&'static tokio::runtime::Runtime, CliError> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cmk-envelope-io")
            .enable_all()
            .build()
            .ok()
    })
    .as_ref()
    .ok_or_else(|| CliError::msg("cannot start the async runtime"))
}

/// Runs a scope operation to completion on the runtime.
pub(crate) fn on_runtime<T>(
    f: impl Future<Output = cmk_envelope::Result<T>>,
) -> Result<T, CliError> {
    Ok(runtime()?.block_on(f)?)
}

/// Runs `f` as a task of the runtime (so it finds its reactor whichever
/// thread or executor awaits it).
async fn spawned<T: Send + 'static>(
    f: impl Future<Output = cmk_envelope::Result<T>> + Send + 'static,
) -> cmk_envelope::Result<T> {
    let rt = runtime().map_err(|_| Error::Io(std::io::Error::other("no async runtime")))?;
    rt.spawn(f).await.map_err(|_| {
        Error::Io(std::io::Error::other(
            "an async key or store call was cancelled",
        ))
    })?
}

/// Opens STORE: a directory (created only by `scope create`), or a Blob
/// container URL.
fn open_store(arg: &str, create: bool) -> Result<Arc<dyn ScopeStore>, CliError> {
    if arg.starts_with("https://") || arg.starts_with("http://") {
        return blob_store(arg);
    }
    let dir = Path::new(arg);
    if !create && !dir.is_dir() {
        return Err(CliError::msg(format!(
            "scope store {arg}: no such directory"
        )));
    }
    Ok(Arc::new(FsScopeStore::new(dir).map_err(|e| {
        CliError::with_context(&format!("scope store {arg}"), e)
    })?))
}

#[cfg(feature = "blob")]
fn blob_store(arg: &str) -> Result<Arc<dyn ScopeStore>, CliError> {
    // A SAS in the query authenticates; otherwise the credential chain.
    let credential = if arg.contains('?') {
        None
    } else {
        Some(cmk_envelope::kek::azure::CredentialChain::from_env()
            as Arc<dyn azure_core::credentials::TokenCredential>)
    };
    let store = cmk_envelope::blob::BlobScopeStore::new(arg, credential, "", None)?;
    Ok(Arc::new(OnRuntimeStore(Arc::new(store))))
}

#[cfg(not(feature = "blob"))]
fn blob_store(_: &str) -> Result<Arc<dyn ScopeStore>, CliError> {
    Err(CliError::msg(
        "--store https://…: Azure Blob scope stores are not supported in this build (enable feature `blob`)",
    ))
}

/// A `--cmk`: the key, and the resolver the scope follows it through.
type CmkArg = (Arc<dyn KeyEncryptionKey>, Option<Arc<dyn KeyResolver>>);

/// Loads `--cmk`, with the resolver a scope follows it through: for a Key
/// Vault key, every version of that key (so that a key named without a
/// version rotates automatically).
fn load_cmk(arg: &str) -> Result<CmkArg, CliError> {
    let kek = keys::load_kek(arg)?;
    if !(arg.starts_with("https://") || arg.starts_with("pkcs11:")) {
        return Ok((kek, None));
    }
    let resolver =
        keys::key_versions(arg)?.map(|r| Arc::new(OnRuntimeResolver(r)) as Arc<dyn KeyResolver>);
    Ok((Arc::new(OnRuntimeKek(kek)), resolver))
}

fn with_mode(mode: ScopeMode, kek: Arc<dyn KeyEncryptionKey>) -> Cmk {
    match mode {
        ScopeMode::ServiceManaged => Cmk::ServiceManaged(kek),
        ScopeMode::CustomerManaged => Cmk::CustomerManaged(kek),
    }
}

fn read_record(
    store: &Arc<dyn ScopeStore>,
    scope_id: &str,
) -> Result<(ScopeRecord, Etag), CliError> {
    let got = on_runtime(store.get(scope_id))?;
    let (bytes, etag) = got.ok_or_else(|| {
        CliError::from(Error::ScopeNotFound {
            scope_id: scope_id.to_owned(),
        })
    })?;
    Ok((ScopeRecord::from_json(&bytes)?, etag))
}

/// Opens scope `scope_id` of STORE with `cmk`, in the mode its record
/// states (the operator names the key; the record says who holds it).
pub(crate) fn open_scope(
    store_arg: &str,
    scope_id: &str,
    cmk_arg: &str,
) -> Result<EncryptionScope, CliError> {
    let store = open_store(store_arg, false)?;
    let (record, _) = read_record(&store, scope_id)?;
    let (kek, resolver) = load_cmk(cmk_arg)?;
    on_runtime(EncryptionScope::open_with_resolver(
        store,
        scope_id,
        with_mode(record.mode, kek),
        resolver,
        CachePolicy::default(),
    ))
}

/// The resolvers of every scope a header names (`scope:<id>/<version>`),
/// opened from STORE with `cmk`.
pub(crate) fn header_scopes(
    header: &Header,
    store_arg: &str,
    cmk_arg: &str,
) -> Result<Vec<ScopeResolver>, CliError> {
    let mut ids: Vec<&str> = header
        .keys()
        .iter()
        .filter_map(|k| k.kek_id.strip_prefix("scope:"))
        .filter_map(|rest| rest.rsplit_once('/').map(|(id, _)| id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(CliError::msg(
            "--store: the header names no scope key (decrypt it with --kek)",
        ));
    }
    ids.into_iter()
        .map(|id| open_scope(store_arg, id, cmk_arg).map(|s| s.resolver()))
        .collect()
}

#[derive(Serialize)]
struct RecordJson<'a> {
    scope_id: &'a str,
    mode: String,
    key_container: &'a str,
    /// Whether the versions hold labelled scope key material (records of
    /// format v2); `false` for records written before labelling.
    labelled: bool,
    current: u32,
    versions: Vec<VersionJson<'a>>,
}

#[derive(Serialize)]
struct VersionJson<'a> {
    version: u32,
    alg: &'static str,
    kek_id: &'a str,
    wrapped_len: usize,
}

fn print_record(r: &ScopeRecord) -> Result<(), CliError> {
    let json = RecordJson {
        scope_id: &r.scope_id,
        mode: r.mode.to_string(),
        key_container: &r.cmk_container,
        labelled: r.labelled,
        current: r.current,
        versions: r
            .versions
            .iter()
            .map(|v| VersionJson {
                version: v.version,
                alg: v.wrapped.alg.jose_name(),
                kek_id: &v.wrapped.kek_id,
                wrapped_len: v.wrapped.wrapped.len(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| CliError::msg(format!("cannot format the record as JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A scope store whose calls run on the runtime.
#[derive(Debug)]
#[cfg_attr(not(feature = "blob"), allow(dead_code))]
struct OnRuntimeStore(Arc<dyn ScopeStore>);

#[async_trait]
impl ScopeStore for OnRuntimeStore {
    async fn get(&self, scope_id: &str) -> cmk_envelope::Result<Option<(Vec<u8>, Etag)>> {
        let (s, id) = (self.0.clone(), scope_id.to_owned());
        spawned(async move { s.get(&id).await }).await
    }

    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> cmk_envelope::Result<Etag> {
        let (s, id, r, e) = (
            self.0.clone(),
            scope_id.to_owned(),
            record.to_vec(),
            expected.cloned(),
        );
        spawned(async move { s.put(&id, &r, e.as_ref()).await }).await
    }

    async fn delete(&self, scope_id: &str, expected: &Etag) -> cmk_envelope::Result<()> {
        let (s, id, e) = (self.0.clone(), scope_id.to_owned(), expected.clone());
        spawned(async move { s.delete(&id, &e).await }).await
    }
}

/// A key whose calls run on the runtime.
#[derive(Debug)]
struct OnRuntimeKek(Arc<dyn KeyEncryptionKey>);

#[async_trait]
impl KeyEncryptionKey for OnRuntimeKek {
    fn key_id(&self) -> &str {
        self.0.key_id()
    }

    fn algorithm(&self) -> WrapAlgorithm {
        self.0.algorithm()
    }

    fn key_container(&self) -> Option<String> {
        self.0.key_container()
    }

    async fn wrap_key_material(&self, m: &KeyMaterial) -> cmk_envelope::Result<WrappedKey> {
        let (k, m) = (
            self.0.clone(),
            KeyMaterial::from_bytes(m.expose_secret_bytes())?,
        );
        spawned(async move { k.wrap_key_material(&m).await }).await
    }

    async fn unwrap_key_material(&self, wrapped: &[u8]) -> cmk_envelope::Result<KeyMaterial> {
        let (k, w) = (self.0.clone(), wrapped.to_vec());
        spawned(async move { k.unwrap_key_material(&w).await }).await
    }

    fn lease(&self, kek_id: &str) -> Option<KeyLease> {
        self.0.lease(kek_id)
    }

    async fn current_version(&self) -> cmk_envelope::Result<Option<String>> {
        let k = self.0.clone();
        spawned(async move { k.current_version().await }).await
    }
}

/// A resolver whose keys run their calls on the runtime.
struct OnRuntimeResolver(Arc<dyn KeyResolver>);

impl KeyResolver for OnRuntimeResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        let k = self.0.resolve(kek_id)?;
        Some(Arc::new(OnRuntimeKek(k)))
    }
}
