//! Arguments of `TXU.BEGIN` and `TXU.RUN`. Pure parsing, unit-tested without a server.

use crate::error::{quote, TxuError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BeginOptions {
    /// `CAPTURE`: queue every command of this connection until `TXU.EXEC`/`TXU.ROLLBACK`.
    pub capture: bool,
    /// `RETAIN <ms>`: keep the committed transaction's undo log this long.
    pub retain_ms: Option<i64>,
    /// `RETRY [<max-attempts>]`: defer the transaction on a transient failure. `Some(None)`:
    /// the attempts come from `txu.max-attempts`.
    pub retry: Option<Option<u32>>,
}

/// Longest retention accepted (a year): a retained undo log holds pre-images in memory.
pub const MAX_RETAIN_MS: i64 = 365 * 24 * 3600 * 1000;

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
        } else if a.eq_ignore_ascii_case(b"retry") {
            if o.retry.is_some() {
                return Err(TxuError::Syntax("RETRY given twice".into()));
            }
            // An optional number follows; anything else is the next option.
            let n = it
                .clone()
                .next()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok());
            match n {
                Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => {
                    it.next();
                    o.retry = Some(u32::try_from(n).ok());
                }
                Some(_) => {
                    return Err(TxuError::Syntax(
                        "RETRY takes a number of attempts of at least 1".into(),
                    ))
                }
                None => o.retry = Some(None),
            }
        } else if a.eq_ignore_ascii_case(b"retain") {
            if o.retain_ms.is_some() {
                return Err(TxuError::Syntax("RETAIN given twice".into()));
            }
            let ms = it
                .next()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|ms| (1..=MAX_RETAIN_MS).contains(ms))
                .ok_or_else(|| {
                    TxuError::Syntax(format!(
                        "RETAIN needs a number of milliseconds between 1 and {MAX_RETAIN_MS}"
                    ))
                })?;
            o.retain_ms = Some(ms);
        } else {
            return Err(TxuError::Syntax(format!(
                "unknown TXU.BEGIN option '{}'",
                quote(a)
            )));
        }
    }
    Ok(o)
}

/// A parsed `TXU.RUN [RETRY <n>] [RETAIN <ms>] <argc> <command> [arg ...] ...`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunFrames {
    pub retain_ms: Option<i64>,
    pub retry: Option<u32>,
    /// Each command's arguments (its name first), as index ranges into the arguments after
    /// `TXU.RUN`.
    pub commands: Vec<std::ops::Range<usize>>,
}

fn number(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses the arguments after `TXU.RUN`: options (any order, each once), then each command as
/// its argument count (name included) and its arguments, so any binary argument is safe.
pub fn parse_run(args: &[&[u8]]) -> Result<RunFrames, TxuError> {
    let mut r = RunFrames::default();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.eq_ignore_ascii_case(b"retry") {
            if r.retry.is_some() {
                return Err(TxuError::Syntax("RETRY given twice".into()));
            }
            let n = args
                .get(i + 1)
                .and_then(|v| number(v))
                .filter(|n| (1..=i64::from(u32::MAX)).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    TxuError::Syntax("RETRY needs a number of attempts of at least 1".into())
                })?;
            r.retry = Some(n);
        } else if a.eq_ignore_ascii_case(b"retain") {
            if r.retain_ms.is_some() {
                return Err(TxuError::Syntax("RETAIN given twice".into()));
            }
            let ms = args
                .get(i + 1)
                .and_then(|v| number(v))
                .filter(|ms| (1..=MAX_RETAIN_MS).contains(ms))
                .ok_or_else(|| {
                    TxuError::Syntax(format!(
                        "RETAIN needs a number of milliseconds between 1 and {MAX_RETAIN_MS}"
                    ))
                })?;
            r.retain_ms = Some(ms);
        } else {
            break;
        }
        i += 2;
    }
    while let Some(a) = args.get(i) {
        let k = r.commands.len() + 1;
        let argc = number(a).ok_or_else(|| {
            TxuError::Syntax(format!(
                "expected the argument count of command {k}, got '{}'",
                quote(a)
            ))
        })?;
        let argc = usize::try_from(argc)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                TxuError::Syntax(format!(
                    "the argument count of command {k} must be at least 1 (its name)"
                ))
            })?;
        let start = i + 1;
        let left = args.len() - start;
        if argc > left {
            return Err(TxuError::Syntax(format!(
                "command {k} has {argc} arguments, but only {left} follow"
            )));
        }
        r.commands.push(start..start + argc);
        i = start + argc;
    }
    if r.commands.is_empty() {
        return Err(TxuError::Syntax(
            "TXU.RUN needs at least one command: [RETRY <n>] [RETAIN <ms>] <argc> <command> [arg ...] ...".into(),
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_frames() {
        let args: Vec<&[u8]> = vec![
            b"RETAIN", b"500", b"retry", b"3", b"3", b"SET", b"k", b"a\r\nb", b"1", b"PING",
        ];
        let r = parse_run(&args).expect("parses");
        assert_eq!(r.retain_ms, Some(500));
        assert_eq!(r.retry, Some(3));
        assert_eq!(r.commands, vec![5..8, 9..10]);
        // A command named like an option, after the options.
        let r = parse_run(&[b"2", b"RETRY", b"x"]).expect("parses");
        assert_eq!(r.retry, None);
        assert_eq!(r.commands.len(), 1);
        assert_eq!(r.commands.first(), Some(&(1..3)));
    }

    #[test]
    fn bad_run_frames_name_what_is_wrong() {
        let err = |args: &[&[u8]]| match parse_run(args) {
            Err(TxuError::Syntax(s)) => s,
            other => panic!("{args:?}: {other:?}"),
        };
        assert!(err(&[]).starts_with("TXU.RUN needs at least one command"));
        assert!(err(&[b"RETAIN", b"1000"]).starts_with("TXU.RUN needs at least one command"));
        assert_eq!(
            err(&[b"SET", b"k", b"v"]),
            "expected the argument count of command 1, got 'SET'"
        );
        assert_eq!(
            err(&[b"0"]),
            "the argument count of command 1 must be at least 1 (its name)"
        );
        assert_eq!(
            err(&[b"1", b"PING", b"3", b"SET", b"k"]),
            "command 2 has 3 arguments, but only 2 follow"
        );
        assert_eq!(
            err(&[b"RETRY", b"0", b"1", b"PING"]),
            "RETRY needs a number of attempts of at least 1"
        );
        assert_eq!(
            err(&[b"RETRY"]),
            "RETRY needs a number of attempts of at least 1"
        );
        assert!(err(&[b"RETAIN", b"0", b"1", b"PING"]).starts_with("RETAIN needs"));
        assert_eq!(
            err(&[b"RETRY", b"1", b"RETRY", b"2", b"1", b"PING"]),
            "RETRY given twice"
        );
        assert_eq!(
            err(&[b"-1", b"PING"]),
            "the argument count of command 1 must be at least 1 (its name)"
        );
    }

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
    fn retain_takes_a_bounded_duration() {
        assert_eq!(
            parse_begin(&[b"RETAIN", b"5000"]).map(|o| o.retain_ms),
            Ok(Some(5000))
        );
        for bad in [&b"0"[..], b"-1", b"x", b"99999999999999999999"] {
            assert!(parse_begin(&[b"retain", bad]).is_err(), "{bad:?}");
        }
        assert!(parse_begin(&[b"retain"]).is_err());
        let both = parse_begin(&[b"capture", b"retain", b"10"]).unwrap();
        assert!(both.capture && both.retain_ms == Some(10));
    }

    #[test]
    fn retry_with_or_without_attempts() {
        assert_eq!(parse_begin(&[b"RETRY"]).map(|o| o.retry), Ok(Some(None)));
        assert_eq!(
            parse_begin(&[b"retry", b"5"]).map(|o| o.retry),
            Ok(Some(Some(5)))
        );
        let o = parse_begin(&[b"RETRY", b"RETAIN", b"10"]).unwrap();
        assert_eq!((o.retry, o.retain_ms), (Some(None), Some(10)));
        assert!(parse_begin(&[b"retry", b"0"]).is_err());
        assert!(parse_begin(&[b"retry", b"retry"]).is_err());
    }

    #[test]
    fn junk_is_a_syntax_error() {
        let e = parse_begin(&[b"\r\nbad"]).unwrap_err().to_string();
        assert!(e.starts_with("ERR syntax error"), "{e}");
        assert!(!e.contains('\r') && !e.contains('\n'));
    }
}
