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
//! * Key authentication, with a random key per client: account keys are
//!   for the emulator and tests (the server accepts any key).

#![allow(dead_code)]

use std::borrow::Cow;
use std::sync::Arc;

use azure_core::credentials::Secret;
use azure_data_cosmos::clients::{ContainerClient, DatabaseClient};
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition};
use azure_data_cosmos::options::{BinaryEncodingOptions, ConnectionPoolOptions, Region};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntime, RoutingStrategy,
};
use base64::Engine as _;
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

/// A random account key (base64 of 64 random bytes, the shape of a real
/// one): the tests check it never appears in output.
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

/// A client of the test server authenticated with `key`.
pub async fn client_with_key(key: &str) -> CosmosClient {
    let endpoint: AccountEndpoint = endpoint().parse().expect("COSMOS_ENDPOINT");
    let account = AccountReference::with_authentication_key(endpoint, Secret::new(key.to_owned()));
    CosmosClient::builder()
        .with_runtime(runtime().await)
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
        .build(
            account,
            RoutingStrategy::ProximityTo(Region::SOUTH_CENTRAL_US),
        )
        .await
        .unwrap_or_else(|e| panic!("Cosmos client for the test server: {e}"))
}

/// A client of the test server with a fresh random key.
pub async fn client() -> CosmosClient {
    client_with_key(&random_key()).await
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

/// The shared test server's SDK client as an `Arc`, for stores that take
/// one.
pub async fn shared_client() -> Arc<CosmosClient> {
    Arc::new(client().await)
}
