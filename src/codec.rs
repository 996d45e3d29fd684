//! The encoding of every value txu persists: one version byte, then bincode. Pure.
//!
//! Decoding refuses another version, empty, truncated or trailing input, never panics, and
//! reads at most the input's length, so a corrupt length prefix cannot make it allocate more.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// Why `decode` refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnknownVersion(u8),
    Corrupt(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty encoding"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown encoding version {v}"),
            DecodeError::Corrupt(why) => write!(f, "corrupt encoding: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Varint integers, trailing bytes refused (bincode's defaults).
fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

/// `version`, then `value` in bincode.
pub fn encode<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    use bincode::Options;
    let mut out = vec![version];
    // Serializing owned data into a Vec without a limit cannot fail; if it ever did, the bare
    // version byte that remains fails to decode (loudly) instead of reading as empty.
    if options().serialize_into(&mut out, value).is_err() {
        out.truncate(1);
    }
    out
}

/// The inverse of `encode` for values written with `version`.
pub fn decode<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, DecodeError> {
    use bincode::Options;
    let (&v, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if v != version {
        return Err(DecodeError::UnknownVersion(v));
    }
    options()
        .with_limit(u64::try_from(rest.len()).unwrap_or(u64::MAX))
        .deserialize(rest)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        let v: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![0, 255]];
        let bytes = encode(3, &v);
        assert_eq!(decode::<Vec<Vec<u8>>>(3, &bytes), Ok(v));
        assert_eq!(
            decode::<Vec<Vec<u8>>>(4, &bytes),
            Err(DecodeError::UnknownVersion(3))
        );
        assert_eq!(decode::<Vec<Vec<u8>>>(3, &[]), Err(DecodeError::Empty));
        for cut in 1..bytes.len() {
            assert!(
                decode::<Vec<Vec<u8>>>(3, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<Vec<Vec<u8>>>(3, &trailing).is_err());
        let mut huge = vec![3];
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode::<Vec<Vec<u8>>>(3, &huge).is_err());
    }
}
