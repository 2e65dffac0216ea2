//! `azure-cse`: decrypt and encrypt blobs in the Azure Storage client-side
//! encryption v2 format (feature `azure-cse`).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cmk_envelope::azure_cse::{
    self, CseDecryptor, CseEncryptOptions, CseEncryptor, EncryptionData, InsecureCseV1Decryptor,
    InsecureV1, Protocol,
};

use crate::error::CliError;
use crate::input::Source;
use crate::output::{unbuffer, Output, MODE_PRIVATE, MODE_PUBLIC};
use crate::pipe::{copy, BUF_SIZE};
use crate::{block_on, keys, parse_range};

#[derive(Subcommand, Debug)]
pub(crate) enum AzureCseCommand {
    /// Decrypt a client-side encrypted blob (protocol 2.0/2.1; 1.0 only
    /// with --insecure-allow-v1) from IN (default stdin) to OUT (default
    /// stdout).
    #[command(long_about = DECRYPT_LONG_ABOUT)]
    Decrypt(CseDecryptArgs),
    /// Encrypt IN (default stdin) into a client-side encrypted blob the
    /// Azure Storage SDKs read; its metadata goes to --metadata-out.
    #[command(long_about = ENCRYPT_LONG_ABOUT)]
    Encrypt(CseEncryptArgs),
}

const DECRYPT_LONG_ABOUT: &str = "Decrypt a blob written by the Azure Storage SDKs' client-side encryption (protocol 2.0 or 2.1; .NET, Java or Python) from IN (default stdin) to OUT (default stdout).\n\n\
--metadata FILE holds the blob's `encryptiondata` metadata value (the JSON). Its KeyId must be one of the --kek keys (an allow-list).\n\n\
Protocol 1.0 (AES-CBC without any integrity protection, CVE-2022-30187) is refused unless --insecure-allow-v1 is given. With it, a 1.0 blob is decrypted WITHOUT AUTHENTICATION: its plaintext may have been modified by anyone who could write the blob, and success or failure is a padding oracle. Use it only to migrate: read each blob once and re-encrypt it (`azure-cse encrypt` writes 2.0/2.1). Whole blobs only (no --range); with -o the output appears only if the padding checked out.\n\n\
Output to a file (-o OUT) is written to a temporary file and renamed into place only after every region authenticated; on failure nothing is left at OUT. On stdout each region (4 MiB in 2.0) is released after its own tag verified; check the exit status.\n\n\
The format cannot detect a blob truncated exactly at a region boundary (the plaintext length is not recorded).\n\n\
With --range START:END only the regions covering that half-open plaintext range are read (IN must be a file).";

const ENCRYPT_LONG_ABOUT: &str = "Encrypt IN (default stdin) into a blob in the Azure Storage client-side encryption format, at OUT (default stdout), readable by the .NET, Java and Python SDKs.\n\n\
Writes protocol 2.0 (4 MiB regions) by default, or 2.1 with --region-size N. The content key is wrapped with --kek (A256KW, RSA-OAEP or RSA-OAEP-256). The `encryptiondata` metadata JSON, to store with the blob, goes to --metadata-out FILE. Both files are written atomically; if the metadata cannot be written the body is removed.";

#[derive(Args, Debug)]
pub(crate) struct CseDecryptArgs {
    /// Key-encryption key (JWK file, Key Vault URL or PKCS#11 URI, as for
    /// `decrypt`); repeatable, an allow-list.
    #[arg(long = "kek", value_name = "FILE|URI", required = true)]
    keks: Vec<String>,
    /// The blob's `encryptiondata` metadata value (JSON).
    #[arg(long, value_name = "FILE")]
    metadata: PathBuf,
    /// Decrypt only the half-open plaintext byte range START:END (IN must
    /// be a file). START or END may be omitted.
    #[arg(long, value_name = "START:END", value_parser = parse_range)]
    range: Option<Range<u64>>,
    /// Output file (default stdout). Created only after every region
    /// authenticated.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite an existing OUT.
    #[arg(long)]
    force: bool,
    /// INSECURE: also decrypt protocol 1.0 blobs (AES-CBC, no integrity,
    /// CVE-2022-30187), to migrate them. Has no effect on 2.x blobs.
    #[arg(long)]
    insecure_allow_v1: bool,
    /// Input file (default stdin; `-` is stdin).
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CseEncryptArgs {
    /// Key-encryption key (JWK file, Key Vault URL or PKCS#11 URI).
    #[arg(long = "kek", value_name = "FILE|URI")]
    kek: String,
    /// Write protocol 2.1 with regions of N bytes (16 to 67108864) instead
    /// of protocol 2.0 (4 MiB regions).
    #[arg(long, value_name = "N")]
    region_size: Option<u64>,
    /// Where to write the `encryptiondata` metadata JSON.
    #[arg(long, value_name = "FILE")]
    metadata_out: PathBuf,
    /// Output file (default stdout). Written atomically.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite existing output files (OUT and --metadata-out).
    #[arg(long)]
    force: bool,
    /// Input file (default stdin; `-` is stdin).
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
}

pub(crate) fn run(cmd: &AzureCseCommand) -> Result<(), CliError> {
    match cmd {
        AzureCseCommand::Decrypt(a) => decrypt(a),
        AzureCseCommand::Encrypt(a) => encrypt(a),
    }
}

fn read_metadata(path: &Path) -> Result<EncryptionData, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(&format!("cannot read {}", path.display()), e))?;
    EncryptionData::parse(text.trim())
        .map_err(|e| CliError::with_context(&format!("metadata {}", path.display()), e))
}

fn decrypt(args: &CseDecryptArgs) -> Result<(), CliError> {
    let resolver = keys::load_resolver(&args.keks)?;
    let metadata = read_metadata(&args.metadata)?;
    let src = Source::from_arg(args.input.as_deref());
    let read_ctx = src.read_context();
    if args.range.is_some() && matches!(src, Source::Stdin) {
        return Err(CliError::msg(
            "--range needs IN to be a file (it reads only some regions), not stdin",
        ));
    }
    if metadata.protocol() == Protocol::V1_0 && args.insecure_allow_v1 {
        return decrypt_insecure_v1(args, &metadata, &resolver, &src);
    }
    let out = Output::create(args.output.as_deref(), MODE_PRIVATE, args.force)?;
    let write_ctx = out.write_context();
    let dec = block_on(CseDecryptor::new(&metadata, &resolver))??;

    let (mut reader, len) = src.open()?;
    if let Some(len) = len {
        // A length no writer produces is refused before any output.
        azure_cse::plaintext_len(len, dec.region_data_len())
            .map_err(|e| CliError::with_context(&read_ctx, e))?;
    }
    let mut sink = BufWriter::with_capacity(BUF_SIZE, out);
    match (&args.range, &src) {
        (Some(range), Source::File(path)) => {
            let mut file = File::open(path)
                .map_err(|e| CliError::io(&format!("cannot open {}", path.display()), e))?;
            let total = file
                .metadata()
                .map_err(|e| CliError::io(&read_ctx, e))?
                .len();
            let plan = dec
                .plan_range(range.clone(), total)
                .map_err(|e| CliError::with_context(&read_ctx, e))?;
            let ct = plan.ciphertext();
            file.seek(SeekFrom::Start(ct.start))
                .map_err(|e| CliError::io(&read_ctx, e))?;
            let fetched = file.take(ct.end - ct.start);
            copy(
                &mut dec.range_reader(&plan, fetched),
                &mut sink,
                &read_ctx,
                &write_ctx,
            )?;
        }
        _ => {
            copy(
                &mut dec.reader(&mut reader),
                &mut sink,
                &read_ctx,
                &write_ctx,
            )?;
        }
    }
    let out = unbuffer(sink)?;
    out.commit()
}

/// `decrypt --insecure-allow-v1` of a protocol 1.0 blob: unauthenticated
/// AES-CBC, streamed; a file OUT is committed only after the padding
/// checked out.
fn decrypt_insecure_v1(
    args: &CseDecryptArgs,
    metadata: &EncryptionData,
    resolver: &dyn cmk_envelope::KeyResolver,
    src: &Source,
) -> Result<(), CliError> {
    if args.range.is_some() {
        return Err(CliError::msg(
            "--range is not supported for protocol 1.0 blobs: decrypt the whole blob",
        ));
    }
    let read_ctx = src.read_context();
    let out = Output::create(args.output.as_deref(), MODE_PRIVATE, args.force)?;
    let write_ctx = out.write_context();
    let dec = block_on(InsecureCseV1Decryptor::new(
        metadata,
        resolver,
        InsecureV1::AcceptUnauthenticatedCbc,
    ))??;
    eprintln!(
        "cmk-envelope: warning: decrypting an Azure CSE protocol 1.0 blob (AES-CBC, CVE-2022-30187) \
         WITHOUT AUTHENTICATION (--insecure-allow-v1); re-encrypt it with protocol 2.x"
    );
    let (mut reader, _) = src.open()?;
    let mut sink = BufWriter::with_capacity(BUF_SIZE, out);
    copy(
        &mut dec.reader(&mut reader),
        &mut sink,
        &read_ctx,
        &write_ctx,
    )?;
    let out = unbuffer(sink)?;
    out.commit()
}

fn encrypt(args: &CseEncryptArgs) -> Result<(), CliError> {
    let kek = keys::load_kek(&args.kek)?;
    let options = match args.region_size {
        None => CseEncryptOptions::v2_0(),
        Some(n) => CseEncryptOptions::v2_1(n)
            .map_err(|_| CliError::msg("--region-size must be 16 to 67108864 bytes"))?,
    };
    if args.output.as_deref() == Some(args.metadata_out.as_path()) {
        return Err(CliError::msg("--metadata-out and -o name the same file"));
    }
    let src = Source::from_arg(args.input.as_deref());
    let (mut reader, _) = src.open()?;
    // Outputs are created (an existing one refused) before any key call.
    let mut metadata_out = Output::file(&args.metadata_out, MODE_PUBLIC, args.force)?;
    let out = Output::create(args.output.as_deref(), MODE_PUBLIC, args.force)?;
    let write_ctx = out.write_context();

    let enc = block_on(CseEncryptor::new(kek.as_ref(), &options))??;
    let json = enc.metadata().to_json();
    let mut writer = enc.writer(BufWriter::with_capacity(BUF_SIZE, out));
    copy(&mut reader, &mut writer, &src.read_context(), &write_ctx)?;
    let sink = writer
        .finish()
        .map_err(|e| CliError::with_context(&write_ctx, e))?;
    let out = unbuffer(sink)?;
    let body_path = out.path().map(Path::to_path_buf);
    out.commit()?;
    let meta_ctx = metadata_out.write_context();
    let written = metadata_out
        .write_all(json.as_bytes())
        .map_err(|e| CliError::io(&meta_ctx, e))
        .and_then(|()| metadata_out.commit());
    if written.is_err() {
        // A body without its metadata cannot be decrypted: do not leave one.
        if let Some(p) = body_path {
            let _ = std::fs::remove_file(p);
        }
    }
    written
}
