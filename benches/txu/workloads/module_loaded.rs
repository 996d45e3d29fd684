//! Plain SET on a server with the module loaded vs one without it: server CPU per SET and
//! throughput.

use super::VALUE;
use crate::client::Expect;
use crate::measure::{throughput_outcome, Ctx};
use crate::report::Outcome;
use crate::resp::push_command;
use crate::server::Server;
use crate::stats::paired_ratio;

/// Plain SET on a server with the module loaded vs one without it: two new servers, started
/// side by side for this workload (not the bench's long-lived one, whose memory has seen every
/// workload before), so that the module is the only difference.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let bare = Server::start_without_module();
    let loaded = Server::start();
    let key = |c: usize, t: usize| format!("w6:{c}:{t}").into_bytes();
    let build =
        |c: usize, t: usize, out: &mut Vec<u8>| push_command(out, &[b"SET", &key(c, t), VALUE]);
    let mut variants = vec![
        ctx.variant("without module", &bare, vec![Expect::ok()], build)?,
        ctx.variant("module loaded", &loaded, vec![Expect::ok()], build)?,
    ];
    let (mut out, m) =
        throughput_outcome(ctx, "module-loaded", "plain SET", "ops/s", &mut variants)?;
    out.target("module/set", paired_ratio(&m.cpu[0], &m.cpu[1]));
    out.notes.push(
        "two new servers of the same binary, measured alternately; cpu = each server's own".into(),
    );
    Ok(out)
}
