//! Redis Cluster: a transaction lives in one slot served by this node. `TXU.RUN` declares its
//! keys and the server routes it; the three-command form is checked here, at queue time and
//! again at `TXU.EXEC`, with the errors cluster clients know (`MOVED`, `TRYAGAIN`,
//! `CROSSSLOT`).

use super::txn::Queued;
use crate::cluster::{SlotMap, SlotState};
use crate::error::TxuError;
use crate::ffi::{call, CtxPtr};
use crate::store::keyname::slot_of;
use crate::store::migration;

/// Whether the server runs in cluster mode (read once at load: no call on the hot path).
pub fn enabled() -> bool {
    crate::store::cluster_mode()
}

/// The slot map as this node sees it now (`CLUSTER NODES`); `None` outside cluster mode.
pub fn slot_map(ctx: CtxPtr) -> Option<SlotMap> {
    if !enabled() {
        return None;
    }
    let r = call::call_plain(ctx, c"CLUSTER", &[b"NODES"]).ok()?;
    let text = String::from_utf8_lossy(r.as_ref().bytes()).into_owned();
    Some(SlotMap::parse(&text))
}

/// The one slot of a queued command's keys; `Err(CrossSlot)` for keys in two slots.
fn command_slot(q: &Queued) -> Result<Option<u16>, TxuError> {
    let mut slot = None;
    for &p in &q.keys {
        let Some(k) = q.argv.get(p) else {
            continue;
        };
        let s = slot_of(k.as_bytes());
        match slot {
            Some(prev) if prev != s => return Err(TxuError::CrossSlot),
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

/// The error for a slot this node cannot take a transaction on now, if any.
pub fn slot_refusal(map: &SlotMap, slot: u16) -> Option<TxuError> {
    match map.state(slot) {
        SlotState::Mine => None,
        SlotState::Migrating | SlotState::Importing => Some(TxuError::TryAgain(slot)),
        SlotState::Elsewhere(addr) => Some(TxuError::Moved { slot, addr }),
        SlotState::Unassigned => Some(TxuError::ClusterDown(slot)),
    }
}

/// `TXU.QUEUE` in cluster mode: the command's keys must be in the transaction's slot (the first
/// keyed command sets it), served by this node and not moving. Returns the transaction's slot.
pub fn check_queued(
    ctx: CtxPtr,
    tx_slot: Option<u16>,
    q: &Queued,
) -> Result<Option<u16>, TxuError> {
    if !enabled() {
        return Ok(None);
    }
    let Some(slot) = command_slot(q)? else {
        return Ok(tx_slot);
    };
    if tx_slot.is_some_and(|t| t != slot) {
        return Err(TxuError::CrossSlot);
    }
    if let Some(map) = slot_map(ctx) {
        if let Some(e) = slot_refusal(&map, slot) {
            return Err(e);
        }
    }
    Ok(Some(slot))
}

/// `TXU.EXEC` in cluster mode: the slot may have started moving, or moved, since the commands
/// were queued; then nothing runs and the client retries.
pub fn check_exec(ctx: CtxPtr, tx_slot: Option<u16>) -> Result<(), TxuError> {
    // Only a transaction with keys has a slot: the map is read only then.
    let Some(slot) = tx_slot else {
        return Ok(());
    };
    slot_map(ctx)
        .and_then(|map| slot_refusal(&map, slot))
        .map_or(Ok(()), Err)
}

/// Notes the name of the command a client is about to run (from the command filter, cluster
/// mode only): a `MIGRATE` or a `RESTORE-ASKING` moves keys between nodes.
pub fn note_command(name: &[u8]) {
    let kind = if name.eq_ignore_ascii_case(b"migrate") {
        migration::Command::Migrate
    } else if name.eq_ignore_ascii_case(b"restore-asking") {
        migration::Command::RestoreAsking
    } else {
        migration::Command::Other
    };
    migration::set_current(kind);
}

/// Whether a keyspace event is a key moving with its slot rather than a change.
pub fn moving_keys(event: &[u8]) -> bool {
    match migration::current() {
        migration::Command::Migrate => event == b"del",
        migration::Command::RestoreAsking => event == b"restore",
        migration::Command::Other => false,
    }
}
