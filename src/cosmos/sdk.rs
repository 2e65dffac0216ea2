//! Small conversions between the Rust SDK's types and the crate's: ETags,
//! `If-Match` options, partition keys from JSON values, and a container's
//! partition key path.

use azure_core::http::Etag as SdkEtag;
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyValue};
use azure_data_cosmos::options::{ItemWriteOptions, Precondition};
use azure_data_cosmos::PartitionKey;
use serde_json::Value;

use super::error::not_ours;
use crate::document::JsonPointer;
use crate::error::Error;
use crate::scope::Etag;

/// The crate's [`Etag`] of a successful response.
pub(super) fn require_etag(etag: Option<&SdkEtag>) -> crate::Result<Etag> {
    etag.map(|e| Etag(e.to_string()))
        .ok_or_else(|| not_ours("the service returned no ETag"))
}

/// Write options conditional on `expected`, if any.
pub(super) fn if_match(expected: Option<&Etag>) -> Option<ItemWriteOptions> {
    expected.map(|tag| {
        ItemWriteOptions::default()
            .with_precondition(Precondition::if_match(SdkEtag::from(tag.0.clone())))
    })
}

/// The SDK partition key of the JSON value `value`, found at `path`: a
/// string, a number, a boolean or `null`.
pub(super) fn partition_key(path: &str, value: &Value) -> crate::Result<PartitionKey> {
    let bad = |problem| Error::DocumentField {
        path: path.to_owned(),
        problem,
    };
    let v: PartitionKeyValue = match value {
        Value::Null => PartitionKeyValue::NULL,
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into(),
            (None, Some(u), _) => u.into(),
            (None, None, Some(f)) => PartitionKeyValue::try_from(f)
                .map_err(|_| bad("a partition key number must be finite"))?,
            _ => return Err(bad("a partition key number must be finite")),
        },
        Value::Array(_) | Value::Object(_) => {
            return Err(bad(
                "a partition key must be a string, a number, a boolean or null",
            ))
        }
    };
    Ok(PartitionKey::from(v))
}

/// The container's partition key path: exactly one, made of plain property
/// names (`/tenant`, `/a/b`), which is then also its JSON Pointer.
/// Hierarchical partition keys, escaped property names, and names with
/// control or format characters (errors name the path) are refused.
pub(super) fn partition_key_path(props: &ContainerProperties) -> crate::Result<JsonPointer> {
    match props.partition_key.paths() {
        [path] => {
            let plain = path.strip_prefix('/').is_some_and(|rest| {
                rest.split('/').all(|name| {
                    !name.is_empty()
                        && !name
                            .chars()
                            .any(|c| matches!(c, '"' | '\'' | '[' | ']' | '~' | '\\'))
                        // Errors name the path: nothing in it needs escaping.
                        && crate::untrusted::escape(name) == name
                })
            });
            match plain.then(|| JsonPointer::parse(path).ok()).flatten() {
                Some(p) => Ok(p),
                None => Err(not_ours(
                    "the container's partition key path must be plain property names, such as /tenant or /a/b",
                )),
            }
        }
        _ => Err(not_ours(
            "the container must have one partition key path (hierarchical partition keys are not supported)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The path comes from the service and is named in errors later:
    /// anything an error would have to escape is refused here.
    #[test]
    fn partition_key_paths_are_plain_printable_names() {
        let path = |p: &str| partition_key_path(&ContainerProperties::new("c", p.into()));
        for ok in ["/tenant", "/a/b", "/clé"] {
            assert_eq!(path(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "/t\u{1b}[31m",
            "/a/\u{202e}b",
            "/t\nx",
            "/t\u{200b}",
            "/\"q\"",
            "/a~1b",
            "tenant",
            "/",
            "/a//b",
        ] {
            match path(bad) {
                Err(Error::Storage(_)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let long = format!("/{}", "x".repeat(300));
        assert!(path(&long).is_err());
    }

    #[test]
    fn partition_keys_from_json() {
        for ok in [
            json!("a"),
            json!(1),
            json!(-1),
            json!(u64::MAX),
            json!(1.5),
            json!(true),
            json!(null),
        ] {
            assert!(partition_key("/pk", &ok).is_ok(), "{ok}");
        }
        for bad in [json!([1]), json!({"a": 1})] {
            let e = partition_key("/pk", &bad).unwrap_err();
            assert!(
                matches!(e, Error::DocumentField { ref path, .. } if path == "/pk"),
                "{e}"
            );
        }
        assert!(if_match(None).is_none());
        assert!(if_match(Some(&Etag("\"x\"".into()))).is_some());
    }
}
