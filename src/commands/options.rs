//! Options of `TXU.BEGIN`. Pure parsing, unit-tested without a server.

use crate::error::{quote, TxuError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BeginOptions {
    /// `CAPTURE`: queue every command of this connection until `TXU.EXEC`/`TXU.ROLLBACK`.
    pub capture: bool,
}

/// Parses the arguments after `TXU.BEGIN`. Options are case-insensitive; each may appear once.
pub fn parse_begin(args: &[&[u8]]) -> Result<BeginOptions, TxuError> {
    let mut o = BeginOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.eq_ignore_ascii_case(b"capture") {
            if o.capture {
                return Err(TxuError::Syntax("CAPTURE given twice".into()));
            }
            o.capture = true;
        } else {
            return Err(TxuError::Syntax(format!(
                "unknown TXU.BEGIN option '{}'",
                quote(a)
            )));
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options() {
        assert_eq!(parse_begin(&[]), Ok(BeginOptions::default()));
    }

    #[test]
    fn capture_any_case_once() {
        assert!(parse_begin(&[b"CaPtUrE"]).is_ok_and(|o| o.capture));
        assert!(parse_begin(&[b"capture", b"CAPTURE"]).is_err());
    }

    #[test]
    fn junk_is_a_syntax_error() {
        let e = parse_begin(&[b"\r\nbad"]).unwrap_err().to_string();
        assert!(e.starts_with("ERR syntax error"), "{e}");
        assert!(!e.contains('\r') && !e.contains('\n'));
    }
}
