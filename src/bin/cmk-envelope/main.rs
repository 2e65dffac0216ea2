//! `cmk-envelope`: encrypt, decrypt and inspect envelopes from the command
//! line, and generate local key-encryption keys.
//!
//! This file holds the command-line definitions and the dispatch; each
//! subcommand lives in its own module.

#[cfg(feature = "azure-cse")]
mod azure_cse;
#[cfg(feature = "cosmos-ae")]
mod cosmos_ae;
mod decrypt;
mod encrypt;
mod error;
mod input;
mod inspect;
mod keys;
mod output;
mod pipe;
mod progress;
mod rewrap;
mod scope;

use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cmk_envelope::{Profile, WrapAlgorithm};

use crate::error::CliError;

/// Most `--kek` options an envelope can take (FORMAT.md: ≤ 16 wrapped keys).
pub(crate) const MAX_KEKS: usize = 16;

#[derive(Parser, Debug)]
#[command(
    name = "cmk-envelope",
    version,
    about = "Envelope encryption with customer-managed keys",
    long_about = "Envelope encryption with customer-managed keys.\n\n\
        An envelope is a header (the data key wrapped by one or more \
        key-encryption keys) followed by a committing, chunked AEAD body. \
        The header can also be kept apart from the body (detached form).\n\n\
        On failure every command exits non-zero and prints one line on stderr, \
        starting with `cmk-envelope: error:`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a local key-encryption key as a private JWK file (mode 0600).
    Keygen(KeygenArgs),
    /// Encrypt IN (default stdin) into an envelope at OUT (default stdout).
    Encrypt(EncryptArgs),
    /// Decrypt an envelope from IN (default stdin) to OUT (default stdout).
    #[command(long_about = DECRYPT_LONG_ABOUT)]
    Decrypt(DecryptArgs),
    /// Print an envelope header as JSON, without calling any key.
    #[command(
        long_about = "Print an envelope header as JSON, without calling any key.\n\n\
        IN (default stdin) may be an embedded envelope or a detached header file. \
        Prints {\"version\",\"suite\",\"profile\",\"header_len\",\"keys\":[{\"alg\",\"kid\",\"wrapped_len\"}]}."
    )]
    Inspect(InspectArgs),
    /// Re-wrap an envelope's data key under new keys, rewriting only the
    /// header, in place and atomically.
    #[command(long_about = REWRAP_LONG_ABOUT)]
    Rewrap(RewrapArgs),
    /// Azure Storage client-side encryption v2 blobs (the SDKs' format):
    /// decrypt and encrypt.
    #[cfg(feature = "azure-cse")]
    #[command(subcommand)]
    AzureCse(azure_cse::AzureCseCommand),
    /// Cosmos DB client-side encryption ("Always Encrypted", the SDKs'
    /// format): encrypt and decrypt items, create and rewrap keys.
    #[cfg(feature = "cosmos-ae")]
    #[command(subcommand)]
    CosmosAe(cosmos_ae::CosmosAeCommand),
    /// Encryption scopes (CMK → scope key → object keys): create, show,
    /// rotate-cmk, rotate-key, destroy. STORE is a directory, or an Azure
    /// Blob container URL (feature `blob`).
    #[command(subcommand)]
    Scope(scope::ScopeCommand),
}

const REWRAP_LONG_ABOUT: &str = "Re-wrap an envelope's data key under new keys, rewriting only the header, in place and atomically.\n\nThe data key is unwrapped with one of the --kek keys (an allow-list, as for decrypt) and wrapped with every --new-kek; the new header holds only the --new-kek copies. The body is not changed, so this is how a key-encryption key is rotated without re-encrypting data.\n\nFILE is an embedded envelope, rewritten with the new header. With --header H (detached form), H is rewritten and FILE, the body, is left as it is. The rewritten file replaces the original by an atomic rename and keeps its permissions; on any failure the original is unchanged.";

const DECRYPT_LONG_ABOUT: &str =
    "Decrypt an envelope from IN (default stdin) to OUT (default stdout).\n\n\
The header names the keys that wrapped the data key; only the keys given with \
--kek are ever used (an allow-list), and a key named in the header but not \
given is never contacted.\n\n\
Output to a file (-o OUT): the plaintext is written to a temporary file beside \
OUT and renamed into place only after the whole envelope has been \
authenticated, including the final chunk (which proves the length). On any \
failure nothing is left at OUT. An existing OUT is refused unless --force.\n\n\
Output to stdout (no -o): the plaintext is streamed. Each 16 KiB chunk is \
released only after its own authentication tag verified, but when a later \
chunk fails (tampering, truncation), what was already written is an incomplete \
prefix of the plaintext and the command exits non-zero. Check the exit status \
before trusting what was written to stdout.\n\n\
With --range START:END only that half-open plaintext byte range is decrypted, \
by random access: IN must then be a seekable file (not stdin). END may exceed \
the length; the range is clipped to the (authenticated) end.";

/// Key-encryption key algorithms, spelled as in JOSE (RFC 7518).
#[derive(ValueEnum, Clone, Copy, Debug)]
enum AlgArg {
    /// AES key wrap (RFC 3394), 256-bit key.
    #[value(name = "A256KW")]
    A256Kw,
    /// AES key wrap with padding (RFC 5649), 256-bit key.
    #[value(name = "A256KWP")]
    A256Kwp,
    /// RSA-OAEP with SHA-256.
    #[value(name = "RSA-OAEP-256")]
    RsaOaep256,
    /// RSA-OAEP with SHA-1 (for HSMs that offer nothing else).
    #[value(name = "RSA-OAEP")]
    RsaOaep,
}

impl From<AlgArg> for WrapAlgorithm {
    fn from(a: AlgArg) -> WrapAlgorithm {
        match a {
            AlgArg::A256Kw => WrapAlgorithm::A256Kw,
            AlgArg::A256Kwp => WrapAlgorithm::A256Kwp,
            AlgArg::RsaOaep256 => WrapAlgorithm::RsaOaep256,
            AlgArg::RsaOaep => WrapAlgorithm::RsaOaep,
        }
    }
}

/// Object profiles; part of what the body is bound to.
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
enum ProfileArg {
    /// A blob (artifacts, models).
    #[default]
    Blob,
    /// A document of a document store.
    Document,
    /// A search-index segment.
    Index,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Profile {
        match p {
            ProfileArg::Blob => Profile::Blob,
            ProfileArg::Document => Profile::Document,
            ProfileArg::Index => Profile::Index,
        }
    }
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Wrap algorithm of the new key.
    #[arg(long, value_enum)]
    alg: AlgArg,
    /// Key id recorded in envelope headers (default: a random `local-…`).
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// RSA modulus size (RSA algorithms only; default 3072).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["3072", "4096"])
        .map(|s| s.parse::<usize>().expect("a listed value")))]
    bits: Option<usize>,
    /// Where to write the private JWK (mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing FILE.
    #[arg(long)]
    force: bool,
}

/// Options shared by encrypt and decrypt.
#[derive(Args, Debug)]
struct KeyOpts {
    /// Key-encryption key: a JWK file, a Key Vault / Managed HSM key URL
    /// (`https://NAME.vault.azure.net/keys/KEY[/VERSION][#ALG]`, feature
    /// `azure`) or a PKCS#11 URI (`pkcs11:token=…;object=…[#ALG]`, feature
    /// `pkcs11`; PIN from CMK_PKCS11_PIN). Repeat for several keys (at most
    /// 16).
    #[arg(long = "kek", value_name = "FILE", required_unless_present = "store")]
    keks: Vec<String>,
    /// Encryption scope store (a directory, or an Azure Blob container URL
    /// with feature `blob`): encrypt seals under the current key of
    /// --scope; decrypt opens objects whose header names a scope key. Needs
    /// --cmk.
    #[arg(long, value_name = "STORE", requires = "cmk")]
    store: Option<String>,
    /// The key that wraps the scope(s) of --store (as --kek).
    #[arg(long, value_name = "KEK", requires = "store")]
    cmk: Option<String>,
    /// The object's identity (e.g. container/blob name); never stored, and
    /// needed again to decrypt.
    #[arg(long, value_name = "STRING")]
    context: String,
    /// Object profile; needed again to decrypt.
    #[arg(long, value_enum, default_value_t = ProfileArg::Blob)]
    profile: ProfileArg,
}

#[derive(Args, Debug)]
struct EncryptArgs {
    #[command(flatten)]
    key: KeyOpts,
    /// Seal under this scope of --store (its current scope key, no KMS
    /// call once cached); with --kek, those keys wrap the data key too.
    #[arg(long, value_name = "ID", requires = "store")]
    scope: Option<String>,
    /// Detached form: write the header to FILE and only the body to OUT.
    #[arg(long, value_name = "FILE")]
    header_out: Option<PathBuf>,
    /// Output file (default stdout). Written atomically.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "out",
        value_name = "OUT"
    )]
    output: Option<PathBuf>,
    /// Overwrite existing output files (OUT and --header-out).
    #[arg(long)]
    force: bool,
    /// Worker threads for the chunk encryption (default: the available
    /// cores). `--threads 1` is the single-threaded path; the output is the
    /// same either way.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Input file (default stdin; `-` is stdin).
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DecryptArgs {
    #[command(flatten)]
    key: KeyOpts,
    /// Detached form: read the header from FILE; IN is only the body.
    #[arg(long, value_name = "FILE")]
    header: Option<PathBuf>,
    /// Decrypt only the half-open plaintext byte range START:END (random
    /// access; IN must be a file). START or END may be omitted.
    #[arg(long, value_name = "START:END", value_parser = parse_range)]
    range: Option<Range<u64>>,
    /// Output file (default stdout). Created only after the whole input
    /// authenticated.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "out",
        value_name = "OUT"
    )]
    output: Option<PathBuf>,
    /// Overwrite an existing OUT.
    #[arg(long)]
    force: bool,
    /// Worker threads for the chunk decryption (default: the available
    /// cores). `--threads 1` is the single-threaded path; the output is the
    /// same either way.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Input file (default stdin; `-` is stdin).
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RewrapArgs {
    /// A key that can unwrap the current header (repeatable; an allow-list).
    #[arg(long = "kek", value_name = "OLD", required = true)]
    keks: Vec<String>,
    /// A key to wrap the data key with (repeatable, at most 16).
    #[arg(long = "new-kek", value_name = "NEW", required = true)]
    new_keks: Vec<String>,
    /// Detached form: the header file to rewrite (FILE is then the body).
    #[arg(long, value_name = "FILE")]
    header: Option<PathBuf>,
    /// The envelope (or, with --header, its body).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Envelope or detached header file (default stdin; `-` is stdin).
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
}

/// Parses `START:END` (either side may be empty: `:END`, `START:`).
fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| "expected START:END, e.g. 0:4096".to_string())?;
    let num = |t: &str, default: u64| -> Result<u64, String> {
        let t = t.trim();
        if t.is_empty() {
            Ok(default)
        } else {
            t.parse::<u64>()
                .map_err(|_| format!("{t:?} is not a byte offset"))
        }
    };
    let start = num(a, 0)?;
    let end = num(b, u64::MAX)?;
    if start > end {
        return Err(format!("START {start} is after END {end}"));
    }
    Ok(start..end)
}

/// The `--threads` value, or the available cores (counted once).
pub(crate) fn threads(arg: Option<u16>) -> cmk_envelope::Threads {
    use cmk_envelope::Threads;
    let n = arg.map_or_else(|| Threads::AllCores.count(), usize::from);
    std::num::NonZeroUsize::new(n).map_or(Threads::ONE, Threads::Fixed)
}

/// Runs a future (a key-encryption key call) to completion on a
/// current-thread runtime.
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// A clap error as one line: its message without the usage block.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = parts.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    format!("{line} (see `cmk-envelope --help`)")
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Keygen(a) => keys::keygen(&a),
        Command::Encrypt(a) => encrypt::run(&a),
        Command::Decrypt(a) => decrypt::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Rewrap(a) => rewrap::run(&a),
        #[cfg(feature = "azure-cse")]
        Command::AzureCse(c) => azure_cse::run(&c),
        #[cfg(feature = "cosmos-ae")]
        Command::CosmosAe(c) => cosmos_ae::run(&c),
        Command::Scope(c) => scope::run(&c),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if !e.use_stderr() {
                // --help, --version: not failures.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            eprintln!("cmk-envelope: error: {}", clap_one_line(&e));
            return ExitCode::from(2);
        }
    };
    // Everything `run` owns (temporary output files, progress bars) is
    // dropped, and so cleaned up, before the error is printed.
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmk-envelope: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0:10"), Ok(0..10));
        assert_eq!(parse_range("5:5"), Ok(5..5));
        assert_eq!(parse_range(":10"), Ok(0..10));
        assert_eq!(parse_range("7:"), Ok(7..u64::MAX));
        assert_eq!(parse_range(":"), Ok(0..u64::MAX));
        assert!(parse_range("10:5").is_err());
        assert!(parse_range("10").is_err());
        assert!(parse_range("a:b").is_err());
        assert!(parse_range("-1:5").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_fit_one_line() {
        let e = Cli::try_parse_from(["cmk-envelope", "encrypt", "--context", "c"]).unwrap_err();
        let line = clap_one_line(&e);
        assert!(!line.contains('\n') && line.contains("--kek"), "{line}");
    }
}
