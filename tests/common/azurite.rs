//! Azurite support for the `azure-blob` tests and benchmark: the emulator's
//! URL, an account SAS signed locally, containers, a recording pipeline
//! policy, and a disk-backed Azurite process a test can kill.
//!
//! The account SAS signer lives here, not in the library: production
//! authenticates with Entra ID, and a shared-key signer in the public API
//! would invite shipping account keys.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use azure_storage_blob::BlobContainerClient;
use base64::Engine as _;

/// The emulator's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its published key (documented by Microsoft for Azurite; not a secret).
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The SAS version signed (2020-12-06 or later: the string-to-sign holds
/// the encryption scope field).
const SAS_VERSION: &str = "2022-11-02";

/// `AZURITE_BLOB_STORAGE_URL` (`http://127.0.0.1:PORT`). Panics with what to
/// do when it is unset: these tests fail, never skip, without Azurite.
pub fn endpoint() -> String {
    match std::env::var("AZURITE_BLOB_STORAGE_URL") {
        Ok(u) if !u.trim().is_empty() => u.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "AZURITE_BLOB_STORAGE_URL is not set: these tests need Azurite. Run them through \
             scripts/test.sh, or `scripts/azurite.sh cargo test --features blob --test azure_blob`"
        ),
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` for a Unix time.
fn iso8601(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An account SAS query string (blob service; service, container and object
/// resources; read, add, create, write, delete, list), valid from a minute
/// ago for a day: HMAC-SHA256 with the account key over the string-to-sign
/// `account \n sp \n ss \n srt \n st \n se \n sip \n spr \n sv \n ses \n`.
pub fn account_sas() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (sp, ss, srt, spr) = ("racwdl", "b", "sco", "https,http");
    let (st, se) = (iso8601(now - 60), iso8601(now + 86_400));
    let string_to_sign =
        format!("{ACCOUNT}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n\n{spr}\n{SAS_VERSION}\n\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACCOUNT_KEY)
        .unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let tag = aws_lc_rs::hmac::sign(&key, string_to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    format!(
        "sv={SAS_VERSION}&ss={ss}&srt={srt}&sp={sp}&st={}&se={}&spr={}&sig={}",
        percent_encode(&st),
        percent_encode(&se),
        percent_encode(spr),
        percent_encode(&sig)
    )
}

/// The SAS-authenticated URL of `container` on the Azurite at `endpoint`.
pub fn container_url_at(endpoint: &str, container: &str) -> String {
    format!("{endpoint}/{ACCOUNT}/{container}?{}", account_sas())
}

/// The SAS-authenticated URL of `container` on the shared Azurite.
pub fn container_url(container: &str) -> String {
    container_url_at(&endpoint(), container)
}

/// A fresh container name (lowercase, 3–63 characters).
pub fn unique_container(prefix: &str) -> String {
    let mut rnd = [0u8; 6];
    aws_lc_rs::rand::fill(&mut rnd).unwrap();
    format!("{prefix}-{}", hex::encode(rnd))
}

/// Creates `container` at the SAS URL `url`.
pub async fn create_container(url: &str) {
    let client = BlobContainerClient::new(Url::parse(url).unwrap(), None, None).unwrap();
    client
        .create(None)
        .await
        .unwrap_or_else(|e| panic!("create container on Azurite: {}", e.kind()));
}

/// One request as the pipeline sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`, `HEAD`, …
    pub method: String,
    /// The URL path (`/devstoreaccount1/<container>/<blob>`).
    pub path: String,
    /// The URL's `comp` query parameter (`block`, `blocklist`, `metadata`).
    pub comp: Option<String>,
    /// The requested byte range (`x-ms-range` or `Range`), as `(start, end)`
    /// with `end` exclusive.
    pub range: Option<(u64, u64)>,
}

/// A per-call pipeline policy that records every request (observing the
/// real HTTP traffic), and can run a hook before a chosen request is sent.
#[derive(Default)]
pub struct Recorder {
    pub requests: Mutex<Vec<Recorded>>,
    #[allow(clippy::type_complexity)]
    hook: Mutex<
        Option<(
            String,
            Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
        )>,
    >,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

fn parse_range(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse::<u64>().ok()? + 1))
}

impl Recorder {
    /// Runs `hook` (once) just before the next request whose `comp` is
    /// `comp` is sent.
    pub fn before_next(
        &self,
        comp: &str,
        hook: impl Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        *self.hook.lock().unwrap() = Some((comp.to_owned(), Arc::new(hook)));
    }

    /// Takes the recorded requests.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

#[async_trait]
impl Policy for Recorder {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let comp = request
            .url()
            .query_pairs()
            .find(|(k, _)| k == "comp")
            .map(|(_, v)| v.into_owned());
        let headers = request.headers();
        let range = headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                "x-ms-range",
            ))
            .or_else(|| {
                headers
                    .get_optional_str(&azure_core::http::headers::HeaderName::from_static("range"))
            })
            .and_then(parse_range);
        self.requests.lock().unwrap().push(Recorded {
            method: request.method().to_string(),
            path: request.url().path().to_owned(),
            comp: comp.clone(),
            range,
        });
        let hook = {
            let mut h = self.hook.lock().unwrap();
            match h.as_ref() {
                Some((c, _)) if Some(c) == comp.as_ref() => h.take().map(|(_, f)| f),
                _ => None,
            }
        };
        if let Some(f) = hook {
            f().await;
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Container client options with `recorder` in the pipeline.
pub fn options_with(recorder: Arc<Recorder>) -> azure_storage_blob::BlobContainerClientOptions {
    let mut o = azure_storage_blob::BlobContainerClientOptions::default();
    o.client_options.per_call_policies.push(recorder);
    o
}

/// An Azurite process of this test's own, persisting to disk, that the test
/// may kill and restart.
pub struct OwnAzurite {
    child: Child,
    pub endpoint: String,
    pub location: PathBuf,
}

fn azurite_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AZURITE_BLOB_BIN") {
        return PathBuf::from(p);
    }
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".azurite/node_modules/.bin/azurite-blob");
    assert!(
        local.exists(),
        "azurite-blob not found: set AZURITE_BLOB_BIN or run scripts/azurite.sh (it installs it into .azurite/)"
    );
    local
}

impl OwnAzurite {
    /// Starts Azurite on a free port with its data in `location`.
    pub fn start(location: &Path) -> OwnAzurite {
        let mut child = Command::new(azurite_bin())
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--location"])
            .arg(location)
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .current_dir(location)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn azurite-blob");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listens on ") {
                    let _ = tx.send(line[i + "listens on ".len()..].trim().to_owned());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("azurite-blob did not report its port");
        assert!(child.try_wait().unwrap().is_none(), "azurite-blob exited");
        OwnAzurite {
            child,
            endpoint,
            location: location.to_owned(),
        }
    }

    /// Stops the process gracefully (SIGTERM; Azurite saves its state).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Kills the process (SIGKILL: no graceful shutdown).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnAzurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
