// What both examples share (an application keeps these few lines in its own code).

// txu's replies as values the application can branch on. Pass it a reply or the error a
// command threw: `await client.sendCommand([...]).then(outcome, outcome)` (node-redis),
// `await redis.call(...).then(outcome, outcome)` (ioredis). Any other error (ERR, NOPERM,
// CROSSSLOT, a lost connection) is no transaction outcome: it is thrown again.
export function outcome(errOrReply) {
  if (!(errOrReply instanceof Error)) return { kind: 'committed', replies: errOrReply };
  const msg = errOrReply.message; // node-redis and ioredis: the server's error text, code first
  let m;
  if ((m = /^ROLLBACK command (\d+) \((.+?)\) failed: (.*)$/s.exec(msg)))
    return { kind: 'rolledBack', command: Number(m[1]), name: m[2], cause: m[3] };
  if ((m = /^DEFERRED (\S+) (.*)$/s.exec(msg))) return { kind: 'deferred', task: m[1], cause: m[2] };
  if ((m = /^PENDING key '(.*)' waits for deferred task (\S+);/s.exec(msg)))
    return { kind: 'pending', key: m[1], task: m[2] };
  if ((m = /^EXECABORT Transaction discarded because of (?:an error in command (\d+) \((.+?)\): (.*)|previous errors\.)$/s.exec(msg)))
    return { kind: 'refused', command: m[1] && Number(m[1]), name: m[2], cause: m[3] ?? msg };
  throw errOrReply;
}

// TXU.RUN's frames: each command prefixed with its argument count, its name included.
export const frames = (...commands) => commands.flatMap((c) => [String(c.length), ...c]);
