//! Which kind of command a client is running, as the command filter saw it (cluster mode):
//! values of txu's types that arrive by `RESTORE-ASKING` are a slot moving here with its
//! tasks and undo logs, and keys that `MIGRATE` deletes are moving away, not changing.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Other,
    Migrate,
    RestoreAsking,
}

static CURRENT: AtomicU8 = AtomicU8::new(0);

pub fn set_current(c: Command) {
    let v = match c {
        Command::Other => 0,
        Command::Migrate => 1,
        Command::RestoreAsking => 2,
    };
    CURRENT.store(v, Ordering::Relaxed);
}

pub fn current() -> Command {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Command::Migrate,
        2 => Command::RestoreAsking,
        _ => Command::Other,
    }
}
