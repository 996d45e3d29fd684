//! A Redis Cluster owned by a test: N primaries with R replicas each, every node a [`Server`]
//! (the built module loaded, its own temp dir and free loopback port, killed on drop) started
//! with `--cluster-enabled yes`, joined with `redis-cli --cluster create`, and the operations
//! tests need on it: where a key lives, moving a slot the way `redis-cli --cluster reshard`
//! does, manual and automatic failover, node restarts, `redis-cli --cluster check`, `redis-cli
//! -c` sessions, and [`ClusterClient`], a raw RESP client that follows `MOVED` and `ASK`.
//!
//! Nodes are numbered in start order (`0 .. primaries × (1 + replicas)`); roles change with
//! failovers, so ask [`Cluster::primaries`], [`Cluster::replicas_of`] and [`Cluster::owner`]
//! instead of assuming them. Every wait polls a condition with a deadline and, when it runs
//! out, panics with the last state it saw.
//!
//! Environment, on top of `TXU_SERVER`/`TXU_MODULE` (see [`super::server`]):
//! - `TXU_CLI`: the redis-cli to use. Default: a `redis-cli` or `valkey-cli` next to the server
//!   binary, else `redis-cli` on `PATH` (Debian's redis-cli 7.0 drives Valkey clusters too).

use super::resp::{array_items, bulk_body, esc, parse_info, show, RawConn};
use super::server::{server_binary, wait_replica_synced, Server};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Hash slots of Redis Cluster.
pub const SLOTS: u16 = 16384;
/// `cluster-node-timeout` of every node: short, so failure detection and failover are fast.
pub const NODE_TIMEOUT_MS: u64 = 1000;
/// How long the cluster may take to reach a stable state (after create, a slot move, a
/// failover, a restart).
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// Keys moved per `MIGRATE` (redis-cli's `--cluster-pipeline` default is 10; more is fine).
const MIGRATE_BATCH: usize = 100;
/// Poll interval of the waits.
const POLL: Duration = Duration::from_millis(20);

// ----- slots ---------------------------------------------------------------------------------

/// CRC16-XMODEM, the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`, honouring a non-empty `{hash tag}` (what `CLUSTER KEYSLOT` says).
pub fn key_slot(key: &[u8]) -> u16 {
    let part = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(part) % SLOTS
}

/// A short hash tag (without braces) whose slot is `slot`.
pub fn tag_for_slot(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<Option<String>> = vec![None; usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n: u64 = 0;
        while missing > 0 {
            let s = format!("t{n}");
            let t = &mut tags[usize::from(key_slot(s.as_bytes()))];
            if t.is_none() {
                *t = Some(s);
                missing -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(Option::unwrap_or_default).collect()
    });
    &tags[usize::from(slot % SLOTS)]
}

/// A key named `name` in `slot`: `{<tag>}name`.
pub fn key_in_slot(slot: u16, name: &str) -> String {
    format!("{{{}}}{name}", tag_for_slot(slot))
}

// ----- CLUSTER NODES -------------------------------------------------------------------------

/// One line of `CLUSTER NODES`: how the node that answered sees one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The primary's id for a replica.
    pub master: Option<String>,
    pub connected: bool,
    pub config_epoch: u64,
    /// Slot ranges served, inclusive.
    pub slots: Vec<(u16, u16)>,
    /// `[slot->-id]`: slots this node is migrating to `id`.
    pub migrating: Vec<(u16, String)>,
    /// `[slot-<-id]`: slots this node is importing from `id`.
    pub importing: Vec<(u16, String)>,
}

impl NodeLine {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn is_myself(&self) -> bool {
        self.has("myself")
    }

    pub fn is_master(&self) -> bool {
        self.has("master")
    }

    pub fn is_replica(&self) -> bool {
        self.has("slave") || self.has("replica")
    }

    /// Flagged failing, half-known or address-less.
    pub fn is_troubled(&self) -> bool {
        ["fail", "fail?", "handshake", "noaddr"]
            .iter()
            .any(|f| self.has(f))
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// Parses the text of `CLUSTER NODES`.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("short CLUSTER NODES line {line:?}"));
        }
        let addr = f[1].split(['@', ',']).next().unwrap_or("");
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut n = NodeLine {
            id: f[0].to_string(),
            port,
            flags: f[2].split(',').map(str::to_string).collect(),
            master: (f[3] != "-").then(|| f[3].to_string()),
            connected: f[7] == "connected",
            config_epoch: f[6].parse().unwrap_or(0),
            slots: Vec::new(),
            migrating: Vec::new(),
            importing: Vec::new(),
        };
        for s in &f[8..] {
            let num = |t: &str| {
                t.parse::<u16>()
                    .map_err(|_| format!("bad slot {t:?} in {line:?}"))
            };
            if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                if let Some((slot, id)) = inner.split_once("->-") {
                    n.migrating.push((num(slot)?, id.to_string()));
                } else if let Some((slot, id)) = inner.split_once("-<-") {
                    n.importing.push((num(slot)?, id.to_string()));
                } else {
                    return Err(format!("bad open slot {s:?} in {line:?}"));
                }
            } else if let Some((a, b)) = s.split_once('-') {
                n.slots.push((num(a)?, num(b)?));
            } else {
                let a = num(s)?;
                n.slots.push((a, a));
            }
        }
        out.push(n);
    }
    Ok(out)
}

/// Slot ranges `(first, last, primary id)`, sorted.
pub type SlotMap = Vec<(u16, u16, String)>;

/// The slot map of a view: `(first, last, primary id)` ranges, sorted, adjacent ranges of one
/// primary merged; also the number of slots covered.
pub fn slot_map(view: &[NodeLine]) -> (SlotMap, usize) {
    let mut ranges: Vec<(u16, u16, String)> = view
        .iter()
        .filter(|n| n.is_master())
        .flat_map(|n| n.slots.iter().map(move |&(a, b)| (a, b, n.id.clone())))
        .collect();
    ranges.sort();
    let mut merged: SlotMap = Vec::new();
    for (a, b, id) in ranges {
        match merged.last_mut() {
            Some(last) if last.2 == id && u32::from(last.1) + 1 == u32::from(a) => last.1 = b,
            _ => merged.push((a, b, id)),
        }
    }
    let covered = merged.iter().map(|(a, b, _)| usize::from(b - a) + 1).sum();
    (merged, covered)
}

// ----- ports and tools -----------------------------------------------------------------------

/// A port for a node's cluster bus (`--cluster-port`), free a moment ago. Taken below the
/// kernel's ephemeral range, where [`Server`]'s own ports (and other tests' sockets) never
/// land, from a per-process sequence, so parallel tests in one process do not collide.
fn bus_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12000;
    let offset = (std::process::id() * 331) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free cluster bus port in {LOW}..{}", LOW + SPAN);
}

/// The redis-cli that drives the cluster (see the module docs).
pub fn cli_binary() -> String {
    if let Ok(c) = std::env::var("TXU_CLI") {
        if !c.is_empty() {
            return c;
        }
    }
    let server = server_binary();
    if let Some(dir) = Path::new(&server).parent() {
        for name in ["redis-cli", "valkey-cli"] {
            let p = dir.join(name);
            if !dir.as_os_str().is_empty() && p.is_file() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    "redis-cli".to_string()
}

/// Removes ANSI colour sequences (redis-cli colours `--cluster` output).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `f` every [`POLL`] until it returns `Ok`; after `deadline`, panics with `what` and the
/// last `Err` it returned.
#[track_caller]
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for: {what}\nlast state: {e}")
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

// ----- the cluster ---------------------------------------------------------------------------

/// A Redis Cluster of [`Server`]s owned by a test; dropping it kills every node.
pub struct Cluster {
    nodes: Vec<Server>,
    ids: Vec<String>,
}

impl Cluster {
    /// `primaries` primaries with `replicas_per_primary` replicas each, joined and stable.
    pub fn start(primaries: usize, replicas_per_primary: usize) -> Cluster {
        Cluster::start_with(primaries, replicas_per_primary, &[])
    }

    /// Like [`Cluster::start`]; `args` add to or override every node's config (e.g.
    /// `&["--appendonly", "yes"]`).
    pub fn start_with(primaries: usize, replicas_per_primary: usize, args: &[&str]) -> Cluster {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs 3 primaries"
        );
        let count = primaries * (1 + replicas_per_primary);
        let nodes: Vec<Server> = thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| {
                    s.spawn(|| {
                        let bus = bus_port().to_string();
                        let timeout = NODE_TIMEOUT_MS.to_string();
                        let mut all: Vec<&str> = vec![
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            &timeout,
                            "--cluster-port",
                            &bus,
                            // A replica may always take over, however long its link was down.
                            "--cluster-replica-validity-factor",
                            "0",
                            // Replicas stay where the test put them.
                            "--cluster-allow-replica-migration",
                            "no",
                        ];
                        all.extend_from_slice(args);
                        Server::start_with(&all)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a cluster node failed to start"))
                .collect()
        });
        let ids = nodes
            .iter()
            .map(|n| {
                let r = RawConn::connect(n.port()).cmd(&[b"CLUSTER", b"MYID"]);
                match bulk_body(&r) {
                    Some(id) => show(id),
                    None => panic!("CLUSTER MYID on port {}: {}", n.port(), esc(&r)),
                }
            })
            .collect();
        let cluster = Cluster { nodes, ids };
        let mut create: Vec<String> = vec!["--cluster".into(), "create".into()];
        create.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        create.extend([
            "--cluster-replicas".into(),
            replicas_per_primary.to_string(),
            "--cluster-yes".into(),
        ]);
        let out = Command::new(cli_binary())
            .args(&create)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli_binary()));
        let text = strip_ansi(&String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success() && text.contains("[OK] All 16384 slots covered."),
            "redis-cli {} failed ({}):\n{text}\n{}",
            create.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        assert_eq!(
            cluster.primaries().len(),
            primaries,
            "primaries after create"
        );
        cluster
    }

    // ----- nodes ---------------------------------------------------------------------------

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Server {
        &mut self.nodes[i]
    }

    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// `127.0.0.1:<port>` of node `i`, as `MOVED`/`ASK` name it.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    /// The cluster node id of node `i` (kept across restarts in its nodes.conf).
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    pub fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// True while node `i`'s process runs (not killed or stopped by the test).
    pub fn is_live(&self, i: usize) -> bool {
        self.nodes[i].pid().is_some()
    }

    /// Indices of the running nodes.
    pub fn live(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_live(i)).collect()
    }

    /// A raw connection to node `i`.
    pub fn raw(&self, i: usize) -> RawConn {
        self.nodes[i].raw()
    }

    /// A `redis` crate connection to node `i` (no redirects followed).
    pub fn conn(&self, i: usize) -> redis::Connection {
        self.nodes[i].conn()
    }

    /// One command on a fresh connection to node `i`; the raw reply.
    pub fn call(&self, i: usize, args: &[&str]) -> Vec<u8> {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.raw(i).cmd(&v)
    }

    /// One command on node `i`; the raw reply as text.
    pub fn call_text(&self, i: usize, args: &[&str]) -> String {
        show(&self.call(i, args))
    }

    /// One command on node `i` that must reply `+OK`.
    #[track_caller]
    pub fn ok(&self, i: usize, args: &[&str]) {
        let r = self.call_text(i, args);
        assert_eq!(r, "+OK\r\n", "{args:?} on node {i} (port {})", self.port(i));
    }

    /// `CONFIG SET name value` on node `i`.
    #[track_caller]
    pub fn config_set(&self, i: usize, name: &str, value: &str) {
        self.ok(i, &["CONFIG", "SET", name, value]);
    }

    /// `CONFIG SET name value` on every running node.
    #[track_caller]
    pub fn config_set_all(&self, name: &str, value: &str) {
        for i in self.live() {
            self.config_set(i, name, value);
        }
    }

    /// `INFO <section>` of node `i`.
    pub fn info(&self, i: usize, section: &str) -> HashMap<String, String> {
        self.nodes[i].info(section)
    }

    /// A numeric `INFO txu` field of node `i`.
    pub fn txu_info(&self, i: usize, field: &str) -> u64 {
        self.nodes[i].info_u64("txu", field)
    }

    // ----- topology ------------------------------------------------------------------------

    /// `CLUSTER NODES` as node `i` sees it.
    pub fn try_view(&self, i: usize) -> Result<Vec<NodeLine>, String> {
        let mut c = RawConn::open(self.port(i), Duration::from_secs(5))?;
        let r = c.call(&[b"CLUSTER", b"NODES"])?;
        let body = bulk_body(&r)
            .ok_or_else(|| format!("CLUSTER NODES on node {i}: {}", esc(&r)))?
            .to_vec();
        parse_nodes(&show(&body))
    }

    /// `CLUSTER NODES` as node `i` sees it; panics when it cannot be read.
    pub fn view(&self, i: usize) -> Vec<NodeLine> {
        self.try_view(i)
            .unwrap_or_else(|e| panic!("CLUSTER NODES of node {i}: {e}"))
    }

    /// Node `i`'s line about itself.
    pub fn myself(&self, i: usize) -> NodeLine {
        self.view(i)
            .into_iter()
            .find(NodeLine::is_myself)
            .unwrap_or_else(|| panic!("node {i} has no myself line"))
    }

    /// A running node to ask about the cluster.
    fn any_live(&self) -> usize {
        *self
            .live()
            .first()
            .expect("no node of the cluster is running")
    }

    /// The running primaries, ordered by the first slot they serve.
    pub fn primaries(&self) -> Vec<usize> {
        let mut p: Vec<(u16, usize)> = self
            .live()
            .into_iter()
            .filter_map(|i| {
                let me = self.myself(i);
                me.is_master()
                    .then(|| (me.slots.first().map_or(SLOTS, |s| s.0), i))
            })
            .collect();
        p.sort();
        p.into_iter().map(|(_, i)| i).collect()
    }

    /// The running replicas of primary `p`, as each replica sees itself.
    pub fn replicas_of(&self, p: usize) -> Vec<usize> {
        self.live()
            .into_iter()
            .filter(|&i| {
                let me = self.myself(i);
                me.is_replica() && me.master.as_deref() == Some(self.id(p))
            })
            .collect()
    }

    /// The primary replica `r` replicates.
    pub fn primary_of(&self, r: usize) -> usize {
        let me = self.myself(r);
        let id = me
            .master
            .unwrap_or_else(|| panic!("node {r} is not a replica: {:?}", me.flags));
        self.index_of_id(&id)
            .unwrap_or_else(|| panic!("node {r} replicates unknown node {id}"))
    }

    /// The node serving `slot`, as a running node sees it.
    pub fn owner(&self, slot: u16) -> usize {
        let view = self.view(self.any_live());
        let n = view
            .iter()
            .find(|n| n.is_master() && n.owns(slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot}: {view:?}"));
        self.index_of_id(&n.id)
            .unwrap_or_else(|| panic!("slot {slot} is served by unknown node {}", n.id))
    }

    /// The node serving `key`.
    pub fn owner_of(&self, key: &str) -> usize {
        self.owner(key_slot(key.as_bytes()))
    }

    /// The slot ranges primary `p` serves, as it sees itself.
    pub fn slots_of(&self, p: usize) -> Vec<(u16, u16)> {
        self.myself(p).slots
    }

    /// The `k`-th slot (0-based, counting through its ranges) primary `p` serves.
    pub fn slot_of(&self, p: usize, k: usize) -> u16 {
        let mut k = k;
        for (a, b) in self.slots_of(p) {
            let n = usize::from(b - a) + 1;
            if k < n {
                return a + k as u16;
            }
            k -= n;
        }
        panic!("node {p} serves fewer than {} slots", k + 1)
    }

    /// A key named `name` in the first slot primary `p` serves.
    pub fn key_on(&self, p: usize, name: &str) -> String {
        key_in_slot(self.slot_of(p, 0), name)
    }

    /// A running primary other than the one serving `slot`.
    pub fn other_primary(&self, slot: u16) -> usize {
        let owner = self.owner(slot);
        *self
            .primaries()
            .iter()
            .find(|&&p| p != owner)
            .expect("another primary")
    }

    /// `CLUSTER KEYSLOT key` on node `i`.
    pub fn keyslot_on(&self, i: usize, key: &[u8]) -> u16 {
        let r = self.raw(i).cmd(&[b"CLUSTER", b"KEYSLOT", key]);
        show(&r)
            .strip_prefix(':')
            .and_then(|s| s.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("CLUSTER KEYSLOT {}: {}", esc(key), esc(&r)))
    }

    // ----- waiting for a stable cluster ----------------------------------------------------

    /// Why the running nodes are not (yet) a stable cluster, or `Ok`: each says
    /// `cluster_state:ok`; all see the same slot map covering every slot and no open
    /// (migrating/importing) slot; each sees every running node, not failing, connected, with
    /// the role and primary that node gives itself; every running replica's link is up.
    pub fn stable(&self) -> Result<(), String> {
        let live = self.live();
        let mut views = Vec::new();
        for &i in &live {
            let mut c = RawConn::open(self.port(i), Duration::from_secs(5))?;
            let info = show(&c.call(&[b"CLUSTER", b"INFO"])?);
            if !info.contains("cluster_state:ok") {
                return Err(format!(
                    "node {i} (port {}): {}",
                    self.port(i),
                    info.lines().find(|l| l.contains("state")).unwrap_or(&info)
                ));
            }
            views.push((i, self.try_view(i)?));
        }
        let mut reference: Option<(usize, SlotMap)> = None;
        for (i, view) in &views {
            let (map, covered) = slot_map(view);
            if covered != usize::from(SLOTS) {
                return Err(format!("node {i} sees {covered} slots covered"));
            }
            match &reference {
                None => reference = Some((*i, map)),
                Some((j, m)) if *m != map => {
                    return Err(format!(
                        "nodes {j} and {i} disagree on the slot map: {m:?} vs {map:?}"
                    ))
                }
                Some(_) => {}
            }
            for n in view {
                if !n.migrating.is_empty() || !n.importing.is_empty() {
                    return Err(format!("node {i} sees open slots on {}: {n:?}", n.port));
                }
            }
        }
        for (i, view) in &views {
            for &j in &live {
                let own = views
                    .iter()
                    .find(|(k, _)| *k == j)
                    .and_then(|(_, v)| v.iter().find(|n| n.is_myself()))
                    .ok_or_else(|| format!("node {j} has no myself line"))?;
                let seen = view
                    .iter()
                    .find(|n| n.id == self.ids[j])
                    .ok_or_else(|| format!("node {i} does not know node {j}"))?;
                if seen.is_troubled() || !seen.connected {
                    return Err(format!("node {i} sees node {j} as {seen:?}"));
                }
                if seen.is_master() != own.is_master() || seen.master != own.master {
                    return Err(format!(
                        "node {i} sees node {j} as {:?} of {:?}, it says {:?} of {:?}",
                        seen.flags, seen.master, own.flags, own.master
                    ));
                }
            }
        }
        for &i in &live {
            let me = views
                .iter()
                .find(|(k, _)| *k == i)
                .and_then(|(_, v)| v.iter().find(|n| n.is_myself()))
                .expect("checked above");
            if me.is_replica() {
                let mut c = RawConn::open(self.port(i), Duration::from_secs(5))?;
                let info = parse_info(&show(&c.call(&[b"INFO", b"replication"])?));
                if info.get("master_link_status").map(String::as_str) != Some("up") {
                    return Err(format!("replica {i}: master_link_status {info:?}"));
                }
            }
        }
        Ok(())
    }

    /// Waits until [`Cluster::stable`] holds.
    #[track_caller]
    pub fn wait_ok(&self) {
        wait_for("a stable cluster", CLUSTER_DEADLINE, || self.stable());
    }

    /// Waits until every running replica of primary `p` has its replication offset.
    pub fn wait_replicas_synced(&self, p: usize) {
        for r in self.replicas_of(p) {
            wait_replica_synced(&self.nodes[p], &self.nodes[r]);
        }
    }

    // ----- moving a slot -------------------------------------------------------------------

    /// Moves `slot` from primary `from` to primary `to` as `redis-cli --cluster reshard` does:
    /// [`Cluster::begin_migration`], [`Cluster::move_keys`], [`Cluster::finish_migration`].
    /// Returns how many keys moved.
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize) -> usize {
        self.begin_migration(slot, from, to);
        let moved = self.move_keys(slot, from, to);
        self.finish_migration(slot, from, to);
        moved
    }

    /// `CLUSTER SETSLOT <slot> IMPORTING <from>` on `to`, then `MIGRATING <to>` on `from`.
    #[track_caller]
    pub fn begin_migration(&self, slot: u16, from: usize, to: usize) {
        let s = slot.to_string();
        self.ok(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", self.id(from)]);
        self.ok(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", self.id(to)]);
    }

    /// `CLUSTER GETKEYSINSLOT` on `from` and `MIGRATE ... KEYS` to `to`, in batches, until
    /// `from` holds no key of `slot`. Returns how many keys moved.
    #[track_caller]
    pub fn move_keys(&self, slot: u16, from: usize, to: usize) -> usize {
        let mut c = self.raw(from);
        let s = slot.to_string();
        let batch = MIGRATE_BATCH.to_string();
        let mut moved: Vec<Vec<u8>> = Vec::new();
        loop {
            let r = c.cmd(&[b"CLUSTER", b"GETKEYSINSLOT", s.as_bytes(), batch.as_bytes()]);
            let keys: Vec<Vec<u8>> = array_items(&r)
                .unwrap_or_else(|| panic!("CLUSTER GETKEYSINSLOT {slot}: {}", esc(&r)))
                .into_iter()
                .map(|k| bulk_body(k).expect("a key").to_vec())
                .collect();
            if keys.is_empty() {
                return moved.len();
            }
            if let Some(k) = keys.iter().find(|k| moved.contains(k)) {
                panic!(
                    "key {} of slot {slot} is back on node {from} after MIGRATE moved it to node \
                     {to}",
                    esc(k)
                );
            }
            let batch: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            self.migrate_batch(&mut c, to, &batch)
                .unwrap_or_else(|e| panic!("slot {slot} from node {from} to node {to}: {e}"));
            moved.extend(keys);
        }
    }

    /// `MIGRATE` of `keys` (one batch) from node `from` to node `to`; asserts `+OK`.
    #[track_caller]
    pub fn migrate_keys(&self, from: usize, to: usize, keys: &[&str]) {
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        if let Err(e) = self.migrate_batch(&mut self.raw(from), to, &keys) {
            panic!("from node {from} to node {to}: {e}");
        }
    }

    fn migrate_batch(&self, c: &mut RawConn, to: usize, keys: &[&[u8]]) -> Result<(), String> {
        let port = self.port(to).to_string();
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            b"127.0.0.1",
            port.as_bytes(),
            b"",
            b"0",
            b"10000",
            b"KEYS",
        ];
        args.extend_from_slice(keys);
        let r = c.cmd(&args);
        if r == b"+OK\r\n" {
            Ok(())
        } else {
            Err(format!("MIGRATE of {} keys: {}", keys.len(), esc(&r)))
        }
    }

    /// `CLUSTER SETSLOT <slot> NODE <to>` on `to`, `from`, then every other running primary;
    /// waits until every running node sees `to` serving `slot` and the cluster is stable.
    #[track_caller]
    pub fn finish_migration(&self, slot: u16, from: usize, to: usize) {
        let s = slot.to_string();
        let mut order = vec![to, from];
        order.extend(
            self.primaries()
                .into_iter()
                .filter(|p| *p != to && *p != from),
        );
        for p in order {
            self.ok(p, &["CLUSTER", "SETSLOT", &s, "NODE", self.id(to)]);
        }
        let to_id = self.id(to).to_string();
        wait_for(
            &format!("every node to see node {to} serving slot {slot}"),
            CLUSTER_DEADLINE,
            || {
                for i in self.live() {
                    let view = self.try_view(i)?;
                    let owner = view.iter().find(|n| n.is_master() && n.owns(slot));
                    if owner.map(|n| n.id.as_str()) != Some(to_id.as_str()) {
                        return Err(format!("node {i} sees slot {slot} served by {owner:?}"));
                    }
                }
                Ok(())
            },
        );
        self.wait_ok();
    }

    // ----- failover, kill, restart ----------------------------------------------------------

    /// `CLUSTER FAILOVER` on replica `r`; waits until `r` is a primary, its old primary
    /// replicates it, and the cluster is stable.
    #[track_caller]
    pub fn failover(&self, r: usize) {
        let old = self.primary_of(r);
        self.ok(r, &["CLUSTER", "FAILOVER"]);
        wait_for(
            &format!("replica {r} to take over from node {old}"),
            CLUSTER_DEADLINE,
            || {
                let me = self.try_view(r)?.into_iter().find(NodeLine::is_myself);
                let it = self.try_view(old)?.into_iter().find(NodeLine::is_myself);
                match (me, it) {
                    (Some(me), Some(it))
                        if me.is_master() && it.master.as_deref() == Some(self.id(r)) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        );
        self.wait_ok();
    }

    /// SIGKILLs node `i` (no save). The cluster is not waited for.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// SIGKILLs primary `p` and waits until one of its replicas has taken over its slots and
    /// the running nodes are a stable cluster again. Returns the new primary.
    #[track_caller]
    pub fn kill_primary(&mut self, p: usize) -> usize {
        let replicas = self.replicas_of(p);
        assert!(
            !replicas.is_empty(),
            "primary {p} has no replica to fail over to"
        );
        let slots = self.slots_of(p);
        self.kill(p);
        let new = wait_for(
            &format!("a replica of killed primary {p} to take over"),
            CLUSTER_DEADLINE,
            || {
                for &r in &replicas {
                    let me = self.try_view(r)?.into_iter().find(NodeLine::is_myself);
                    if let Some(me) = me {
                        if me.is_master() && me.slots == slots {
                            return Ok(r);
                        }
                    }
                }
                Err(format!("replicas {replicas:?} not promoted yet"))
            },
        );
        self.wait_ok();
        new
    }

    /// Starts stopped or killed node `i` again (same port, dir and nodes.conf) and waits until
    /// the cluster is stable.
    #[track_caller]
    pub fn start_again(&mut self, i: usize) {
        self.nodes[i].start_again();
        self.wait_ok();
    }

    /// Graceful restart (`SHUTDOWN`, start) of node `i`; waits until the cluster is stable.
    #[track_caller]
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.wait_ok();
    }

    /// `kill -9` and start of node `i`; waits until the cluster is stable.
    #[track_caller]
    pub fn kill9_and_restart(&mut self, i: usize) {
        self.nodes[i].kill9_and_restart();
        self.wait_ok();
    }

    // ----- where keys are ------------------------------------------------------------------

    /// Every key on node `i` matching `pattern` (`SCAN`), as raw bytes.
    pub fn scan(&self, i: usize, pattern: &str) -> Vec<Vec<u8>> {
        let mut c = self.raw(i);
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let r = c.cmd(&[
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"1000",
            ]);
            let items = array_items(&r).unwrap_or_else(|| panic!("SCAN: {}", esc(&r)));
            cursor = bulk_body(items[0]).expect("SCAN cursor").to_vec();
            for k in array_items(items[1]).expect("SCAN keys") {
                keys.push(bulk_body(k).expect("a key").to_vec());
            }
            if cursor == b"0" {
                return keys;
            }
        }
    }

    /// The `txu:*` keys of node `i` with their slots (`CLUSTER KEYSLOT`).
    pub fn txu_keys(&self, i: usize) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = self
            .scan(i, "txu:*")
            .into_iter()
            .map(|k| {
                let slot = self.keyslot_on(i, &k);
                (show(&k), slot)
            })
            .collect();
        out.sort();
        out
    }

    /// Keys (any, `txu:*` included) that sit on a running node in a slot that node does not
    /// serve (for a replica: that its primary does not serve), as `node i (port p): key in
    /// slot s served by node j`. Empty on a healthy cluster.
    pub fn misplaced_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in self.live() {
            let view = self.view(i);
            let me = view.iter().find(|n| n.is_myself()).expect("myself line");
            let serving_id = me.master.clone().unwrap_or_else(|| me.id.clone());
            for k in self.scan(i, "*") {
                let slot = self.keyslot_on(i, &k);
                let owner = view.iter().find(|n| n.is_master() && n.owns(slot));
                if owner.map(|n| &n.id) != Some(&serving_id) {
                    out.push(format!(
                        "node {i} (port {}): {} in slot {slot} served by {:?}",
                        self.port(i),
                        esc(&k),
                        owner.and_then(|n| self.index_of_id(&n.id))
                    ));
                }
            }
        }
        out
    }

    /// `CLUSTER COUNTKEYSINSLOT slot` on node `i`.
    pub fn count_keys_in_slot(&self, i: usize, slot: u16) -> u64 {
        let r = self.call_text(i, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
        r.strip_prefix(':')
            .and_then(|s| s.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("CLUSTER COUNTKEYSINSLOT {slot} on node {i}: {r:?}"))
    }

    /// `CLUSTER GETKEYSINSLOT slot 1000` on node `i`, as text.
    pub fn keys_in_slot(&self, i: usize, slot: u16) -> Vec<String> {
        let r = self.call(i, &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"]);
        array_items(&r)
            .unwrap_or_else(|| panic!("CLUSTER GETKEYSINSLOT {slot}: {}", esc(&r)))
            .into_iter()
            .map(|k| show(bulk_body(k).expect("a key")))
            .collect()
    }

    // ----- redis-cli -----------------------------------------------------------------------

    /// `redis-cli --cluster check` through a running node: its exit success and its output
    /// (colours removed).
    pub fn check(&self) -> (bool, String) {
        let addr = self.addr(self.any_live());
        let out = Command::new(cli_binary())
            .args(["--cluster", "check", &addr])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli_binary()));
        let mut text = strip_ansi(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&strip_ansi(&String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), text)
    }

    /// `redis-cli --cluster check` when it is clean (success, all nodes agree, all slots
    /// covered, no `[WARNING]` — open slots are one — and no `[ERR]`), else `Err`; either way
    /// its output.
    pub fn check_clean(&self) -> Result<String, String> {
        let (ok, text) = self.check();
        let clean = ok
            && text.contains("[OK] All nodes agree about slots configuration.")
            && text.contains("[OK] All 16384 slots covered.")
            && !text.contains("[WARNING]")
            && !text.contains("[ERR]");
        if clean {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Asserts [`Cluster::check_clean`]; returns the output.
    #[track_caller]
    pub fn assert_check_clean(&self) -> String {
        self.check_clean()
            .unwrap_or_else(|text| panic!("redis-cli --cluster check is not clean:\n{text}"))
    }

    /// `redis-cli -c -p <port of node i> --no-raw` fed `lines` on stdin (one command each, as
    /// typed at the prompt); its stdout. Panics when redis-cli fails.
    pub fn cli(&self, i: usize, lines: &[&str]) -> String {
        let mut child = Command::new(cli_binary())
            .args(["-c", "-p", &self.port(i).to_string(), "--no-raw"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli_binary()));
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write to redis-cli");
        let out = child.wait_with_output().expect("redis-cli finishes");
        assert!(
            out.status.success(),
            "redis-cli -c failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis-cli -c -p <port of node i> <args...>`: one command given as arguments; its stdout.
    pub fn cli_args(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(cli_binary())
            .args(["-c", "-p", &self.port(i).to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli_binary()));
        assert!(
            out.status.success(),
            "redis-cli -c {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A client that follows `MOVED` and `ASK`, starting at node `i`.
    pub fn client(&self, i: usize) -> ClusterClient<'_> {
        ClusterClient {
            cluster: self,
            conns: BTreeMap::new(),
            port: self.port(i),
            redirects: Vec::new(),
        }
    }
}

// ----- a client that follows redirects --------------------------------------------------------

/// A raw RESP client for the cluster: sends each command to the node it last talked to and
/// follows `MOVED` (switching to that node) and `ASK` (`ASKING`, then the command, on that
/// node once), as cluster clients do. Replies are raw bytes; every redirect it followed is
/// kept in [`ClusterClient::redirects`].
pub struct ClusterClient<'a> {
    cluster: &'a Cluster,
    conns: BTreeMap<u16, RawConn>,
    /// Where the next command goes.
    pub port: u16,
    /// The redirect errors followed, in order (`MOVED 1234 127.0.0.1:5678`, `ASK ...`).
    pub redirects: Vec<String>,
}

impl ClusterClient<'_> {
    fn conn(&mut self, port: u16) -> &mut RawConn {
        self.conns
            .entry(port)
            .or_insert_with(|| RawConn::connect(port))
    }

    /// The node (index) the next command goes to.
    pub fn node(&self) -> usize {
        self.cluster
            .index_of_port(self.port)
            .expect("the client talks to a node of the cluster")
    }

    /// Sends a command, following up to 5 redirects; the final raw reply.
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let mut asking: Option<u16> = None;
        for _ in 0..=5 {
            let reply = match asking.take() {
                Some(port) => {
                    let c = self.conn(port);
                    let ok = c.cmd(&[b"ASKING"]);
                    assert_eq!(ok, b"+OK\r\n", "ASKING on port {port}");
                    c.cmd(args)
                }
                None => {
                    let port = self.port;
                    self.conn(port).cmd(args)
                }
            };
            let text = show(&reply);
            let redirect = text
                .strip_prefix('-')
                .map(str::trim_end)
                .filter(|t| t.starts_with("MOVED ") || t.starts_with("ASK "));
            let Some(redirect) = redirect else {
                return reply;
            };
            self.redirects.push(redirect.to_string());
            let port: u16 = redirect
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("redirect without a port: {redirect}"));
            if redirect.starts_with("MOVED ") {
                self.port = port;
            } else {
                asking = Some(port);
            }
        }
        panic!("more than 5 redirects: {:?}", self.redirects)
    }

    /// Sends a command of text arguments (see [`ClusterClient::cmd_bytes`]); the raw reply.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(&v)
    }

    /// The raw reply as text.
    pub fn cmd_text(&mut self, args: &[&str]) -> String {
        show(&self.cmd(args))
    }
}
