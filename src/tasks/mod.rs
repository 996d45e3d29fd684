//! The failed-task list as a plain data model: which errors defer a transaction
//! (`classify`), how long a task waits before its next run (`backoff`), the ordered list
//! of pending and dead tasks itself (`list`), and the glob patterns operators select tasks
//! with (`glob`). Nothing here talks to the server; the module
//! stores a [`list::TaskList`] in the database and drives it from a timer.

pub mod backoff;
pub mod classify;
pub mod glob;
pub mod list;

pub use classify::{classify, ErrorClass};
