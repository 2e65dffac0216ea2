//! `decrypt`: envelope in, plaintext out; whole streams or a byte range.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::Path;

use cmk_envelope::format::MAX_HEADER_LEN;
use cmk_envelope::stream::layout;
use cmk_envelope::{Decryptor, Header, Profile};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input::{Input, Source};
use crate::output::{unbuffer, Output, MODE_PRIVATE};
use crate::pipe::{copy, Tracked, BUF_SIZE};
use crate::progress::Progress;
use crate::{block_on, keys, scope, DecryptArgs};

pub(crate) fn run(args: &DecryptArgs) -> Result<(), CliError> {
    let mut resolver = keys::load_resolver(&args.key.keks)?;
    let detached = match &args.header {
        Some(p) => Some(read_header_file(p)?),
        None => None,
    };
    let src = Source::from_arg(args.input.as_deref());
    match &args.range {
        Some(range) => decrypt_range(args, &mut resolver, detached, &src, range.clone()),
        None => decrypt_stream(args, &mut resolver, detached, &src),
    }
}

/// Reads a detached header: a file holding exactly one header.
fn read_header_file(path: &Path) -> Result<Header, CliError> {
    let ctx = format!("cannot read header {}", path.display());
    let f = File::open(path).map_err(|e| CliError::io(&ctx, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_HEADER_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io(&ctx, e))?;
    Header::parse(&bytes).map_err(|e| CliError::with_context(&ctx, e))
}

/// Unwraps the data key (the only key call) for `header`; with `--store`,
/// the scopes the header names are opened first. The decryptor uses the
/// `--threads` threads.
fn unwrap(
    args: &DecryptArgs,
    resolver: &mut keys::CliResolver,
    header: &Header,
) -> Result<Decryptor, CliError> {
    if let (Some(store), Some(cmk)) = (&args.key.store, &args.key.cmk) {
        resolver.add_scopes(scope::header_scopes(header, store, cmk)?);
    }
    let profile: Profile = args.key.profile.into();
    let dec = block_on(Decryptor::new(
        header,
        &*resolver,
        profile,
        args.key.context.as_bytes(),
    ))??;
    Ok(dec.threads(crate::threads(args.threads)))
}

/// Sequential decryption. To a file, the plaintext is renamed into place
/// only once the reader has reported the authenticated end; to stdout it is
/// streamed chunk by chunk, each chunk after its own tag verified.
fn decrypt_stream(
    args: &DecryptArgs,
    resolver: &mut keys::CliResolver,
    detached: Option<Header>,
    src: &Source,
) -> Result<(), CliError> {
    let read_ctx = src.read_context();
    let (input, len) = src.open()?;
    let out = Output::create(args.output.as_deref(), MODE_PRIVATE, args.force)?;
    let write_ctx = out.write_context();
    let parallel = crate::threads(args.threads).count() > 1;

    let mut sink = BufWriter::with_capacity(BUF_SIZE, out);
    match input {
        Input::File(mut file) if parallel && len.is_some() => {
            // A regular file: after the header, the threads read the body
            // by position and open it; this thread writes the plaintext in
            // order, each chunk after it and every chunk before it
            // verified. The bar counts what is written.
            let header = match detached {
                Some(h) => h,
                None => Header::read_from(&mut file)
                    .map_err(|e| CliError::with_context(&read_ctx, e))?,
            };
            let dec = unwrap(args, resolver, &header)?;
            let body_len = len.map(|n| n.saturating_sub(header.encoded_len() as u64));
            let total = body_len.and_then(|n| layout::plaintext_len(n).ok());
            let progress = Progress::new(total, "decrypting");
            let mut w = Tracked::new(progress.writer(&mut sink));
            if let Err(e) = dec.decrypt_file(&file, &mut w) {
                let ctx = if w.failed() { &write_ctx } else { &read_ctx };
                return Err(CliError::with_context(ctx, e));
            }
        }
        input => {
            let progress = Progress::new(len, "decrypting");
            let mut input = BufReader::with_capacity(BUF_SIZE, progress.reader(input));
            let header = match detached {
                Some(h) => h,
                None => Header::read_from(&mut input)
                    .map_err(|e| CliError::with_context(&read_ctx, e))?,
            };
            let dec = unwrap(args, resolver, &header)?;
            if parallel {
                // The parallel engine writes a chunk's plaintext only after
                // it and every chunk before it verified, in order, and
                // returns Ok only after the final chunk authenticated (the
                // end of the message).
                let mut input = Tracked::new(input);
                if let Err(e) = dec.decrypt_stream(&mut input, &mut sink) {
                    let ctx = if input.failed() {
                        &read_ctx
                    } else {
                        &write_ctx
                    };
                    return Err(CliError::with_context(ctx, e));
                }
            } else {
                let mut plaintext = dec
                    .decrypt(input)
                    .map_err(|e| CliError::with_context(&read_ctx, e))?;
                // `copy` returns only when a read returned 0, which the
                // reader does only after the final chunk authenticated.
                copy(&mut plaintext, &mut sink, &read_ctx, &write_ctx)?;
            }
        }
    }
    let out = unbuffer(sink)?;
    out.commit()
}

/// Random access: only the chunks covering `range` (plus the final chunk
/// when the range reaches the end) are read and opened.
fn decrypt_range(
    args: &DecryptArgs,
    resolver: &mut keys::CliResolver,
    detached: Option<Header>,
    src: &Source,
    range: Range<u64>,
) -> Result<(), CliError> {
    let Source::File(path) = src else {
        return Err(CliError::msg(
            "--range needs IN to be a file (it reads by random access), not stdin",
        ));
    };
    let read_ctx = src.read_context();
    let open_ctx = format!("cannot open {}", path.display());
    let mut file = File::open(path).map_err(|e| CliError::io(&open_ctx, e))?;
    let meta = file.metadata().map_err(|e| CliError::io(&open_ctx, e))?;
    if !meta.is_file() {
        return Err(CliError::msg(format!(
            "--range needs IN to be a regular, seekable file; {} is not",
            path.display()
        )));
    }
    let out = Output::create(args.output.as_deref(), MODE_PRIVATE, args.force)?;
    let write_ctx = out.write_context();

    let header = match detached {
        Some(h) => h,
        None => Header::read_from(&mut file).map_err(|e| CliError::with_context(&read_ctx, e))?,
    };
    let dec = unwrap(args, resolver, &header)?;
    let mut plaintext = dec
        .decrypt(file)
        .map_err(|e| CliError::with_context(&read_ctx, e))?;

    let mut sink = BufWriter::with_capacity(BUF_SIZE, out);
    // With several threads, read larger spans: `read_at` opens their
    // chunks in parallel (bounded windows; 4 MiB of plaintext here).
    let parallel = crate::threads(args.threads).count() > 1;
    let span = if parallel { 16 * BUF_SIZE } else { BUF_SIZE };
    let mut buf = Zeroizing::new(vec![0u8; span]);
    let mut pos = range.start;
    while pos < range.end {
        let want = usize::try_from(range.end - pos).map_or(span, |r| r.min(span));
        let n = plaintext
            .read_at(pos, &mut buf[..want])
            .map_err(|e| CliError::with_context(&read_ctx, e))?;
        sink.write_all(&buf[..n])
            .map_err(|e| CliError::io(&write_ctx, e))?;
        pos += n as u64;
        if n < want {
            // A short read happens only at the authenticated end: clip.
            break;
        }
    }
    let out = unbuffer(sink)?;
    out.commit()
}
