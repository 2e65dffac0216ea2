//! Cosmos DB support for the `cosmos` tests: the test server's endpoint
//! (scripts/cosmosdb.sh), clients of the official Rust SDK configured for
//! it, and fresh databases and containers.
//!
//! What the client needs for this server, and why (each is a setting of
//! the official SDK, not a change of its code):
//! * HTTP/1.1: the SDK offers only HTTP/2 by default; the server speaks
//!   HTTP/1.1 (`ConnectionPoolOptions::with_is_http2_allowed(false)`).
//! * Text JSON: the SDK writes items in Cosmos binary JSON by default,
//!   which the server cannot parse (`BinaryEncodingOptions` disabled).
//! * TLS stays validated: the server's certificate is issued by a test CA
//!   that scripts/cosmosdb.sh adds to `SSL_CERT_FILE`, where the SDK's
//!   TLS stack finds its trust anchors.
//! * Key authentication with the server's account key (`COSMOS_KEY`, made
//!   by scripts/cosmosdb.sh for each start; the server checks every
//!   request's signature): account keys are for the emulator and tests.

#![allow(dead_code)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition};
use azure_data_cosmos::options::{BinaryEncodingOptions, ConnectionPoolOptions, Region};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosCredential, CosmosRuntime,
    RoutingStrategy,
};
use base64::Engine as _;
use cmk_envelope::cosmos::ClientEncryptionKeys;
use tokio::sync::OnceCell;

/// `COSMOS_ENDPOINT` (`https://127.0.0.1:PORT/`). Panics with what to do
/// when it (or the test CA) is missing: these tests fail, never skip,
/// without the server.
pub fn endpoint() -> String {
    let hint = "these tests need the Cosmos DB test server. Run them through scripts/test.sh, \
                or `scripts/cosmosdb.sh cargo test --features cosmos --test cosmos`";
    let endpoint = match std::env::var("COSMOS_ENDPOINT") {
        Ok(u) if !u.trim().is_empty() => u.trim().to_owned(),
        _ => panic!("COSMOS_ENDPOINT is not set: {hint}"),
    };
    match std::env::var("SSL_CERT_FILE") {
        Ok(f) if std::path::Path::new(&f).is_file() => {}
        _ => panic!("SSL_CERT_FILE (the test CA bundle) is not set: {hint}"),
    }
    endpoint
}

/// The server's account key, `COSMOS_KEY` (base64).
pub fn account_key() -> String {
    match std::env::var("COSMOS_KEY") {
        Ok(k) if !k.trim().is_empty() => k.trim().to_owned(),
        _ => panic!(
            "COSMOS_KEY is not set: run these tests through scripts/test.sh or scripts/cosmosdb.sh"
        ),
    }
}

/// A random account key (base64 of 64 random bytes, the shape of a real
/// one), which the server refuses.
pub fn random_key() -> String {
    let mut k = [0u8; 64];
    aws_lc_rs::rand::fill(&mut k).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// The runtime every test client shares: HTTP/2 off (see the module docs).
pub async fn runtime() -> CosmosRuntime {
    static RUNTIME: OnceCell<CosmosRuntime> = OnceCell::const_new();
    RUNTIME
        .get_or_init(|| async {
            let pool = ConnectionPoolOptions::builder()
                .with_is_http2_allowed(false)
                .build()
                .expect("connection pool options");
            CosmosRuntime::builder()
                .with_connection_pool(pool)
                .build()
                .await
                .expect("Cosmos runtime")
        })
        .await
        .clone()
}

/// A client of the test server authenticated with `key`, or the SDK's
/// error (building a client reads the account's properties).
pub async fn try_client_with_key(key: &str) -> azure_data_cosmos::Result<CosmosClient> {
    let endpoint: AccountEndpoint = endpoint().parse().expect("COSMOS_ENDPOINT");
    try_client(AccountReference::with_authentication_key(
        endpoint,
        Secret::new(key.to_owned()),
    ))
    .await
}

/// A client of the account `account` (the test server's endpoint, or
/// another server of the tests' own), configured for it (see the module
/// docs).
pub async fn try_client(account: AccountReference) -> azure_data_cosmos::Result<CosmosClient> {
    CosmosClient::builder()
        .with_runtime(runtime().await)
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
        .build(
            account,
            RoutingStrategy::ProximityTo(Region::SOUTH_CENTRAL_US),
        )
        .await
}

/// A client of the test server with the Entra ID credential `credential`.
pub async fn client_with_credential(credential: Arc<dyn TokenCredential>) -> CosmosClient {
    let endpoint: AccountEndpoint = endpoint().parse().expect("COSMOS_ENDPOINT");
    try_client(AccountReference::with_credential(endpoint, credential))
        .await
        .unwrap_or_else(|e| panic!("Cosmos client with a token credential: {e}"))
}

/// The one Entra ID token the test server accepts (`COSMOS_AAD_TOKEN`).
pub fn aad_token() -> String {
    match std::env::var("COSMOS_AAD_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => panic!("COSMOS_AAD_TOKEN is not set: run these tests through scripts/test.sh or scripts/cosmosdb.sh"),
    }
}

/// An Entra ID credential for the tests: hands out `token` for the
/// Cosmos DB data-plane scope only (the one the SDKs ask for) and fails
/// for any other, counting the requests.
#[derive(Debug)]
pub struct TestTokenCredential {
    token: String,
    /// Tokens handed out.
    pub issued: AtomicUsize,
}

impl TestTokenCredential {
    /// Hands out the server's token ([`aad_token`]).
    pub fn new() -> Arc<TestTokenCredential> {
        Self::with_token(aad_token())
    }

    /// Hands out `token`.
    pub fn with_token(token: String) -> Arc<TestTokenCredential> {
        Arc::new(TestTokenCredential {
            token,
            issued: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for TestTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes != [cmk_envelope::cosmos::COSMOS_TOKEN_SCOPE] {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("the test credential has no token for scopes {scopes:?}"),
            ));
        }
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(AccessToken::new(
            Secret::new(self.token.clone()),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// The client encryption keys of database `db` on the test server, with
/// its account key.
pub fn cek_keys(db: &str) -> ClientEncryptionKeys {
    ClientEncryptionKeys::new(
        &endpoint(),
        db,
        CosmosCredential::from(Secret::new(account_key())),
    )
    .expect("client encryption keys client")
}

/// A client of the test server authenticated with `key`.
pub async fn client_with_key(key: &str) -> CosmosClient {
    try_client_with_key(key)
        .await
        .unwrap_or_else(|e| panic!("Cosmos client for the test server: {e}"))
}

/// A client of the test server with its account key.
pub async fn client() -> CosmosClient {
    client_with_key(&account_key()).await
}

/// A fresh name (`prefix-` and 12 hex digits).
pub fn unique(prefix: &str) -> String {
    let mut rnd = [0u8; 6];
    aws_lc_rs::rand::fill(&mut rnd).unwrap();
    format!("{prefix}-{}", hex::encode(rnd))
}

/// Creates a fresh database.
pub async fn database(client: &CosmosClient, prefix: &str) -> DatabaseClient {
    let name = unique(prefix);
    client
        .create_database(&name, None)
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    client.database_client(&name)
}

/// Creates container `name` partitioned on `pk_path` in `db`, with extra
/// container properties (JSON, for example a `clientEncryptionPolicy`)
/// merged in, and resolves its client.
pub async fn container_with(
    db: &DatabaseClient,
    name: &str,
    pk_path: &str,
    extra: serde_json::Value,
) -> ContainerClient {
    let mut props = serde_json::to_value(ContainerProperties::new(
        name.to_owned(),
        PartitionKeyDefinition::new(vec![Cow::Owned(pk_path.to_owned())]),
    ))
    .unwrap();
    if let serde_json::Value::Object(extra) = extra {
        props.as_object_mut().unwrap().extend(extra);
    }
    let props: ContainerProperties = serde_json::from_value(props).unwrap();
    db.create_container(props, None)
        .await
        .unwrap_or_else(|e| panic!("create container: {e}"));
    db.container_client(name, None)
        .await
        .unwrap_or_else(|e| panic!("resolve container: {e}"))
}

/// A fresh database with one container partitioned on `pk_path`.
pub async fn container(prefix: &str, pk_path: &str) -> ContainerClient {
    let c = client().await;
    let db = database(&c, prefix).await;
    container_with(&db, "c", pk_path, serde_json::Value::Null).await
}

/// The `authorization` header value for a request `verb` on `path` (the
/// URL path, such as `/dbs/db1/clientencryptionkeys`) at `date` (the
/// `x-ms-date` value), signed with account key `key` as Cosmos DB's
/// master-key authorization defines it: HMAC-SHA256 over
/// `lower(verb) \n lower(resource type) \n resource link \n lower(date) \n \n`,
/// where a path of type/id pairs signs its last type and the whole path,
/// and a path ending in a type signs that type and the path before it.
/// Test-only, like the Azurite SAS signer: the crate's API takes no keys.
pub fn master_key_authorization(key: &str, verb: &str, path: &str, date: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (resource_type, link) = if parts.len().is_multiple_of(2) {
        let t = if parts.is_empty() {
            ""
        } else {
            parts[parts.len() - 2]
        };
        (t, parts.join("/"))
    } else {
        (parts[parts.len() - 1], parts[..parts.len() - 1].join("/"))
    };
    let text = format!(
        "{}\n{}\n{link}\n{}\n\n",
        verb.to_lowercase(),
        resource_type.to_lowercase(),
        date.to_lowercase()
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let sig = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref());
    let value = format!("type=master&ver=1.0&sig={sig}");
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A signed REST request to the test server (for what the SDK has no API
/// for, such as client encryption keys): `path` below the endpoint, without
/// a leading slash. It trusts the test CA through `SSL_CERT_FILE`, as the
/// SDK does.
pub fn rest(method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let date = azure_core::time::to_rfc7231(&azure_core::time::OffsetDateTime::now_utc());
    let auth =
        master_key_authorization(&account_key(), method.as_str(), &format!("/{path}"), &date);
    reqwest::Client::new()
        .request(method, format!("{}{path}", endpoint()))
        .header("x-ms-date", date)
        .header("x-ms-version", "2020-07-15")
        .header("authorization", auth)
}

/// A Cosmos DB server of a test's own: tests/fixtures/cosmosdb_server.js
/// with the run's certificate, CA and account key (from
/// scripts/cosmosdb.sh), persisting every change to a journal
/// (`--state`), so that a test can kill it (SIGKILL) and start it again on
/// the same port and journal. Killed when dropped.
pub struct OwnServer {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl OwnServer {
    /// Starts a server on `port` (0: any free port) with the journal
    /// `state`; returns once it answers.
    pub fn start(state: &std::path::Path, port: u16) -> OwnServer {
        use std::io::BufRead;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run these tests through scripts/test.sh or scripts/cosmosdb.sh")
            })
        };
        let mut child = std::process::Command::new("node")
            .arg(var("COSMOSDB_SERVER_JS"))
            .args(["--cert", &var("COSMOSDB_SERVER_CERT")])
            .args(["--key", &var("COSMOSDB_SERVER_KEY")])
            .args(["--ca", &var("COSMOS_CA_CERT")])
            .args(["--port", &port.to_string()])
            .arg("--state")
            .arg(state)
            .env("NODE_PATH", var("COSMOSDB_NODE_PATH"))
            .env("COSMOS_KEY", account_key())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start node (the Cosmos DB test server)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("cosmosdb-server listens on https://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the test server did not start: {line:?}"));
        OwnServer { child, port }
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    /// A client of this server with the account key.
    pub async fn client(&self) -> CosmosClient {
        let endpoint: AccountEndpoint = self.endpoint().parse().unwrap();
        try_client(AccountReference::with_authentication_key(
            endpoint,
            Secret::new(account_key()),
        ))
        .await
        .unwrap_or_else(|e| panic!("Cosmos client for the test's own server: {e}"))
    }

    /// Kills it with SIGKILL (no chance to flush or close anything).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}
