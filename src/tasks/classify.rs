//! Transient or permanent: decides whether a failed deferrable transaction is retried later.
//!
//! The decision is made on the error *code* alone: the first word of the error text (before
//! the first space; a leading `-` from the wire format is ignored), compared exactly and
//! case-sensitively with [`TRANSIENT_CODES`]. Codes that merely start like a transient one
//! (`BUSYGROUP`, `BUSYKEY`, `OOMX`, ...) are permanent, as is everything unknown.

/// Whether a failure is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The server could not run the command right now; the same command may succeed later.
    Transient,
    /// The command itself is wrong (type, syntax, permission, ...); retrying cannot help.
    Permanent,
}

impl ErrorClass {
    pub fn is_transient(self) -> bool {
        self == ErrorClass::Transient
    }
}

/// The error codes that defer a transaction. The one place this list lives.
pub const TRANSIENT_CODES: [&str; 11] = [
    "OOM",         // over maxmemory (noeviction)
    "BUSY",        // a script or function is running too long
    "LOADING",     // the dataset is still loading
    "MISCONF",     // writes refused after a failed background save
    "READONLY",    // this server became a replica
    "MASTERDOWN",  // replica-serve-stale-data no, link down
    "NOREPLICAS",  // min-replicas-to-write not met
    "TRYAGAIN",    // cluster: keys of a slot being migrated
    "CLUSTERDOWN", // cluster: slot not served
    "MOVED",       // cluster: the slot moved (the task moves with it)
    "ASK",         // cluster: the slot is being migrated
];

/// Errors of the module call API in a cluster that carry no code of their own: the cluster is
/// down, or the key's slot is not served here (it moved). Recognised by their whole text.
const TRANSIENT_TEXTS: [&[u8]; 2] = [
    b"ERR Can not execute a command ",
    b"ERR Attempted to access a non local key in a cluster node",
];

/// The error code of an error text: its first word, without a leading `-`.
pub fn error_code(error: &[u8]) -> &[u8] {
    let text = error.strip_prefix(b"-").unwrap_or(error);
    text.split(|&b| b == b' ' || b == b'\r' || b == b'\n' || b == b'\t')
        .next()
        .unwrap_or(text)
}

/// Classifies an error reply's text, e.g. `OOM command not allowed when used memory > ...`.
pub fn classify(error: &[u8]) -> ErrorClass {
    let code = error_code(error);
    let text = error.strip_prefix(b"-").unwrap_or(error);
    let cluster_down =
        |t: &[u8]| t.starts_with(TRANSIENT_TEXTS[0]) && t.ends_with(b"while the cluster is down");
    if TRANSIENT_CODES.iter().any(|c| c.as_bytes() == code)
        || cluster_down(text)
        || text.starts_with(TRANSIENT_TEXTS[1])
    {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    #[test]
    fn cluster_errors_of_the_call_api_are_transient_by_their_text() {
        for e in [
            &b"ERR Can not execute a command 'rpush' while the cluster is down"[..],
            b"-ERR Can not execute a command 'set' while the cluster is down",
            b"ERR Attempted to access a non local key in a cluster node",
            b"MOVED 12182 127.0.0.1:7001",
            b"ASK 12182 127.0.0.1:7001",
        ] {
            assert_eq!(
                classify(e),
                ErrorClass::Transient,
                "{}",
                String::from_utf8_lossy(e)
            );
        }
        for e in [
            &b"ERR Can not execute a command 'set'"[..],
            b"ERR value is not an integer or out of range",
            b"MOVEDX 1 a:1",
        ] {
            assert_eq!(
                classify(e),
                ErrorClass::Permanent,
                "{}",
                String::from_utf8_lossy(e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transient_code_is_transient() {
        for code in TRANSIENT_CODES {
            let bare = code.as_bytes().to_vec();
            let with_text = format!("{code} something went wrong").into_bytes();
            let dashed = format!("-{code} something went wrong").into_bytes();
            let dashed_bare = format!("-{code}").into_bytes();
            let crlf = format!("-{code} text\r\n").into_bytes();
            for e in [bare, with_text, dashed, dashed_bare, crlf] {
                assert_eq!(
                    classify(&e),
                    ErrorClass::Transient,
                    "{}",
                    String::from_utf8_lossy(&e)
                );
            }
        }
    }

    #[test]
    fn the_real_server_messages() {
        let transient: &[&[u8]] = &[
            b"OOM command not allowed when used memory > 'maxmemory'.",
            b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            b"LOADING Redis is loading the dataset in memory",
            b"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            b"READONLY You can't write against a read only replica.",
            b"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            b"NOREPLICAS Not enough good replicas to write.",
            b"TRYAGAIN Multiple keys request during rehashing of slot",
            b"CLUSTERDOWN The cluster is down",
        ];
        for e in transient {
            assert_eq!(classify(e), ErrorClass::Transient);
            assert!(classify(e).is_transient());
        }
    }

    #[test]
    fn look_alikes_and_other_codes_are_permanent() {
        let permanent: &[&[u8]] = &[
            b"BUSYGROUP Consumer Group name already exists",
            b"BUSYKEY Target key name already exists.",
            b"NOPERM User default has no permissions to run the 'set' command",
            b"WRONGTYPE Operation against a key holding the wrong kind of value",
            b"ERR unknown command",
            b"EXECABORT Transaction discarded because of previous errors.",
            b"NOSCRIPT No matching script.",
            b"CROSSSLOT Keys in request don't hash to the same slot",
            b"NOAUTH Authentication required.",
            b"OOMX",
            b"XOOM",
            b"oom command not allowed",
            b"Oom",
            b"BUSY_",
            b"READONLYX",
            b"LOADINGS",
            b"MISCONFIG",
            b"TRYAGAIN2",
            b"CLUSTERDOWNX",
            b"NOREPLICA",
            b"MASTER",
            b"--OOM",
            b" OOM leading space",
            b"OOM\0",
            b"",
            b"-",
            b" ",
            b"\xff\xfe",
        ];
        for e in permanent {
            assert_eq!(
                classify(e),
                ErrorClass::Permanent,
                "{}",
                String::from_utf8_lossy(e)
            );
        }
    }

    #[test]
    fn every_prefix_and_extension_of_a_code_is_permanent() {
        for code in TRANSIENT_CODES {
            let b = code.as_bytes();
            for n in 0..b.len() {
                let prefix = &b[..n];
                // "BUSY" is itself a transient code and a prefix of nothing shorter in the list.
                if TRANSIENT_CODES.iter().any(|c| c.as_bytes() == prefix) {
                    continue;
                }
                assert_eq!(classify(prefix), ErrorClass::Permanent, "{code}[..{n}]");
            }
            for suffix in ["GROUP", "KEY", "X", "_", "1", "-"] {
                let e = format!("{code}{suffix} text");
                assert_eq!(classify(e.as_bytes()), ErrorClass::Permanent, "{e}");
            }
        }
    }

    #[test]
    fn error_code_is_the_first_word() {
        assert_eq!(error_code(b"-ERR x y"), b"ERR");
        assert_eq!(error_code(b"WRONGTYPE"), b"WRONGTYPE");
        assert_eq!(error_code(b""), b"");
        assert_eq!(error_code(b"-"), b"");
        assert_eq!(error_code(b"OOM\r\n"), b"OOM");
    }
}
