//! Who serves which slot, read from `CLUSTER NODES`. Pure: parsing and lookups, unit-tested
//! without a server (the executor asks the server for the text).

use std::collections::BTreeSet;

pub const SLOTS: usize = 16384;

/// What a node knows of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// This node serves it.
    Mine,
    /// This node serves it and is moving it to another node.
    Migrating,
    /// Another node serves it and is moving it here.
    Importing,
    /// Another node serves it (`host:port`).
    Elsewhere(String),
    /// Nobody serves it.
    Unassigned,
}

impl SlotState {
    /// Served here and not moving: txu may write it and keep its state for it.
    pub fn is_stably_mine(&self) -> bool {
        *self == SlotState::Mine
    }
}

#[derive(Debug, Clone)]
pub struct SlotMap {
    /// `host:port` of every node that serves slots.
    addrs: Vec<String>,
    /// Per slot, the index in `addrs` of its node.
    owner: Vec<Option<u16>>,
    me: Option<u16>,
    migrating: BTreeSet<u16>,
    importing: BTreeSet<u16>,
}

impl SlotMap {
    /// Parses the reply of `CLUSTER NODES`. Lines it cannot read are skipped.
    pub fn parse(text: &str) -> SlotMap {
        let mut m = SlotMap {
            addrs: Vec::new(),
            owner: vec![None; SLOTS],
            me: None,
            migrating: BTreeSet::new(),
            importing: BTreeSet::new(),
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            let myself = flags.split(',').any(|f| f == "myself");
            let slots = fields.get(8..).unwrap_or_default();
            if slots.is_empty() && !myself {
                continue;
            }
            // `ip:port@cport[,hostname]` → `ip:port`
            let addr = addr.split(['@', ',']).next().unwrap_or_default();
            let Ok(idx) = u16::try_from(m.addrs.len()) else {
                continue;
            };
            m.addrs.push(addr.to_string());
            if myself {
                m.me = Some(idx);
            }
            for s in slots {
                if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    // `[slot->-node]` migrating from this node, `[slot-<-node]` importing.
                    if let Some((slot, _)) = inner.split_once("->-") {
                        m.migrating.extend(slot.parse::<u16>().ok());
                    } else if let Some((slot, _)) = inner.split_once("-<-") {
                        m.importing.extend(slot.parse::<u16>().ok());
                    }
                    continue;
                }
                let (lo, hi) = match s.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                    None => (s.parse::<usize>(), s.parse::<usize>()),
                };
                let (Ok(lo), Ok(hi)) = (lo, hi) else {
                    continue;
                };
                for slot in lo..=hi.min(SLOTS - 1) {
                    if let Some(o) = m.owner.get_mut(slot) {
                        *o = Some(idx);
                    }
                }
            }
        }
        m
    }

    pub fn state(&self, slot: u16) -> SlotState {
        let owner = self.owner.get(usize::from(slot)).copied().flatten();
        match owner {
            Some(o) if Some(o) == self.me => {
                if self.migrating.contains(&slot) {
                    SlotState::Migrating
                } else {
                    SlotState::Mine
                }
            }
            _ if self.importing.contains(&slot) => SlotState::Importing,
            Some(o) => {
                SlotState::Elsewhere(self.addrs.get(usize::from(o)).cloned().unwrap_or_default())
            }
            None => SlotState::Unassigned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460 [5461-<-b2] [7000->-c3]
b2 127.0.0.1:7002@17002,host-b master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
";

    #[test]
    fn states_of_slots() {
        let m = SlotMap::parse(NODES);
        assert_eq!(m.state(0), SlotState::Mine);
        assert!(m.state(5460).is_stably_mine());
        assert_eq!(m.state(5461), SlotState::Importing);
        assert_eq!(m.state(5462), SlotState::Elsewhere("127.0.0.1:7002".into()));
        assert_eq!(
            m.state(16383),
            SlotState::Elsewhere("127.0.0.1:7003".into())
        );
        // A migrating mark on a slot this node does not list (yet) is not "mine".
        assert_eq!(m.state(7000), SlotState::Elsewhere("127.0.0.1:7002".into()));
    }

    #[test]
    fn migrating_and_unassigned() {
        let m = SlotMap::parse(
            "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-99 [42->-b2]\n",
        );
        assert_eq!(m.state(42), SlotState::Migrating);
        assert!(!m.state(42).is_stably_mine());
        assert_eq!(m.state(100), SlotState::Unassigned);
        let empty = SlotMap::parse("");
        assert_eq!(empty.state(0), SlotState::Unassigned);
        let junk = SlotMap::parse("x\n\ny y y y y y y y 9-x [q] 70000\n");
        assert_eq!(junk.state(9), SlotState::Unassigned);
    }
}
