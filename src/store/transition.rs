//! What a change to the failed-task list did to a task (a *transition*), its keyspace event
//! and its notice-level log line.
//!
//! # Log lines in batches
//! Redis opens, writes and closes its log file for every line. When the timer applies a
//! hundred tasks in one tick, or a bulk `TXU.RETRY`/`TXU.DROP` touches thousands, one line
//! each costs the server's other clients their tail latency. Inside [`batch`], transitions of
//! the same kind (and for failures the same error) share lines of at most [`LINE_MAX`] bytes,
//! every task id still in a notice-level line; a group of one keeps the single-task line.

use crate::ffi::{context, CtxPtr};
use crate::tasks::list::TaskList;
use parking_lot::Mutex;
use std::ffi::CStr;

/// What an `Op` of the task list did to a task, for the keyspace event and the log line of each change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub id: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// A transaction was put on the list.
    Deferred,
    /// A run failed transiently and the task stays pending for another one.
    Retried,
    /// `TXU.RETRY`: a pending or dead task runs again at the next tick.
    Requeued,
    /// A run succeeded: the task left the list.
    Applied,
    /// The task moved to the dead list.
    Dead,
    /// `TXU.DROP`: the task was forgotten.
    Dropped,
}

impl TransitionKind {
    /// The keyspace event's name (class `d`, module events).
    pub fn event(self) -> &'static CStr {
        match self {
            TransitionKind::Deferred => c"txu.deferred",
            TransitionKind::Retried | TransitionKind::Requeued => c"txu.retried",
            TransitionKind::Applied => c"txu.applied",
            TransitionKind::Dead => c"txu.dead",
            TransitionKind::Dropped => c"txu.dropped",
        }
    }
}

impl Transition {
    /// `kind` happened to task `id`, as `list` holds it now (attempts and last error, when
    /// it is still on the list).
    pub(super) fn of(kind: TransitionKind, id: &str, list: &TaskList) -> Transition {
        let (attempts, max_attempts, last_error) = list
            .get(id)
            .map(|(t, _)| (t.attempts, t.max_attempts, t.last_error.clone()))
            .unwrap_or_default();
        Transition {
            kind,
            id: id.to_string(),
            attempts,
            max_attempts,
            last_error,
        }
    }

    /// The notice-level log line.
    pub fn log_line(&self) -> String {
        let id = &self.id;
        let (n, max, why) = (self.attempts, self.max_attempts, &self.last_error);
        match self.kind {
            TransitionKind::Deferred => format!("txu: task {id} deferred: {why}"),
            TransitionKind::Retried => {
                format!("txu: task {id} failed again (attempt {n} of {max}): {why}; will retry")
            }
            TransitionKind::Requeued => format!("txu: task {id} queued to run again (TXU.RETRY)"),
            TransitionKind::Applied => format!("txu: task {id} applied"),
            TransitionKind::Dead => format!("txu: task {id} is dead after {n} attempts: {why}"),
            TransitionKind::Dropped => format!("txu: task {id} dropped (TXU.DROP)"),
        }
    }
}

/// The longest batched line (Redis cuts a module's log line at 1024 bytes, its prefix
/// included).
pub const LINE_MAX: usize = 900;

/// Transitions waiting to be logged together: consecutive ones of one kind and error.
#[derive(Debug, Default)]
pub struct Lines {
    group: Vec<Transition>,
    bytes: usize,
}

impl Lines {
    /// Adds `t`; returns the line of the group it closes, if it closes one.
    pub fn add(&mut self, t: Transition) -> Option<String> {
        let same = self.group.first().is_some_and(|g| {
            g.kind == t.kind && (!t.kind.has_error() || g.last_error == t.last_error)
        });
        let entry = t.entry().len() + 2;
        let full = same && prefix(&t, self.group.len() + 1).len() + self.bytes + entry > LINE_MAX;
        let done = (!same || full).then(|| self.flush()).flatten();
        self.bytes += entry;
        self.group.push(t);
        done
    }

    /// The line of the open group, if any; the group is closed.
    pub fn flush(&mut self) -> Option<String> {
        let group = std::mem::take(&mut self.group);
        self.bytes = 0;
        match group.as_slice() {
            [] => None,
            [one] => Some(one.log_line()),
            [first, ..] => {
                let entries: Vec<String> = group.iter().map(Transition::entry).collect();
                Some(format!(
                    "{}{}",
                    prefix(first, group.len()),
                    entries.join(", ")
                ))
            }
        }
    }
}

/// The start of a batched line of `n` transitions like `t`.
fn prefix(t: &Transition, n: usize) -> String {
    let why = &t.last_error;
    match t.kind {
        TransitionKind::Deferred => format!("txu: {n} tasks deferred: {why}: "),
        TransitionKind::Retried => format!("txu: {n} tasks failed again and will retry: {why}: "),
        TransitionKind::Requeued => format!("txu: {n} tasks queued to run again (TXU.RETRY): "),
        TransitionKind::Applied => format!("txu: {n} tasks applied: "),
        TransitionKind::Dead => format!("txu: {n} tasks are dead: {why}: "),
        TransitionKind::Dropped => format!("txu: {n} tasks dropped (TXU.DROP): "),
    }
}

impl TransitionKind {
    /// Whether its line names the task's last error (which a batch then shares).
    fn has_error(self) -> bool {
        matches!(
            self,
            TransitionKind::Deferred | TransitionKind::Retried | TransitionKind::Dead
        )
    }
}

impl Transition {
    /// The task in a batched line: its id, and its attempts where the single line has them.
    fn entry(&self) -> String {
        let (id, n, max) = (&self.id, self.attempts, self.max_attempts);
        match self.kind {
            TransitionKind::Retried => format!("{id} (attempt {n} of {max})"),
            TransitionKind::Dead => format!("{id} (after {n} attempts)"),
            _ => id.clone(),
        }
    }
}

/// The open batch, while [`batch`] runs (the server's main thread only).
static BATCH: Mutex<Option<Lines>> = Mutex::new(None);

/// Logs `t` at notice level: now, or with its batch.
pub fn log(ctx: CtxPtr, t: &Transition) {
    let line = {
        let mut open = BATCH.lock();
        match open.as_mut() {
            Some(lines) => lines.add(t.clone()),
            None => Some(t.log_line()),
        }
    };
    if let Some(line) = line {
        context::log_notice(ctx, &line);
    }
}

/// Runs `f` with the log lines of its transitions batched; the last line is written when it
/// returns (or unwinds). Not nested: an inner call joins the outer batch.
pub fn batch<R>(ctx: CtxPtr, f: impl FnOnce() -> R) -> R {
    struct Flush(CtxPtr);
    impl Drop for Flush {
        fn drop(&mut self) {
            let line = BATCH.lock().take().and_then(|mut lines| lines.flush());
            if let Some(line) = line {
                context::log_notice(self.0, &line);
            }
        }
    }
    {
        let mut open = BATCH.lock();
        if open.is_some() {
            drop(open);
            return f();
        }
        *open = Some(Lines::default());
    }
    let _flush = Flush(ctx);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: TransitionKind, id: &str, why: &str) -> Transition {
        Transition {
            kind,
            id: id.into(),
            attempts: 2,
            max_attempts: 5,
            last_error: why.into(),
        }
    }

    fn all(items: Vec<Transition>) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out: Vec<String> = items.into_iter().filter_map(|i| lines.add(i)).collect();
        out.extend(lines.flush());
        out
    }

    #[test]
    fn a_group_of_one_keeps_the_single_line() {
        let one = t(TransitionKind::Applied, "1-1", "");
        assert_eq!(all(vec![one.clone()]), [one.log_line()]);
        assert_eq!(one.log_line(), "txu: task 1-1 applied");
    }

    #[test]
    fn same_kind_and_error_share_a_line_and_every_id_is_named() {
        use TransitionKind::*;
        let lines = all(vec![
            t(Applied, "1-1", ""),
            t(Applied, "1-2", ""),
            t(Retried, "1-3", "OOM x"),
            t(Retried, "1-4", "OOM x"),
            t(Retried, "1-5", "NOREPLICAS y"),
            t(Dead, "1-6", "OOM x"),
            t(Dropped, "1-7", ""),
            t(Dropped, "1-8", ""),
        ]);
        assert_eq!(
            lines,
            [
                "txu: 2 tasks applied: 1-1, 1-2",
                "txu: 2 tasks failed again and will retry: OOM x: 1-3 (attempt 2 of 5), 1-4 \
                 (attempt 2 of 5)",
                "txu: task 1-5 failed again (attempt 2 of 5): NOREPLICAS y; will retry",
                "txu: task 1-6 is dead after 2 attempts: OOM x",
                "txu: 2 tasks dropped (TXU.DROP): 1-7, 1-8",
            ]
        );
    }

    #[test]
    fn lines_stay_short_and_lose_no_task() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("1796103600191-{i:020}"))
            .collect();
        let items = ids
            .iter()
            .map(|id| t(TransitionKind::Applied, id, ""))
            .collect();
        let lines = all(items);
        assert!(lines.iter().all(|l| l.len() <= LINE_MAX), "{lines:?}");
        assert!(lines.len() < 50, "{} lines", lines.len());
        let named: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.split_once(" applied: ").map(|(_, r)| r.split(", ")))
            .flatten()
            .collect();
        assert_eq!(named, ids.iter().map(String::as_str).collect::<Vec<_>>());
        // A counted prefix matches its entries.
        for l in &lines {
            let n: usize = l[5..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert_eq!(n, l.matches(", ").count() + 1, "{l}");
        }
        // An error too long to share a line: one line per task, nothing lost.
        let long = "E".repeat(2000);
        let lines = all(vec![
            t(TransitionKind::Dead, "a", &long),
            t(TransitionKind::Dead, "b", &long),
        ]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("task a is dead") && lines[1].contains("task b is dead"));
    }
}
