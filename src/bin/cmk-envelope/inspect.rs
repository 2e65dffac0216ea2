//! `inspect`: the header as JSON, without calling any key.

use std::io::{BufReader, Write};

use cmk_envelope::format::VERSION;
use cmk_envelope::Header;
use serde::Serialize;

use crate::error::CliError;
use crate::input::Source;
use crate::InspectArgs;

#[derive(Serialize)]
struct HeaderJson<'a> {
    version: u8,
    suite: u8,
    profile: &'static str,
    header_len: usize,
    keys: Vec<KeyJson<'a>>,
}

#[derive(Serialize)]
struct KeyJson<'a> {
    alg: &'static str,
    kid: &'a str,
    wrapped_len: usize,
}

/// Reads one header from the start of IN (an embedded envelope or a
/// detached header; the bytes are the same) and prints it.
pub(crate) fn run(args: &InspectArgs) -> Result<(), CliError> {
    let src = Source::from_arg(args.input.as_deref());
    let (reader, _) = src.open()?;
    let mut reader = BufReader::new(reader);
    let header = Header::read_from(&mut reader)
        .map_err(|e| CliError::with_context(&src.read_context(), e))?;
    let json = HeaderJson {
        version: VERSION,
        suite: header.suite().to_byte(),
        profile: header.profile().name(),
        header_len: header.encoded_len(),
        keys: header
            .keys()
            .iter()
            .map(|k| KeyJson {
                alg: k.alg.jose_name(),
                kid: &k.kek_id,
                wrapped_len: k.wrapped.len(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| CliError::msg(format!("cannot format the header as JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("cannot write stdout", e))
}
