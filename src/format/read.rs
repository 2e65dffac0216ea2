//! Reading a header from the start of a stream (the embedded form), sync
//! and async, around one sans-IO core: [`Header::peek_len`] on the first
//! 11 bytes says how many to read, [`Header::parse`] checks them.

use std::io::{self, Read};

use super::Header;
use crate::error::Error;

/// Bytes that tell a header's length: magic, version, suite, profile and
/// `header_len` ([`Header::peek_len`]).
const PEEK_LEN: usize = 11;

/// A header being read: its first [`PEEK_LEN`] bytes were checked, the
/// rest is to be read into [`PendingHeader::rest`]. Holds no I/O, so the
/// sync and async readers drive the same steps.
struct PendingHeader {
    bytes: Vec<u8>,
}

impl PendingHeader {
    /// Checks magic, version and `header_len` and allocates the header
    /// (at most 64 KiB, the format's bound).
    fn start(prefix: &[u8; PEEK_LEN]) -> crate::Result<PendingHeader> {
        let len = Header::peek_len(prefix)?;
        let mut bytes = vec![0u8; len];
        bytes[..PEEK_LEN].copy_from_slice(prefix);
        Ok(PendingHeader { bytes })
    }

    /// The bytes still to read.
    fn rest(&mut self) -> &mut [u8] {
        &mut self.bytes[PEEK_LEN..]
    }

    fn parse(self) -> crate::Result<Header> {
        Header::parse(&self.bytes)
    }
}

/// A stream that ends inside the header is a malformed header; any other
/// read error is an I/O error (or the crate error it carries).
fn read_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::MalformedHeader("input ends inside the header")
    } else {
        Error::from(e)
    }
}

impl Header {
    /// Reads one header from the start of `r` (the embedded form) and leaves
    /// `r` at the start of the body, ready for
    /// [`Decryptor::decrypt`](crate::Decryptor::decrypt) or
    /// [`Decryptor::decrypt_file`](crate::Decryptor::decrypt_file).
    ///
    /// Reads exactly the header's bytes (two `read_exact` calls; wrap an
    /// unbuffered source in a `BufReader` if that matters) and validates
    /// them as [`Header::parse`] does, before any key-encryption key could
    /// be called. Errors: [`Error::MalformedHeader`] (including a source
    /// that ends inside the header), [`Error::Io`].
    ///
    /// Cost: one allocation of the header's length (at most 64 KiB).
    pub fn read_from<R: Read + ?Sized>(r: &mut R) -> crate::Result<Header> {
        let mut prefix = [0u8; PEEK_LEN];
        r.read_exact(&mut prefix).map_err(read_error)?;
        let mut pending = PendingHeader::start(&prefix)?;
        r.read_exact(pending.rest()).map_err(read_error)?;
        pending.parse()
    }

    /// [`Header::read_from`] over a tokio [`AsyncRead`](tokio::io::AsyncRead):
    /// the same checks, errors and cost.
    #[cfg(feature = "tokio")]
    pub async fn read_from_async<R: tokio::io::AsyncRead + Unpin + ?Sized>(
        r: &mut R,
    ) -> crate::Result<Header> {
        use tokio::io::AsyncReadExt;
        let mut prefix = [0u8; PEEK_LEN];
        r.read_exact(&mut prefix).await.map_err(read_error)?;
        let mut pending = PendingHeader::start(&prefix)?;
        r.read_exact(pending.rest()).await.map_err(read_error)?;
        pending.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Profile, Suite};
    use crate::kek::{WrapAlgorithm, WrappedKey};

    fn header() -> Header {
        let key = WrappedKey {
            alg: WrapAlgorithm::A256Kw,
            kek_id: "k1".into(),
            wrapped: vec![7; 40],
        };
        Header::new(Suite::Cobblestone256, Profile::Blob, vec![key]).unwrap()
    }

    #[test]
    fn reads_exactly_the_header() {
        let h = header();
        let mut bytes = h.to_bytes();
        bytes.extend_from_slice(b"body");
        let mut r = &bytes[..];
        assert_eq!(Header::read_from(&mut r).unwrap(), h);
        assert_eq!(r, b"body");
    }

    #[test]
    fn a_stream_ending_inside_the_header_is_malformed() {
        let bytes = header().to_bytes();
        for cut in [0, 5, 11, bytes.len() - 1] {
            let mut r = &bytes[..cut];
            assert!(
                matches!(Header::read_from(&mut r), Err(Error::MalformedHeader(_))),
                "cut at {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            Header::read_from(&mut &bad[..]),
            Err(Error::MalformedHeader(_))
        ));
    }

    #[test]
    fn other_read_errors_stay_io_errors() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk"))
            }
        }
        assert!(matches!(Header::read_from(&mut Broken), Err(Error::Io(_))));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn async_reads_the_same() {
        let h = header();
        let mut bytes = h.to_bytes();
        bytes.extend_from_slice(b"body");
        let mut r = &bytes[..];
        let got = pollster::block_on(Header::read_from_async(&mut r)).unwrap();
        assert_eq!(got, h);
        assert_eq!(r, b"body");
        let mut short = &bytes[..12];
        assert!(matches!(
            pollster::block_on(Header::read_from_async(&mut short)),
            Err(Error::MalformedHeader(_))
        ));
    }
}
