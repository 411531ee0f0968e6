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
