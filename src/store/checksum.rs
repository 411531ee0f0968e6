//! A CRC-32 at the end of every stored entry and value: bytes read back from
//! a store are untrusted, and a flipped bit in a body would otherwise decode
//! into a wrong page or value. With it, a damaged entry is a miss.

use bytes::{BufMut, Bytes, BytesMut};

/// Appends the checksum of everything in `buf`.
pub(crate) fn seal(buf: &mut BytesMut) {
    let crc = crc32fast::hash(buf);
    buf.put_u32(crc);
}

/// The sealed content of `bytes` when its checksum matches, else `None`.
pub(crate) fn open(bytes: &Bytes) -> Option<Bytes> {
    let content_len = bytes.len().checked_sub(4)?;
    let (content, crc) = bytes.split_at(content_len);
    let crc = u32::from_be_bytes(crc.try_into().ok()?);
    (crc32fast::hash(content) == crc).then(|| bytes.slice(..content_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_flipped_bit_or_cut_is_refused() {
        let mut buf = BytesMut::from(&b"status, headers and a body"[..]);
        seal(&mut buf);
        let sealed = buf.freeze();
        assert_eq!(open(&sealed).unwrap(), &b"status, headers and a body"[..]);
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.to_vec();
                damaged[i] ^= 1 << bit;
                assert_eq!(open(&Bytes::from(damaged)), None, "byte {i} bit {bit}");
            }
        }
        for len in 0..sealed.len() {
            assert_eq!(open(&sealed.slice(..len)), None, "cut at {len}");
        }
        let mut empty = BytesMut::new();
        seal(&mut empty);
        assert_eq!(open(&empty.freeze()).unwrap(), Bytes::new());
    }
}
