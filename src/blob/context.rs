//! The `app_context` that binds an envelope to its blob.

/// Domain label of blob contexts, so that a blob context can never equal
/// the context of a document or an index file.
const LABEL: &[u8] = b"azure-blob";

/// The `app_context` of blob `blob` in container `container`:
/// `"azure-blob" ‖ 0x00 ‖ u32-be(len(container)) ‖ container ‖ blob`.
///
/// The container name is length-prefixed, so no two (container, blob)
/// pairs share a context. The account is not bound: a blob copied to the
/// same container and name in another account (geo-replication, a restore)
/// still opens, while a blob (or its metadata) moved to another name or
/// container fails the key commitment.
///
/// [`EncryptedBlobClient`](super::EncryptedBlobClient) uses it for every
/// blob; use it to open a downloaded blob with
/// [`Decryptor`](crate::Decryptor) directly.
pub fn blob_app_context(container: &str, blob: &str) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(LABEL.len() + 5 + container.len() + blob.len());
    ctx.extend_from_slice(LABEL);
    ctx.push(0);
    ctx.extend_from_slice(&(container.len() as u32).to_be_bytes());
    ctx.extend_from_slice(container.as_bytes());
    ctx.extend_from_slice(blob.as_bytes());
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unambiguous() {
        assert_ne!(blob_app_context("ab", "c"), blob_app_context("a", "bc"));
        assert_ne!(blob_app_context("a", "b"), blob_app_context("a", "c"));
        let c = blob_app_context("box", "x/y");
        assert_eq!(&c[..11], b"azure-blob\0");
        assert_eq!(&c[11..15], &3u32.to_be_bytes());
        assert_eq!(&c[15..], b"boxx/y");
    }
}
