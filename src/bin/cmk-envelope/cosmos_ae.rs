//! `cosmos-ae`: encrypt and decrypt Cosmos DB items in the SDKs' client-side
//! encryption format ("Always Encrypted"), and create and rewrap client
//! encryption keys (feature `cosmos-ae`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use cmk_envelope::cosmos_ae::{
    CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, ItemCipher, VaultRule,
};
use cmk_envelope::scope::CachePolicy;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input::Source;
use crate::output::{Output, MODE_PRIVATE, MODE_PUBLIC};
use crate::{block_on, keys};

/// The largest JSON input read (an item is at most 2 MB in Cosmos DB; a
/// file may hold an array of them).
const MAX_INPUT: u64 = 256 * 1024 * 1024;

#[derive(Subcommand, Debug)]
pub(crate) enum CosmosAeCommand {
    /// Encrypt the properties the policy names in ITEM (default stdin): one
    /// item, or an array of items.
    #[command(long_about = ENCRYPT_LONG_ABOUT)]
    Encrypt(ItemArgs),
    /// Decrypt the properties the policy names in ITEM (default stdin).
    #[command(long_about = DECRYPT_LONG_ABOUT)]
    Decrypt(ItemArgs),
    /// Create a client encryption key: a fresh root key wrapped by --kek.
    #[command(long_about = NEW_CEK_LONG_ABOUT)]
    NewCek(NewCekArgs),
    /// Rewrap a client encryption key under --new-kek (same root key: every
    /// item stays readable).
    #[command(long_about = REWRAP_LONG_ABOUT)]
    RewrapCek(RewrapCekArgs),
}

const ENCRYPT_LONG_ABOUT: &str = "Encrypt Cosmos DB items the way the official .NET, Java and JavaScript SDKs do (client-side encryption, \"Always Encrypted\").\n\n\
ITEM (default stdin) holds one item (a JSON object) or an array of items. Every top-level property the policy names is encrypted in place (objects and arrays keep their shape, each leaf encrypted; null stays null); a property an item lacks is skipped.\n\n\
--policy FILE is the container's `clientEncryptionPolicy` object, or the container's properties (then its `partitionKey.paths` are checked too). --cek FILE (repeatable) are the database's client encryption keys the policy names, as stored (`id`, `encryptionAlgorithm`, `keyWrapMetadata`, `wrappedDataEncryptionKey`). --kek (repeatable) are the key-encryption keys allowed to unwrap them: a JWK file (its `kid` must equal the key's `keyWrapMetadata.value`), a Key Vault key URL (used with RSA-OAEP unless it ends in #ALG; every version of the key is allowed unless the URL names one) or a PKCS#11 URI.\n\n\
The output (-o OUT, default stdout) is written atomically, members of objects in sorted order.";

const DECRYPT_LONG_ABOUT: &str = "Decrypt Cosmos DB items encrypted by the official SDKs (or by `cosmos-ae encrypt`), with the same options as `cosmos-ae encrypt`.\n\n\
All or nothing: every value of every item is authenticated before anything is written; on any failure nothing is written (a file OUT is not created) and the error names the item and the JSON Pointer of the value.\n\n\
The format authenticates each value under its client encryption key only: a value moved to another property under the same key, or copied from another item, decrypts. See the crate's `cosmos_ae` documentation.";

const NEW_CEK_LONG_ABOUT: &str = "Create a Cosmos DB client encryption key: a fresh 256-bit root key, wrapped by --kek, written as the key resource JSON (to store with the SDK's createClientEncryptionKey equivalent, or the REST API).\n\n\
The SDKs read keys wrapped with RSA-OAEP only: use a Key Vault or Managed HSM RSA key (a key URL means RSA-OAEP here unless it ends in #ALG), or an RSA JWK whose alg is RSA-OAEP. A key wrapped otherwise (A256KW, for example by a Managed HSM oct-HSM key) is readable only by this tool and crate; a warning says so.";

const REWRAP_LONG_ABOUT: &str = "Rewrap a Cosmos DB client encryption key (CEK, default stdin) under --new-kek: the root key is unwrapped with --kek (an allow-list; its id must be the key's keyWrapMetadata.value) and wrapped again. Items need no change. Every other member of the resource is kept.\n\n\
The new key must be in the same key container (Key Vault or Managed HSM, PKCS#11 token, or directory of JWK files) as the current one; --allow-other-vault lifts that rule.";

#[derive(Args, Debug)]
pub(crate) struct ItemArgs {
    /// A key-encryption key allowed to unwrap the CEKs (JWK file, Key Vault
    /// URL or PKCS#11 URI); repeatable.
    #[arg(long = "kek", value_name = "KEK", required = true)]
    keks: Vec<String>,
    /// A client encryption key resource (JSON); repeatable.
    #[arg(long = "cek", value_name = "CEK.json", required = true)]
    ceks: Vec<PathBuf>,
    /// The container's client encryption policy, or its properties (JSON).
    #[arg(long, value_name = "POLICY.json")]
    policy: PathBuf,
    /// Output file (default stdout). Written atomically.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite an existing OUT.
    #[arg(long)]
    force: bool,
    /// The item, or an array of items (default stdin; `-` is stdin).
    #[arg(value_name = "ITEM.json")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct NewCekArgs {
    /// The key-encryption key that wraps the root key.
    #[arg(long = "kek", value_name = "KEK")]
    kek: String,
    /// The client encryption key's id (the policy's clientEncryptionKeyId).
    #[arg(long, value_name = "ID")]
    id: String,
    /// Output file (default stdout). Written atomically.
    #[arg(short = 'o', long = "output", value_name = "CEK.json")]
    output: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RewrapCekArgs {
    /// A key allowed to unwrap the current root key; repeatable.
    #[arg(long = "kek", value_name = "OLD", required = true)]
    keks: Vec<String>,
    /// The key-encryption key to wrap it with.
    #[arg(long = "new-kek", value_name = "NEW")]
    new_kek: String,
    /// Allow --new-kek to be in another key container than the current key.
    #[arg(long)]
    allow_other_vault: bool,
    /// Output file (default stdout). Written atomically.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite an existing OUT.
    #[arg(long)]
    force: bool,
    /// The key resource (default stdin; `-` is stdin).
    #[arg(value_name = "CEK.json")]
    input: Option<PathBuf>,
}

/// A `--kek` argument as this command means it: a Key Vault or Managed HSM
/// key URL without `#ALG` is used with RSA-OAEP, the one algorithm the
/// SDKs wrap client encryption keys with (elsewhere the tool defaults to
/// RSA-OAEP-256).
fn kek_arg(arg: &str) -> String {
    if arg.starts_with("https://") && !arg.contains('#') {
        format!("{arg}#RSA-OAEP")
    } else {
        arg.to_owned()
    }
}

fn kek_args(args: &[String]) -> Vec<String> {
    args.iter().map(|a| kek_arg(a)).collect()
}

pub(crate) fn run(cmd: &CosmosAeCommand) -> Result<(), CliError> {
    match cmd {
        CosmosAeCommand::Encrypt(a) => items(a, Direction::Encrypt),
        CosmosAeCommand::Decrypt(a) => items(a, Direction::Decrypt),
        CosmosAeCommand::NewCek(a) => new_cek(a),
        CosmosAeCommand::RewrapCek(a) => rewrap_cek(a),
    }
}

/// Reads a whole input (at most [`MAX_INPUT`] bytes) into a buffer that is
/// wiped afterwards (a decrypted item may pass through it again).
fn read_all(src: &Source) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let (r, _) = src.open()?;
    let mut buf = Zeroizing::new(Vec::new());
    r.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(&src.read_context(), e))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(CliError::msg(format!(
            "{}: larger than {MAX_INPUT} bytes",
            src.name()
        )));
    }
    Ok(buf)
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::io(&format!("cannot read {}", path.display()), e))
}

fn read_cek(src: &Source) -> Result<ClientEncryptionKey, CliError> {
    let bytes = read_all(src)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::msg(format!("{}: not UTF-8 text", src.name())))?;
    ClientEncryptionKey::parse(text.trim()).map_err(|e| CliError::with_context(&src.name(), e))
}

/// The policy file: a `clientEncryptionPolicy`, or container properties
/// (which have one).
fn read_policy(path: &Path) -> Result<ClientEncryptionPolicy, CliError> {
    let text = read_text(path)?;
    let is_container = serde_json::from_str::<Value>(&text)
        .map(|v| v.get("clientEncryptionPolicy").is_some())
        .unwrap_or(false);
    let policy = if is_container {
        ClientEncryptionPolicy::from_container(&text)
    } else {
        ClientEncryptionPolicy::parse(&text)
    };
    policy.map_err(|e| CliError::with_context(&format!("policy {}", path.display()), e))
}

/// Writes `json` and a newline to `out` and commits it (a file is renamed
/// into place only now).
fn write_json(mut out: Output, json: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let ctx = out.write_context();
    out.write_all(json)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| CliError::io(&ctx, e))?;
    out.commit()
}

#[derive(Clone, Copy)]
enum Direction {
    Encrypt,
    Decrypt,
}

impl Direction {
    async fn apply(self, cipher: &ItemCipher, item: &mut Value) -> cmk_envelope::Result<()> {
        match self {
            Direction::Encrypt => cipher.encrypt_item(item).await,
            Direction::Decrypt => cipher.decrypt_item(item).await,
        }
    }
}

fn items(args: &ItemArgs, dir: Direction) -> Result<(), CliError> {
    let resolver = keys::load_resolver(&kek_args(&args.keks))?;
    let keyring = CekKeyring::new(Arc::new(resolver), CachePolicy::default());
    for path in &args.ceks {
        keyring.insert(read_cek(&Source::File(path.clone()))?);
    }
    let cipher = ItemCipher::new(read_policy(&args.policy)?, Arc::new(keyring));
    let src = Source::from_arg(args.input.as_deref());
    let bytes = read_all(&src)?;
    let mut doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::msg(format!("{}: not valid JSON: {e}", src.name())))?;
    drop(bytes);
    let mode = match dir {
        Direction::Encrypt => MODE_PUBLIC,
        Direction::Decrypt => MODE_PRIVATE,
    };
    // An existing OUT is refused before any key is contacted; a file OUT
    // appears only once every item is done.
    let out = Output::create(args.output.as_deref(), mode, args.force)?;
    block_on(async {
        match &mut doc {
            Value::Array(list) => {
                for (i, item) in list.iter_mut().enumerate() {
                    dir.apply(&cipher, item)
                        .await
                        .map_err(|e| CliError::msg(format!("item {i}: {}", CliError::from(e))))?;
                }
                Ok(())
            }
            item => dir.apply(&cipher, item).await.map_err(CliError::from),
        }
    })??;
    let json = Zeroizing::new(serde_json::to_vec(&doc).expect("a JSON value serializes"));
    write_json(out, &json)
}

fn new_cek(args: &NewCekArgs) -> Result<(), CliError> {
    let kek = keys::load_kek(&kek_arg(&args.kek))?;
    let out = Output::create(args.output.as_deref(), MODE_PUBLIC, args.force)?;
    let cek = block_on(ClientEncryptionKey::create(&args.id, kek.as_ref()))?
        .map_err(|e| CliError::with_context("cannot create the client encryption key", e))?;
    if cek.key_wrap_metadata().algorithm() != cmk_envelope::WrapAlgorithm::RsaOaep {
        eprintln!(
            "cmk-envelope: warning: the key is wrapped with {}; the Cosmos DB SDKs read only RSA-OAEP, so only cmk-envelope can use it",
            cek.key_wrap_metadata().algorithm()
        );
    }
    write_json(out, cek.to_json().as_bytes())
}

fn rewrap_cek(args: &RewrapCekArgs) -> Result<(), CliError> {
    let resolver = keys::load_resolver(&kek_args(&args.keks))?;
    let new_kek = keys::load_kek(&kek_arg(&args.new_kek))?;
    let cek = read_cek(&Source::from_arg(args.input.as_deref()))?;
    let out = Output::create(args.output.as_deref(), MODE_PUBLIC, args.force)?;
    let rule = if args.allow_other_vault {
        VaultRule::AllowOtherVault
    } else {
        VaultRule::SameVaultOnly
    };
    let new = block_on(cek.rewrap(&resolver, new_kek.as_ref(), rule))?
        .map_err(|e| CliError::with_context("cannot rewrap the client encryption key", e))?;
    write_json(out, new.to_json().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_vault_urls_default_to_rsa_oaep() {
        let url = "https://v.vault.azure.net/keys/k/1";
        assert_eq!(kek_arg(url), format!("{url}#RSA-OAEP"));
        assert_eq!(kek_arg(&format!("{url}#A256KW")), format!("{url}#A256KW"));
        assert_eq!(kek_arg("k.jwk"), "k.jwk");
        assert_eq!(
            kek_arg("pkcs11:token=t;object=o"),
            "pkcs11:token=t;object=o"
        );
    }
}
