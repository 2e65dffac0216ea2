//! An in-process HTTPS server speaking the Key Vault keys REST API (and an
//! Entra ID token endpoint), for tests only.
//!
//! * TLS with a certificate for `myvault.vault.azure.net`,
//!   `myhsm.managedhsm.azure.net` and `login.microsoftonline.com`, issued by
//!   a test CA the client is told to trust; the client reaches it on
//!   loopback by pinning those names to the server's address, so the SDK's
//!   challenge-domain check stays on.
//! * An unauthenticated request gets the 401 challenge
//!   `Bearer authorization="https://login.microsoftonline.com/TENANT", resource="https://vault.azure.net"`
//!   (`https://managedhsm.azure.net` for the HSM host).
//! * `GET /keys/{name}[/{version}]`, `POST /keys/{name}/{version}/wrapkey`
//!   and `/unwrapkey`, with `api-version`, base64url values and `kid`.
//!   The server does the real RSA-OAEP(-256) and A256KW operations.
//! * Key lifecycle: new versions of a key ([`KeyVaultServer::new_version`],
//!   as Key Vault's rotation makes them; a `GET` without version returns
//!   the latest), and disabled versions ([`KeyVaultServer::disable`]).
//! * Injectable faults: 429 with `Retry-After`, 503, dropped connections,
//!   slow responses, and any status (403, 404…), either queued one by one,
//!   applied to every request, or drawn at random with fixed probabilities.
//!
//! It speaks HTTP/1.1 only, with keep-alive, and is written for clarity
//! rather than speed.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub const VAULT_HOST: &str = "myvault.vault.azure.net";
pub const HSM_HOST: &str = "myhsm.managedhsm.azure.net";
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The client secret the token endpoint accepts.
pub const CLIENT_SECRET: &str = "test-client-secret-DO-NOT-LEAK-5up3r";

/// One injected fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with `Retry-After: secs` (whole seconds, as a string) and/or
    /// `x-ms-retry-after-ms`.
    Throttle {
        retry_after: Option<String>,
        retry_after_ms: Option<u64>,
    },
    /// 503 Service Unavailable.
    Unavailable,
    /// Close the connection without answering.
    Drop,
    /// Answer normally, but only after this delay.
    Slow(Duration),
    /// Answer with this status and a Key Vault error body.
    Status(u16),
    /// Answer with this status and an error body whose `code` and
    /// `message` are this text (a hostile or broken service).
    StatusWithCode(u16, String),
}

/// Faults drawn at random (per Key Vault request), with fixed seed.
#[derive(Debug, Clone, Default)]
pub struct RandomFaults {
    pub p_throttle: f64,
    pub p_unavailable: f64,
    pub p_slow: f64,
    pub p_drop: f64,
    pub slow: Duration,
    pub retry_after_ms: u64,
}

/// What the key can be, and how the vault is set up.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub host: &'static str,
    pub name: String,
    /// `RSA`, `RSA-HSM`, `oct-HSM`, `EC`.
    pub kty: &'static str,
    pub rsa_bits: usize,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub key_ops: Vec<&'static str>,
    pub recovery_level: &'static str,
}

impl KeySpec {
    pub fn rsa(name: &str) -> KeySpec {
        KeySpec {
            host: VAULT_HOST,
            name: name.into(),
            kty: "RSA",
            rsa_bits: 2048,
            enabled: true,
            nbf: None,
            exp: None,
            key_ops: vec!["encrypt", "decrypt", "wrapKey", "unwrapKey"],
            recovery_level: "Recoverable",
        }
    }

    pub fn hsm_aes(name: &str) -> KeySpec {
        KeySpec {
            host: HSM_HOST,
            kty: "oct-HSM",
            ..KeySpec::rsa(name)
        }
    }
}

enum Material {
    Rsa {
        private: OaepPrivateDecryptingKey,
        public: OaepPublicEncryptingKey,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Aes([u8; 32]),
    None,
}

struct KeyVersion {
    version: String,
    spec: KeySpec,
    material: Material,
}

/// Counters, for assertions.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub challenges: AtomicU64,
    pub gets: AtomicU64,
    pub wraps: AtomicU64,
    pub unwraps: AtomicU64,
    pub faults: AtomicU64,
    pub tokens_issued: AtomicU64,
}

#[derive(Default)]
struct FaultPlan {
    queue: VecDeque<Fault>,
    always: Option<Fault>,
    random: Option<RandomFaults>,
    rng: u64,
}

struct State {
    keys: Mutex<HashMap<(String, String), Vec<KeyVersion>>>,
    faults: Mutex<FaultPlan>,
    /// Operations refused with 403 as if the caller lacked the permission.
    denied: Mutex<HashSet<&'static str>>,
    token: String,
    counters: Counters,
    next_version: AtomicU64,
}

/// A running server. Dropping it stops accepting connections.
pub struct KeyVaultServer {
    pub addr: SocketAddr,
    /// The test CA certificate, PEM.
    pub ca_pem: String,
    /// The bearer token the server accepts (what a test credential returns).
    pub token: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeyVaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cmk-envelope test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec![
        VAULT_HOST.to_string(),
        HSM_HOST.to_string(),
        LOGIN_HOST.to_string(),
    ])
    .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), ca.pem())
}

impl KeyVaultServer {
    /// Starts a server on 127.0.0.1 (random port) in the current runtime.
    pub async fn start() -> KeyVaultServer {
        let (config, ca_pem) = tls_config();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tok = [0u8; 24];
        aws_lc_rs::rand::fill(&mut tok).unwrap();
        let token = format!("eyJ0ZXN0LXRva2Vu.{}", B64.encode(tok));
        let state = Arc::new(State {
            keys: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultPlan {
                rng: 0x5EED_1234,
                ..Default::default()
            }),
            denied: Mutex::new(HashSet::new()),
            token: token.clone(),
            counters: Counters::default(),
            next_version: AtomicU64::new(1),
        });
        let acceptor = TlsAcceptor::from(config);
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_connection(tls, st).await;
                    }
                });
            }
        });
        KeyVaultServer {
            addr,
            ca_pem,
            token,
            state,
            task,
        }
    }

    /// Adds a new version of a key (creating the key if needed) and returns
    /// the version id (32 lowercase hex digits, like Key Vault's).
    pub fn add_key(&self, spec: KeySpec) -> String {
        let n = self.state.next_version.fetch_add(1, Ordering::Relaxed);
        let mut salt = [0u8; 12];
        aws_lc_rs::rand::fill(&mut salt).unwrap();
        let version = format!(
            "{n:08x}{}",
            salt.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let material = match spec.kty {
            "RSA" | "RSA-HSM" => {
                let size = match spec.rsa_bits {
                    1024 => KeySize::Rsa2048, // aws-lc-rs cannot make smaller keys; see `n` below
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => KeySize::Rsa2048,
                };
                let private = PrivateDecryptingKey::generate(size).unwrap();
                let pkcs8 = private.as_der().unwrap();
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
                use aws_lc_rs::signature::KeyPair as _;
                let mut modulus = pair
                    .public_key()
                    .modulus()
                    .big_endian_without_leading_zero()
                    .to_vec();
                if spec.rsa_bits == 1024 {
                    modulus.truncate(128); // advertise a 1024-bit key to the client
                }
                let e = pair
                    .public_key()
                    .exponent()
                    .big_endian_without_leading_zero()
                    .to_vec();
                let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
                Material::Rsa {
                    private: OaepPrivateDecryptingKey::new(private).unwrap(),
                    public,
                    n: modulus,
                    e,
                }
            }
            "oct-HSM" | "oct" => {
                let mut k = [0u8; 32];
                aws_lc_rs::rand::fill(&mut k).unwrap();
                Material::Aes(k)
            }
            _ => Material::None,
        };
        let key = (spec.host.to_string(), spec.name.to_ascii_lowercase());
        self.state
            .keys
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(KeyVersion {
                version: version.clone(),
                spec,
                material,
            });
        version
    }

    /// Creates a new version of an existing key, with the attributes of
    /// its latest version (what Key Vault's "rotate" does); it becomes the
    /// version a request without version gets. Returns the version id.
    pub fn new_version(&self, host: &'static str, name: &str) -> String {
        let spec = {
            let keys = self.state.keys.lock().unwrap();
            let versions = keys
                .get(&(host.to_string(), name.to_ascii_lowercase()))
                .expect("new_version of a key that does not exist");
            versions.last().unwrap().spec.clone()
        };
        self.add_key(spec)
    }

    /// Disables one version: wrap and unwrap with it are refused (403), as
    /// Key Vault refuses them for a disabled key.
    pub fn disable(&self, host: &str, name: &str, version: &str) {
        self.update(host, name, version, |s| s.enabled = false);
    }

    /// Changes the attributes of one version.
    pub fn update(&self, host: &str, name: &str, version: &str, f: impl FnOnce(&mut KeySpec)) {
        let mut keys = self.state.keys.lock().unwrap();
        let versions = keys
            .get_mut(&(host.to_string(), name.to_ascii_lowercase()))
            .unwrap();
        let v = versions.iter_mut().find(|v| v.version == version).unwrap();
        f(&mut v.spec);
    }

    /// The versioned URL of a key version.
    pub fn kid(host: &str, name: &str, version: &str) -> String {
        format!("https://{host}/keys/{name}/{version}")
    }

    /// Queues faults for the next Key Vault requests, one each.
    pub fn queue_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.faults.lock().unwrap().queue.extend(faults);
    }

    /// Applies `fault` to every Key Vault request until cleared.
    pub fn set_always(&self, fault: Option<Fault>) {
        self.state.faults.lock().unwrap().always = fault;
    }

    /// Draws faults at random for every Key Vault request until cleared.
    pub fn set_random(&self, random: Option<RandomFaults>) {
        self.state.faults.lock().unwrap().random = random;
    }

    /// Refuses an operation (`get`, `wrapKey`, `unwrapKey`) with 403.
    pub fn deny(&self, op: &'static str) {
        self.state.denied.lock().unwrap().insert(op);
    }

    /// Allows every operation again.
    pub fn allow_all(&self) {
        self.state.denied.lock().unwrap().clear();
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }
}

struct HttpRequest {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, body: Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![],
        body: body.to_string().into_bytes(),
    }
}

fn kv_error(status: u16, code: &str, message: &str) -> HttpResponse {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(HttpRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

async fn serve_connection<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    st: Arc<State>,
) {
    let mut r = BufReader::new(stream);
    while let Some(req) = read_request(&mut r).await {
        st.counters.requests.fetch_add(1, Ordering::Relaxed);
        let host = req
            .headers
            .get("host")
            .map(|h| h.split(':').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let resp = if host == LOGIN_HOST {
            token_endpoint(&st, &req)
        } else {
            match pick_fault(&st) {
                Some(Fault::Drop) => return,
                Some(Fault::Slow(d)) => {
                    tokio::time::sleep(d).await;
                    key_vault(&st, &host, &req)
                }
                Some(Fault::Throttle {
                    retry_after,
                    retry_after_ms,
                }) => {
                    let mut resp = kv_error(429, "Throttled", "Too many requests");
                    if let Some(s) = retry_after {
                        resp.headers.push(("Retry-After".into(), s));
                    }
                    if let Some(ms) = retry_after_ms {
                        resp.headers
                            .push(("x-ms-retry-after-ms".into(), ms.to_string()));
                    }
                    resp
                }
                Some(Fault::Unavailable) => {
                    kv_error(503, "ServiceUnavailable", "The service is unavailable")
                }
                Some(Fault::Status(s)) => kv_error(s, "Injected", "Injected failure"),
                Some(Fault::StatusWithCode(s, code)) => kv_error(s, &code, &code),
                None => key_vault(&st, &host, &req),
            }
        };
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json; charset=utf-8\r\n",
            resp.status
        );
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", resp.body.len()));
        // One write: one TLS record, no Nagle stall between head and body.
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&resp.body);
        let w = r.get_mut();
        if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
}

fn pick_fault(st: &State) -> Option<Fault> {
    let mut plan = st.faults.lock().unwrap();
    let fault = if let Some(f) = plan.queue.pop_front() {
        Some(f)
    } else if let Some(f) = plan.always.clone() {
        Some(f)
    } else if let Some(rf) = plan.random.clone() {
        // xorshift64*
        plan.rng ^= plan.rng >> 12;
        plan.rng ^= plan.rng << 25;
        plan.rng ^= plan.rng >> 27;
        let x = (plan.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = rf.p_throttle;
        if x < edge {
            Some(Fault::Throttle {
                retry_after: None,
                retry_after_ms: Some(rf.retry_after_ms),
            })
        } else if x < {
            edge += rf.p_unavailable;
            edge
        } {
            Some(Fault::Unavailable)
        } else if x < {
            edge += rf.p_slow;
            edge
        } {
            Some(Fault::Slow(rf.slow))
        } else if x < edge + rf.p_drop {
            Some(Fault::Drop)
        } else {
            None
        }
    } else {
        None
    };
    if fault.is_some() {
        st.counters.faults.fetch_add(1, Ordering::Relaxed);
    }
    fault
}

fn token_endpoint(st: &State, req: &HttpRequest) -> HttpResponse {
    let form: HashMap<String, String> = String::from_utf8_lossy(&req.body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let path_ok = req.method == "POST" && req.path == format!("/{TENANT}/oauth2/v2.0/token");
    if !path_ok || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return reply(
            401,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    st.counters.tokens_issued.fetch_add(1, Ordering::Relaxed);
    reply(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": st.token}),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn key_json(host: &str, name: &str, v: &KeyVersion) -> Value {
    let mut key = json!({
        "kid": KeyVaultServer::kid(host, name, &v.version),
        "kty": v.spec.kty,
        "key_ops": v.spec.key_ops,
    });
    if let Material::Rsa { n, e, .. } = &v.material {
        key["n"] = json!(B64.encode(n));
        key["e"] = json!(B64.encode(e));
    }
    let mut attributes = json!({
        "enabled": v.spec.enabled,
        "created": now() - 3600,
        "updated": now() - 3600,
        "recoveryLevel": v.spec.recovery_level,
        "recoverableDays": 90,
    });
    if let Some(nbf) = v.spec.nbf {
        attributes["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.spec.exp {
        attributes["exp"] = json!(exp);
    }
    json!({"key": key, "attributes": attributes})
}

fn key_vault(st: &State, host: &str, req: &HttpRequest) -> HttpResponse {
    if host != VAULT_HOST && host != HSM_HOST {
        return kv_error(400, "BadHost", "unknown host");
    }
    let auth = req
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    if auth != format!("Bearer {}", st.token) {
        st.counters.challenges.fetch_add(1, Ordering::Relaxed);
        let resource = if host == HSM_HOST {
            "https://managedhsm.azure.net"
        } else {
            "https://vault.azure.net"
        };
        let mut resp = kv_error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        resp.headers.push((
            "WWW-Authenticate".into(),
            format!(
                r#"Bearer authorization="https://{LOGIN_HOST}/{TENANT}", resource="{resource}""#
            ),
        ));
        return resp;
    }
    if !req
        .query
        .split('&')
        .any(|kv| kv.starts_with("api-version=") && kv.len() > "api-version=".len())
    {
        return kv_error(400, "BadParameter", "api-version is missing");
    }
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let (name, version, op) = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["keys", name]) | ("GET", ["keys", name, ""]) => (*name, None, "get"),
        ("GET", ["keys", name, version]) => (*name, Some(*version), "get"),
        ("POST", ["keys", name, "wrapkey"]) => (*name, None, "wrapKey"),
        ("POST", ["keys", name, version, "wrapkey"]) => {
            (*name, Some(*version).filter(|v| !v.is_empty()), "wrapKey")
        }
        ("POST", ["keys", name, version, "unwrapkey"]) => {
            (*name, Some(*version).filter(|v| !v.is_empty()), "unwrapKey")
        }
        _ => return kv_error(404, "NotFound", "no such route"),
    };
    if st.denied.lock().unwrap().contains(op) {
        return kv_error(
            403,
            "Forbidden",
            &format!("Caller is not authorized to perform action on resource. Action: 'keys/{op}/action'"),
        );
    }
    let keys = st.keys.lock().unwrap();
    let Some(versions) = keys.get(&(host.to_string(), name.to_ascii_lowercase())) else {
        return kv_error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name} was not found in this key vault."),
        );
    };
    let found = match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|k| k.version.eq_ignore_ascii_case(v)),
    };
    let Some(kv) = found else {
        return kv_error(
            404,
            "KeyNotFound",
            &format!(
                "A key with (name/id) {name}/{} was not found.",
                version.unwrap_or("")
            ),
        );
    };
    let kid = KeyVaultServer::kid(host, &versions[0].spec.name, &kv.version);
    if op == "get" {
        st.counters.gets.fetch_add(1, Ordering::Relaxed);
        return reply(200, key_json(host, &versions[0].spec.name, kv));
    }
    // wrapKey / unwrapKey
    if !kv.spec.enabled {
        return kv_error(
            403,
            "Forbidden",
            &format!("Operation {op} is not allowed on a disabled key."),
        );
    }
    if kv.spec.exp.is_some_and(|e| e <= now()) || kv.spec.nbf.is_some_and(|n| n > now()) {
        return kv_error(
            403,
            "Forbidden",
            &format!("Operation {op} is not allowed on an expired or not yet valid key."),
        );
    }
    if !kv.spec.key_ops.contains(&op) {
        return kv_error(
            403,
            "Forbidden",
            &format!("Operation {op} is not permitted on this key."),
        );
    }
    let Ok(params) = serde_json::from_slice::<Value>(&req.body) else {
        return kv_error(400, "BadParameter", "Request body is not valid JSON.");
    };
    let alg = params["alg"].as_str().unwrap_or_default().to_string();
    let Some(value) = params["value"]
        .as_str()
        .and_then(|v| B64.decode(v.trim_end_matches('=')).ok())
    else {
        return kv_error(
            400,
            "BadParameter",
            "Property value is missing or not base64url.",
        );
    };
    let result = match (&kv.material, alg.as_str(), op) {
        (Material::Rsa { public, .. }, "RSA-OAEP" | "RSA-OAEP-256", "wrapKey") => {
            st.counters.wraps.fetch_add(1, Ordering::Relaxed);
            let mut out = vec![0u8; public.ciphertext_size()];
            public
                .encrypt(oaep(&alg), &value, &mut out, None)
                .map(|c| c.to_vec())
                .ok()
        }
        (Material::Rsa { private, .. }, "RSA-OAEP" | "RSA-OAEP-256", "unwrapKey") => {
            st.counters.unwraps.fetch_add(1, Ordering::Relaxed);
            let mut out = vec![0u8; private.min_output_size()];
            private
                .decrypt(oaep(&alg), &value, &mut out, None)
                .map(|p| p.to_vec())
                .ok()
        }
        (Material::Aes(k), "A256KW", "wrapKey") => {
            st.counters.wraps.fetch_add(1, Ordering::Relaxed);
            let mut out = vec![0u8; value.len() + 8];
            AesKek::new(&AES_256, k)
                .unwrap()
                .wrap(&value, &mut out)
                .map(|c| c.to_vec())
                .ok()
        }
        (Material::Aes(k), "A256KW", "unwrapKey") => {
            st.counters.unwraps.fetch_add(1, Ordering::Relaxed);
            let mut out = vec![0u8; value.len()];
            AesKek::new(&AES_256, k)
                .unwrap()
                .unwrap(&value, &mut out)
                .map(|p| p.to_vec())
                .ok()
        }
        _ => {
            return kv_error(
                400,
                "BadParameter",
                &format!("Algorithm {alg} is not supported for this key."),
            )
        }
    };
    match result {
        Some(r) => reply(200, json!({"kid": kid, "value": B64.encode(r)})),
        None => kv_error(
            400,
            "BadParameter",
            "Error decrypting or encrypting the value.",
        ),
    }
}

fn oaep(alg: &str) -> &'static OaepAlgorithm {
    if alg == "RSA-OAEP" {
        &OAEP_SHA1_MGF1SHA1
    } else {
        &OAEP_SHA256_MGF1SHA256
    }
}
