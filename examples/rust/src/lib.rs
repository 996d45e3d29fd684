//! What both examples share: txu's outcomes as a type, and building `TXU.RUN`.
//! (An application would keep these few lines in its own code.)

use redis::{ErrorKind, RedisError, RedisResult, Value};

/// What a txu transaction did: the application branches on this, not on error strings.
#[derive(Debug)]
pub enum Outcome {
    /// Every command ran; their replies, in order.
    Committed(Vec<Value>),
    /// Command `command` (1-based, named `name`) failed with `error`; every earlier
    /// write of the transaction was undone.
    RolledBack { command: usize, name: String, error: String },
    /// A `RETRY` transaction hit a transient fault (NOREPLICAS, OOM, ...): it was rolled
    /// back and is now deferred task `task`, which the server retries by itself.
    Deferred { task: String, why: String },
    /// `key` waits for deferred task `task`; nothing was applied.
    Pending { key: String, task: String },
    /// Refused before anything ran (EXECABORT); nothing was applied.
    Refused(String),
}

/// Turns the reply of `TXU.RUN` / `TXU.EXEC` into an `Outcome`. Any other error
/// (`ERR` syntax, `NOPERM`, I/O, ...) stays a `RedisError`.
///
/// What the crate gives: a reply like `-ROLLBACK command 2 ...` becomes a `RedisError`
/// whose `kind()` is `ErrorKind::Extension` (the crate does not know txu's codes),
/// `code()` is `Some("ROLLBACK")` (the first word) and `detail()` is the rest.
/// `EXECABORT` is a code the crate knows: `ErrorKind::Server(ServerErrorKind::ExecAbort)`.
/// So match on `code()`, which works for both.
pub fn outcome(reply: RedisResult<Value>) -> RedisResult<Outcome> {
    let err = match reply {
        Ok(Value::Array(replies)) => return Ok(Outcome::Committed(replies)),
        Ok(other) => return Err(unexpected("an array of replies", &other)),
        Err(err) => err,
    };
    let detail = err.detail().unwrap_or("").to_string();
    let parsed = match err.code() {
        // "command <k> (<NAME>) failed: <the command's own error>"
        Some("ROLLBACK") => (|| {
            let rest = detail.strip_prefix("command ")?;
            let (k, rest) = rest.split_once(" (")?;
            let (name, error) = rest.split_once(") failed: ")?;
            Some(Outcome::RolledBack {
                command: k.parse().ok()?,
                name: name.to_string(),
                error: error.to_string(),
            })
        })(),
        // "<txid> <why>"
        Some("DEFERRED") => detail
            .split_once(' ')
            .map(|(task, why)| Outcome::Deferred { task: task.to_string(), why: why.to_string() }),
        // "key '<key>' waits for deferred task <task>; nothing was applied (...)"
        Some("PENDING") => (|| {
            let rest = detail.strip_prefix("key '")?;
            let (key, rest) = rest.rsplit_once("' waits for deferred task ")?;
            let (task, _) = rest.split_once(';')?;
            Some(Outcome::Pending { key: key.to_string(), task: task.to_string() })
        })(),
        Some("EXECABORT") => Some(Outcome::Refused(detail.clone())),
        _ => None,
    };
    parsed.ok_or(err)
}

pub fn unexpected(wanted: &str, got: &Value) -> RedisError {
    let detail = format!("expected {wanted}, got {got:?}");
    (ErrorKind::UnexpectedReturnType, "unexpected txu reply", detail).into()
}

/// Builds `TXU.RUN [options...] <argc> <command> [arg ...] ...`: the argument count of
/// each command (its name included) is put in front of it.
pub fn txu_run(options: &[&str], commands: &[&[&str]]) -> redis::Cmd {
    let mut cmd = redis::cmd("TXU.RUN");
    cmd.arg(options);
    for command in commands {
        cmd.arg(command.len()).arg(*command);
    }
    cmd
}
