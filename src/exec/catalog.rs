//! What the server says about a command (`COMMAND INFO`), cached per name: its canonical name,
//! arity and flags, and those of its subcommands. Unknown names are not cached, so the cache is
//! bounded by the server's command table.

use crate::exec::policy::Traits;
use crate::fasthash::FastMap;
use crate::ffi::{call, CtxPtr, ReplyKind, ReplyRef};
use crate::undo::recipe;
use parking_lot::Mutex;
use std::ffi::{CStr, CString};
use std::sync::{Arc, LazyLock};

/// What a command's key specs say about writing its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrites {
    /// No key spec may change its key (GET, or a command without keys).
    None,
    /// Every key spec may change its key (SET, MSET, LMOVE...), or its flags are unknown.
    All,
    /// Some keys are only read (SUNIONSTORE sources, COPY's source, GEORADIUS without STORE):
    /// which ones depends on the arguments.
    Mixed,
}

/// Key-spec flags meaning "this key may change". PFCOUNT, a read-only command, has one (it
/// caches the count inside the HyperLogLog).
const WRITE_SPEC_FLAGS: [&[u8]; 6] = [b"RW", b"OW", b"RM", b"insert", b"delete", b"update"];

/// Whether a key flag name (from key specs or `COMMAND GETKEYSANDFLAGS`) means "may change".
pub fn is_write_flag(name: &[u8]) -> bool {
    WRITE_SPEC_FLAGS
        .iter()
        .any(|w| name.eq_ignore_ascii_case(w))
}

#[derive(Debug)]
pub struct CmdInfo {
    /// Full lowercase name, `container|sub` for subcommands.
    pub name: String,
    /// Upper-case name for messages (`SET`, `CONFIG GET`).
    pub display: Arc<str>,
    /// The name to call the command by (`RedisModule_Call`): the top-level command's, for a
    /// subcommand too. Shared by every queued command of this name.
    pub cname: Arc<CStr>,
    /// A string command writing its first argument only (see `recipe::writes_first_key`).
    pub string_key: bool,
    pub arity: i64,
    pub traits: Traits,
    pub key_writes: KeyWrites,
    /// The command's one key is always the argument at this position (a single key spec:
    /// begin_search index, find_keys range with lastkey 0, keystep 1, limit 0; not
    /// `movablekeys`): what `RedisModule_GetCommandKeysWithFlags` would answer, without asking.
    pub fixed_key: Option<usize>,
    pub subcommands: FastMap<Vec<u8>, Arc<CmdInfo>>,
}

impl CmdInfo {
    /// Whether `argc` (including the command name) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

/// Commands by lowercase name, and the one looked up last: a transaction often queues the
/// same command again and again, and comparing one short name costs less than a table probe.
#[derive(Default)]
struct Cache {
    map: FastMap<Vec<u8>, Arc<CmdInfo>>,
    last: Option<Arc<CmdInfo>>,
}

impl Cache {
    fn get(&mut self, lower: &[u8]) -> Option<Arc<CmdInfo>> {
        if let Some(last) = self.last.as_ref().filter(|l| l.name.as_bytes() == lower) {
            return Some(last.clone());
        }
        let found = self.map.get(lower)?.clone();
        self.last = Some(found.clone());
        Some(found)
    }

    fn clear(&mut self) {
        self.map.clear();
        self.last = None;
    }
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(Cache::default()));

/// Longest command name looked up without an allocation.
const SHORT_NAME: usize = 32;

/// `name` in lowercase, in `buf` when it fits (no allocation on the common path).
fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; SHORT_NAME], spill: &'b mut Vec<u8>) -> &'b [u8] {
    match buf.get_mut(..name.len()) {
        Some(dst) => {
            dst.copy_from_slice(name);
            dst.make_ascii_lowercase();
            dst
        }
        None => {
            *spill = name.to_ascii_lowercase();
            spill
        }
    }
}

/// Looks up the command `name` (any case). `None`: the server does not know it.
pub fn lookup(ctx: CtxPtr, name: &[u8]) -> Option<Arc<CmdInfo>> {
    let (mut buf, mut spill) = ([0u8; SHORT_NAME], Vec::new());
    let lower = lowercase(name, &mut buf, &mut spill);
    {
        let mut cache = CACHE.lock();
        if let Some(i) = cache.get(lower) {
            return Some(i);
        }
        if cache.map.is_empty() {
            drop(cache);
            warm(ctx);
            if let Some(i) = CACHE.lock().get(lower) {
                return Some(i);
            }
        }
    }
    // A NUL can never be part of a command name, and the C API would cut the name there.
    if lower.is_empty() || lower.contains(&0) || lower.contains(&b'|') {
        return None;
    }
    let reply = call::call_plain(ctx, c"COMMAND", &[b"INFO", lower]).ok()?;
    let entry = reply.as_ref().elem(0)?;
    let info = Arc::new(parse_entry(entry, None)?);
    CACHE.lock().map.insert(lower.to_vec(), info.clone());
    Some(info)
}

/// What the cache knows of `name`, without asking the server (for contexts where calling a
/// command is not allowed, such as a keys-position request).
pub fn cached(name: &[u8]) -> Option<Arc<CmdInfo>> {
    let (mut buf, mut spill) = ([0u8; SHORT_NAME], Vec::new());
    CACHE.lock().get(lowercase(name, &mut buf, &mut spill))
}

/// Fills the cache with every command the server has (`COMMAND INFO` without names): one call,
/// so that `cached` knows every command from then on.
pub fn warm(ctx: CtxPtr) {
    let Ok(reply) = call::call_plain(ctx, c"COMMAND", &[b"INFO"]) else {
        return;
    };
    let r = reply.as_ref();
    let mut cache = CACHE.lock();
    for i in 0..r.len() {
        if let Some(info) = r.elem(i).and_then(|e| parse_entry(e, None)) {
            cache
                .map
                .insert(info.name.as_bytes().to_vec(), Arc::new(info));
        }
    }
}

/// The names of the commands that run while a script is busy (`allow_busy`), or that have such
/// a subcommand (`SCRIPT` for `SCRIPT KILL`), lowercase.
pub fn allow_busy_names(ctx: CtxPtr) -> Vec<Vec<u8>> {
    // Every command, not only those looked up so far.
    warm(ctx);
    CACHE
        .lock()
        .map
        .iter()
        .filter(|(_, i)| i.traits.allow_busy || i.subcommands.values().any(|s| s.traits.allow_busy))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Forgets everything (a module was loaded or unloaded, commands may have changed); the next
/// lookup fills the cache again.
pub fn clear() {
    CACHE.lock().clear();
}

/// One `COMMAND INFO` entry; `top`: the containing command's call name, for a subcommand.
fn parse_entry(e: ReplyRef<'_>, top: Option<&Arc<CStr>>) -> Option<CmdInfo> {
    if e.kind() != ReplyKind::Array {
        return None;
    }
    let name = String::from_utf8_lossy(e.elem(0)?.bytes()).to_ascii_lowercase();
    let cname: Arc<CStr> = match top {
        Some(t) => t.clone(),
        // A NUL can never be part of a command name.
        None => Arc::from(CString::new(name.as_bytes()).ok()?),
    };
    let arity = e.elem(1)?.integer();
    let flags = e.elem(2)?;
    let traits =
        Traits::from_flags((0..flags.len()).filter_map(|i| flags.elem(i).map(|f| f.bytes())));
    let key_writes = e.elem(8).map_or(KeyWrites::All, parse_key_specs);
    let movable =
        (0..flags.len()).any(|i| flags.elem(i).is_some_and(|f| f.bytes() == b"movablekeys"));
    let fixed_key = e
        .elem(8)
        .filter(|_| !movable)
        .and_then(|specs| fixed_key_of(&name, specs));
    let mut subcommands = FastMap::default();
    if let Some(subs) = e.elem(9) {
        for i in 0..subs.len() {
            if let Some(sub) = subs.elem(i).and_then(|e| parse_entry(e, Some(&cname))) {
                // "config|get" → key "get"
                let short = sub
                    .name
                    .rsplit('|')
                    .next()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec();
                subcommands.insert(short, Arc::new(sub));
            }
        }
    }
    Some(CmdInfo {
        display: Arc::from(name.to_ascii_uppercase().replace('|', " ")),
        string_key: recipe::writes_first_key(name.as_bytes()),
        cname,
        name,
        arity,
        traits,
        key_writes,
        fixed_key,
        subcommands,
    })
}

/// The value after `name` in a flat name/value array.
fn field<'a>(map: ReplyRef<'a>, name: &[u8]) -> Option<ReplyRef<'a>> {
    (0..map.len())
        .step_by(2)
        .find(|&j| map.elem(j).is_some_and(|k| k.bytes() == name))
        .and_then(|j| map.elem(j + 1))
}

/// The position of the one key of command `name` whose key specs are a single plain spec
/// (see `CmdInfo::fixed_key`); `None` for anything else. A spec with variable flags is plain
/// only for `SET`, whose key is written with or without `GET` (the server's flags then differ,
/// RW or OW, but both say "written", all txu asks); for `BITFIELD`, `SORT` and the like they
/// say whether the key is written at all, so the server is asked.
fn fixed_key_of(name: &str, specs: ReplyRef<'_>) -> Option<usize> {
    if specs.kind() != ReplyKind::Array || specs.len() != 1 {
        return None;
    }
    let spec = specs.elem(0)?;
    let flags = field(spec, b"flags")?;
    let has =
        |flag: &[u8]| (0..flags.len()).any(|i| flags.elem(i).is_some_and(|f| f.bytes() == flag));
    if has(b"incomplete") || (has(b"variable_flags") && name != "set") {
        return None;
    }
    let begin = field(spec, b"begin_search")?;
    let find = field(spec, b"find_keys")?;
    if field(begin, b"type")?.bytes() != b"index" || field(find, b"type")?.bytes() != b"range" {
        return None;
    }
    let index = field(field(begin, b"spec")?, b"index")?;
    let range = field(find, b"spec")?;
    let int = |name: &[u8]| field(range, name).map(|v| v.integer());
    if (int(b"lastkey")?, int(b"keystep")?, int(b"limit")?) != (0, 1, 0) {
        return None;
    }
    usize::try_from(index.integer()).ok().filter(|&i| i >= 1)
}

/// Classifies a command's key specs (each a flat array of name/value pairs).
fn parse_key_specs(specs: ReplyRef<'_>) -> KeyWrites {
    let (mut writes, mut reads) = (0usize, 0usize);
    for i in 0..specs.len() {
        let Some(spec) = specs.elem(i) else {
            continue;
        };
        let flags = (0..spec.len())
            .step_by(2)
            .find(|&j| spec.elem(j).is_some_and(|k| k.bytes() == b"flags"))
            .and_then(|j| spec.elem(j + 1));
        let writes_key = flags.is_none_or(|f| {
            f.is_empty_array()
                || (0..f.len()).any(|k| f.elem(k).is_some_and(|x| is_write_flag(x.bytes())))
        });
        if writes_key {
            writes += 1;
        } else {
            reads += 1;
        }
    }
    if writes == 0 {
        KeyWrites::None
    } else if reads == 0 {
        KeyWrites::All
    } else {
        KeyWrites::Mixed
    }
}
