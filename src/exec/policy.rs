//! Which commands may be queued in a txu transaction, and what we know about a command.
//! Pure: no Redis types, unit-tested without a server.
//!
//! The rule: a transaction may contain anything whose effects are confined to keys the server
//! can name (so their pre-images can be taken and put back), and nothing that acts on the
//! connection or the server, blocks, or cannot be undone.

/// The command flags txu cares about, as `COMMAND INFO` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    pub write: bool,
    pub admin: bool,
    pub pubsub: bool,
    pub noscript: bool,
    pub blocking: bool,
    pub no_multi: bool,
    pub denyoom: bool,
    /// Another module's command (its failures may leave partial effects).
    pub module: bool,
    /// Runs while a script is busy (`SCRIPT KILL`, `SHUTDOWN`...).
    pub allow_busy: bool,
}

impl Traits {
    /// Builds traits from the flag names `COMMAND INFO` returns.
    pub fn from_flags<'a>(flags: impl IntoIterator<Item = &'a [u8]>) -> Traits {
        let mut t = Traits::default();
        for f in flags {
            match f {
                b"write" => t.write = true,
                b"admin" => t.admin = true,
                b"pubsub" => t.pubsub = true,
                b"noscript" => t.noscript = true,
                b"blocking" => t.blocking = true,
                b"no_multi" => t.no_multi = true,
                b"denyoom" => t.denyoom = true,
                b"module" => t.module = true,
                b"allow_busy" => t.allow_busy = true,
                _ => {}
            }
        }
        t
    }
}

/// Why a command is refused at queue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Nested,
    Txu,
    Blocks,
    Connection,
    PubSub,
    Scripting,
    Admin,
    WholeDataset,
    OtherDatabase,
    KeylessWrite,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Nested => "transactions cannot be nested",
            Refusal::Txu => "TXU commands cannot be queued",
            Refusal::Blocks => "it can block the server",
            Refusal::Connection => "it acts on the connection, not on keys",
            Refusal::PubSub => "pub/sub acts on connections, not on keys, and cannot be undone",
            Refusal::Scripting => "it manages scripts and functions, not keys",
            Refusal::Admin => "it administers the server, not keys",
            Refusal::WholeDataset => "it changes whole databases and cannot be undone",
            Refusal::OtherDatabase => "it writes to another database",
            Refusal::KeylessWrite => "it writes without naming its keys, so it cannot be undone",
        }
    }
}

/// Whether [`check`] looks at the arguments of command `name` (the others are decided by
/// name and flags alone, so the caller need not gather them).
pub fn reads_args(name: &str) -> bool {
    matches!(name, "xread" | "xreadgroup" | "copy")
}

/// Decides whether a command may be queued. `name` is the lowercase command name (the
/// container's for subcommands), `args` the arguments after the name, `nkeys` the number of
/// keys the server found in it.
pub fn check(name: &str, t: &Traits, args: &[&[u8]], nkeys: usize) -> Result<(), Refusal> {
    if name.starts_with("txu.") {
        return Err(Refusal::Txu);
    }
    let by_name = match name {
        "multi" | "exec" | "discard" | "watch" | "unwatch" => Some(Refusal::Nested),
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "blmpop" | "bzpopmin" | "bzpopmax"
        | "bzmpop" | "wait" | "waitaof" => Some(Refusal::Blocks),
        "xread" | "xreadgroup" => has_block_option(args).then_some(Refusal::Blocks),
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ssubscribe"
        | "sunsubscribe" | "publish" | "spublish" | "pubsub" => Some(Refusal::PubSub),
        "select" | "auth" | "hello" | "client" | "reset" | "quit" | "readonly" | "readwrite"
        | "asking" | "monitor" => Some(Refusal::Connection),
        "flushall" | "flushdb" | "swapdb" => Some(Refusal::WholeDataset),
        "move" => Some(Refusal::OtherDatabase),
        "copy" => has_db_option(args).then_some(Refusal::OtherDatabase),
        // Scripts run (see `exec::script`); managing them is not data.
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => return Ok(()),
        "script" | "function" => Some(Refusal::Scripting),
        "config" | "debug" | "shutdown" | "module" | "acl" | "save" | "bgsave" | "bgrewriteaof"
        | "replicaof" | "slaveof" | "failover" | "cluster" | "migrate" | "sync" | "psync"
        | "replconf" | "restore-asking" | "pfdebug" | "pfselftest" => Some(Refusal::Admin),
        _ => None,
    };
    if let Some(r) = by_name {
        return Err(r);
    }
    // Flags catch what the names miss (other modules' commands, newer servers).
    if t.no_multi {
        return Err(Refusal::Nested);
    }
    if t.pubsub {
        return Err(Refusal::PubSub);
    }
    if t.admin {
        return Err(Refusal::Admin);
    }
    if t.noscript {
        return Err(Refusal::Connection);
    }
    if t.blocking && name != "xread" && name != "xreadgroup" {
        return Err(Refusal::Blocks);
    }
    if t.write && nkeys == 0 {
        return Err(Refusal::KeylessWrite);
    }
    Ok(())
}

/// XREAD/XREADGROUP: a `BLOCK` option before `STREAMS` (after it, words are keys and ids).
fn has_block_option(args: &[&[u8]]) -> bool {
    for a in args {
        if a.eq_ignore_ascii_case(b"streams") {
            return false;
        }
        if a.eq_ignore_ascii_case(b"block") {
            return true;
        }
    }
    false
}

/// COPY src dst [DB n] [REPLACE]: any DB option (the words after the two keys).
fn has_db_option(args: &[&[u8]]) -> bool {
    args.iter().skip(2).any(|a| a.eq_ignore_ascii_case(b"db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Traits {
        Traits {
            write: true,
            ..Traits::default()
        }
    }

    #[test]
    fn ordinary_commands_are_allowed() {
        assert_eq!(check("set", &w(), &[b"k", b"v"], 1), Ok(()));
        assert_eq!(check("get", &Traits::default(), &[b"k"], 1), Ok(()));
        assert_eq!(check("ping", &Traits::default(), &[], 0), Ok(()));
        assert_eq!(check("copy", &w(), &[b"a", b"b", b"REPLACE"], 2), Ok(()));
        assert_eq!(check("mymod.set", &w(), &[b"k"], 1), Ok(()));
    }

    #[test]
    fn transaction_and_txu_commands_are_refused() {
        for n in ["multi", "exec", "discard", "watch", "unwatch"] {
            assert_eq!(check(n, &Traits::default(), &[], 0), Err(Refusal::Nested));
        }
        assert_eq!(
            check("txu.begin", &Traits::default(), &[], 0),
            Err(Refusal::Txu)
        );
        assert_eq!(
            check("txu.exec", &Traits::default(), &[], 0),
            Err(Refusal::Txu)
        );
    }

    #[test]
    fn blocking_commands_are_refused() {
        for n in [
            "blpop", "brpop", "blmove", "blmpop", "bzpopmin", "bzpopmax", "bzmpop", "wait",
            "waitaof",
        ] {
            assert_eq!(
                check(n, &w(), &[b"k", b"0"], 1),
                Err(Refusal::Blocks),
                "{n}"
            );
        }
        let rt = Traits::default();
        assert_eq!(
            check("xread", &rt, &[b"BLOCK", b"0", b"STREAMS", b"s", b"$"], 1),
            Err(Refusal::Blocks)
        );
        assert_eq!(
            check("xread", &rt, &[b"COUNT", b"1", b"STREAMS", b"s", b"0"], 1),
            Ok(())
        );
        // A stream named "block" after STREAMS is a key, not the option.
        assert_eq!(
            check("xread", &rt, &[b"STREAMS", b"block", b"0"], 1),
            Ok(())
        );
        let blocking = Traits {
            blocking: true,
            ..Traits::default()
        };
        assert_eq!(
            check("xread", &blocking, &[b"STREAMS", b"s", b"0"], 1),
            Ok(())
        );
        assert_eq!(
            check("othermod.bpop", &blocking, &[b"k"], 1),
            Err(Refusal::Blocks)
        );
    }

    #[test]
    fn connection_server_and_dataset_commands_are_refused() {
        let cases = [
            ("select", Refusal::Connection),
            ("client", Refusal::Connection),
            ("hello", Refusal::Connection),
            ("publish", Refusal::PubSub),
            ("subscribe", Refusal::PubSub),
            ("flushall", Refusal::WholeDataset),
            ("swapdb", Refusal::WholeDataset),
            ("move", Refusal::OtherDatabase),
            ("script", Refusal::Scripting),
            ("function", Refusal::Scripting),
            ("config", Refusal::Admin),
            ("migrate", Refusal::Admin),
            ("shutdown", Refusal::Admin),
        ];
        for (n, r) in cases {
            assert_eq!(check(n, &Traits::default(), &[], 0), Err(r), "{n}");
        }
        assert_eq!(
            check("copy", &w(), &[b"a", b"b", b"DB", b"1"], 2),
            Err(Refusal::OtherDatabase)
        );
    }

    #[test]
    fn scripts_and_functions_run_whatever_their_flags() {
        // EVAL and FCALL are `noscript` (and may not be `write`): allowed by name.
        let noscript = Traits {
            noscript: true,
            ..Traits::default()
        };
        for n in [
            "eval",
            "evalsha",
            "eval_ro",
            "evalsha_ro",
            "fcall",
            "fcall_ro",
        ] {
            assert_eq!(check(n, &noscript, &[], 0), Ok(()), "{n}");
        }
    }

    #[test]
    fn flags_refuse_unknown_names() {
        let admin = Traits {
            admin: true,
            ..Traits::default()
        };
        assert_eq!(check("othermod.admin", &admin, &[], 0), Err(Refusal::Admin));
        assert_eq!(
            check("othermod.keyless", &w(), &[], 0),
            Err(Refusal::KeylessWrite)
        );
    }

    #[test]
    fn only_the_commands_said_to_read_arguments_depend_on_them() {
        let argsets: [&[&[u8]]; 4] = [
            &[],
            &[b"BLOCK", b"0", b"STREAMS", b"s", b"$"],
            &[b"a", b"b", b"DB", b"1"],
            &[b"k", b"v"],
        ];
        for name in [
            "xread",
            "xreadgroup",
            "copy",
            "set",
            "get",
            "blpop",
            "eval",
            "config",
            "multi",
            "subscribe",
            "select",
            "move",
            "flushall",
            "hset",
            "txu.run",
        ] {
            let results: Vec<_> = argsets
                .iter()
                .map(|a| check(name, &w(), a, 1).map_err(|r| r.reason()))
                .collect();
            let all_same = results.windows(2).all(|p| p[0] == p[1]);
            assert!(
                all_same || reads_args(name),
                "{name}: its arguments matter, reads_args must say so"
            );
        }
    }

    #[test]
    fn traits_parse_flag_names() {
        let t = Traits::from_flags([&b"write"[..], b"denyoom", b"fast"]);
        assert!(t.write && t.denyoom && !t.admin);
    }
}
