//! Decoding of Redis replies. What Redis answers is untrusted: a reply of
//! the wrong shape is a protocol error, never a panic.

use bytes::Bytes;
use redis::Value;

use crate::{error::Error, key::Version};

/// Reads the entry of a lookup reply: bytes or nil.
pub(super) fn entry_of(value: Option<Value>) -> Result<Option<Bytes>, Error> {
    match value {
        Some(Value::BulkString(b)) => Ok(Some(Bytes::from(b))),
        Some(Value::Nil) | None => Ok(None),
        Some(other) => Err(Error::protocol(format!(
            "expected an entry or nil, got {other:?}"
        ))),
    }
}

/// Reads one version from a script reply; versions are untrusted bytes.
pub(super) fn version_of(value: Value) -> Result<Version, Error> {
    match value {
        Value::BulkString(b) => Ok(Version::from_bytes(b)),
        Value::SimpleString(s) => Ok(Version::from_bytes(s)),
        other => Err(Error::protocol(format!(
            "expected a version string, got {other:?}"
        ))),
    }
}

/// The text of an `INFO` reply: a bulk string (RESP2) or a verbatim string
/// (RESP3).
pub(super) fn info_text(value: &Value) -> Result<&[u8], Error> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::VerbatimString { text, .. } => Ok(text.as_bytes()),
        other => Err(Error::protocol(format!(
            "expected INFO text, got {other:?}"
        ))),
    }
}

/// The unsigned integer field `name` of an `INFO` text (`name:value` lines,
/// `#` section headers); `None` when it is absent or not a number.
pub(super) fn info_field(text: &[u8], name: &str) -> Option<u64> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = line.strip_prefix(name.as_bytes())?.strip_prefix(b":")?;
        std::str::from_utf8(value).ok()?.trim().parse().ok()
    })
}

/// A non-negative integer reply (`DBSIZE`).
pub(super) fn count_of(value: &Value) -> Result<u64, Error> {
    match value {
        Value::Int(n) => {
            u64::try_from(*n).map_err(|_| Error::protocol(format!("expected a count, got {n}")))
        }
        other => Err(Error::protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_from_untrusted_text() {
        let text = b"# Memory\r\nused_memory:1024\r\nused_memory_human:1.00K\r\nmaxmemory:0\r\n\
                     # Stats\r\nkeyspace_hits:7\r\nkeyspace_misses:x\r\nevicted_keys:-1\r\n";
        assert_eq!(info_field(text, "used_memory"), Some(1024));
        assert_eq!(info_field(text, "maxmemory"), Some(0));
        assert_eq!(info_field(text, "keyspace_hits"), Some(7));
        // Not a number, negative, absent, or only a prefix of a field name.
        assert_eq!(info_field(text, "keyspace_misses"), None);
        assert_eq!(info_field(text, "evicted_keys"), None);
        assert_eq!(info_field(text, "expired_keys"), None);
        assert_eq!(info_field(text, "used"), None);
        assert_eq!(
            info_field(b"\xff\xfe:1\nused_memory:\xff", "used_memory"),
            None
        );
        assert_eq!(info_field(b"", "used_memory"), None);
    }

    #[test]
    fn replies_of_the_wrong_shape_are_protocol_errors() {
        assert!(info_text(&Value::Int(1)).is_err());
        assert_eq!(
            info_text(&Value::BulkString(b"a:1".to_vec())).unwrap(),
            b"a:1"
        );
        assert_eq!(count_of(&Value::Int(3)).unwrap(), 3);
        assert!(count_of(&Value::Int(-3)).is_err());
        assert!(count_of(&Value::Nil).is_err());
    }
}
