//! `encrypt`: plaintext in, envelope out (embedded or detached).

use std::io::{BufWriter, Write};

use cmk_envelope::stream::layout;
use cmk_envelope::{Encryptor, Profile};

use crate::error::CliError;
use crate::input::{Input, Source};
use crate::output::{unbuffer, Output, MODE_PUBLIC};
use crate::pipe::{copy, Tracked, BUF_SIZE};
use crate::progress::Progress;
use crate::{block_on, keys, scope, EncryptArgs};

pub(crate) fn run(args: &EncryptArgs) -> Result<(), CliError> {
    let keks = match (&args.key.store, &args.scope, &args.key.cmk) {
        (Some(store), Some(id), Some(cmk)) => {
            let scope = scope::open_scope(store, id, cmk)?;
            let mut keks = vec![scope.kek()];
            if !args.key.keks.is_empty() {
                keks.extend(keys::load_keks(&args.key.keks)?);
            }
            keks
        }
        (Some(_), None, _) => {
            return Err(CliError::msg(
                "encrypt --store needs --scope: the scope to seal under",
            ))
        }
        _ => keys::load_keks(&args.key.keks)?,
    };
    let profile: Profile = args.key.profile.into();

    let src = Source::from_arg(args.input.as_deref());
    let (reader, len) = src.open()?;

    if let (Some(h), Some(o)) = (&args.header_out, &args.output) {
        if h == o {
            return Err(CliError::msg("--header-out and -o name the same file"));
        }
    }
    // Outputs are created (and an existing one refused) before any key is
    // called or any input is read.
    let header_out = match &args.header_out {
        Some(p) => Some(Output::file(p, MODE_PUBLIC, args.force)?),
        None => None,
    };
    let out = Output::create(args.output.as_deref(), MODE_PUBLIC, args.force)?;
    let write_ctx = out.write_context();

    let threads = crate::threads(args.threads);
    let enc =
        block_on(Encryptor::new(&keks, profile, args.key.context.as_bytes()))??.threads(threads);
    let header_bytes = header_out.as_ref().map(|_| enc.header().to_bytes());
    let header_len = enc.header().encoded_len();
    let read_ctx = src.read_context();

    let detached = header_out.is_some();
    let enc = if detached { enc.detached() } else { enc };
    let mut sink = BufWriter::with_capacity(BUF_SIZE, out);
    let parallel = threads.count() > 1;
    match reader {
        Input::File(file) if parallel && len.is_some() => {
            // A regular file: the threads read it by position and seal;
            // this thread writes in order. The bar counts what is written.
            let preamble = if detached { 0 } else { header_len as u64 };
            let progress = Progress::new(len.map(|n| preamble + layout::body_len(n)), "encrypting");
            let mut w = Tracked::new(progress.writer(&mut sink));
            if let Err(e) = enc.encrypt_file(&file, &mut w) {
                let ctx = if w.failed() { &write_ctx } else { &read_ctx };
                return Err(CliError::with_context(ctx, e));
            }
        }
        mut reader if parallel => {
            // The parallel engine on a stream: this thread reads and
            // writes, the workers seal; the final chunk is written only at
            // the end of the input.
            let progress = Progress::new(len, "encrypting");
            let mut input = Tracked::new(progress.reader(&mut reader));
            if let Err(e) = enc.encrypt_stream(&mut input, &mut sink) {
                let ctx = if input.failed() {
                    &read_ctx
                } else {
                    &write_ctx
                };
                return Err(CliError::with_context(ctx, e));
            }
        }
        mut reader => {
            let progress = Progress::new(len, "encrypting");
            let mut writer = enc
                .wrap_output(&mut sink)
                .map_err(|e| CliError::with_context(&write_ctx, e))?;
            copy(
                &mut progress.reader(&mut reader),
                &mut writer,
                &read_ctx,
                &write_ctx,
            )?;
            writer
                .finish()
                .map_err(|e| CliError::with_context(&write_ctx, e))?;
        }
    }
    let out = unbuffer(sink)?;

    let Some(mut header_out) = header_out else {
        return out.commit();
    };
    let body_path = out.path().map(|p| p.to_path_buf());
    out.commit()?;
    let header_ctx = header_out.write_context();
    let written = header_out
        .write_all(header_bytes.as_deref().unwrap_or_default())
        .map_err(|e| CliError::io(&header_ctx, e))
        .and_then(|()| header_out.commit());
    if written.is_err() {
        // A body without its header cannot be decrypted: do not leave one.
        if let Some(p) = body_path {
            let _ = std::fs::remove_file(p);
        }
    }
    written
}
