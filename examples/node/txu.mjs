// What both examples share (an application keeps these few lines in its own code).

import assert from 'node:assert/strict';

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

// The first three outcomes, the same whatever the client: `run(...commands)` sends TXU.RUN and
// gives its outcome(), `send(args)` sends one command. Starts alice at 100 and bob at 20.
export async function firstOutcomes(run, send, alice, bob, log, k) {
  await send(['DEL', alice, bob, log, k('q'), k('order')]);
  await send(['MSET', alice, '100', bob, '20']);

  // 1. A transaction that commits: the reply of each command.
  let r = await run(['DECRBY', alice, '30'], ['INCRBY', bob, '30'], ['LPUSH', log, 'alice->bob:30']);
  assert.deepEqual(r, { kind: 'committed', replies: [70, 50, 1] });
  console.log('committed: alice 70, bob 50');

  // 2. Command 2 fails (bob's balance is no hash): command 1 is undone, nothing changed.
  r = await run(['DECRBY', alice, '30'], ['HSET', bob, 'currency', 'EUR']);
  assert.equal(r.kind, 'rolledBack');
  assert.equal(r.command, 2);
  assert.equal(r.name, 'HSET');
  assert.match(r.cause, /^WRONGTYPE/);
  assert.deepEqual(await send(['MGET', alice, bob]), ['70', '50']);
  console.log(`rolled back: command ${r.command} (${r.name}) failed with ${r.cause.split(' ')[0]}; alice still 70`);

  // 3. Refused before anything ran: BLPOP could block the server.
  r = await run(['SET', alice, '0'], ['BLPOP', k('q'), '0']);
  assert.equal(r.kind, 'refused');
  assert.equal(r.command, 2);
  assert.equal(r.name, 'BLPOP');
  assert.equal(await send(['GET', alice]), '70');
  console.log(`refused: command ${r.command} (${r.name}): ${r.cause}`);
}
