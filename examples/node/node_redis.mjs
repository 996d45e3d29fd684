// txu from node-redis, version 4 or 5: `node node_redis.mjs 4` or `node node_redis.mjs 5`.
//
// Shows TXU.RUN (commit, rollback, refused before running, deferred -> pending -> done), the
// three-command form TXU.BEGIN / TXU.QUEUE / TXU.EXEC on a dedicated connection, what
// multi().execAsPipeline() does with an error reply, and TXU.RUN on a cluster.
// Environment: TXU_URL (a server with the txu module), TXU_CLUSTER_URL (one node of a cluster
// with the module; the cluster part is skipped without it).
import assert from 'node:assert/strict';
import { firstOutcomes, frames, outcome } from './txu.mjs';

const version = process.argv[2] ?? '5';
assert.ok(version === '4' || version === '5', 'usage: node node_redis.mjs 4|5');
// package.json installs both majors side by side: "redis4": "npm:redis@4...", "redis5": ...
const { createClient, createCluster, createClientPool } = await import(`redis${version}`);
const url = process.env.TXU_URL ?? 'redis://127.0.0.1:6379';
const clusterUrl = process.env.TXU_CLUSTER_URL;
setTimeout(() => { console.error('FAIL: timed out'); process.exit(1); }, 60_000).unref();

const client = await createClient({ url }).on('error', (e) => console.error('redis:', e.message)).connect();
const run = (...commands) => client.sendCommand(['TXU.RUN', ...frames(...commands)]).then(outcome, outcome);
const k = (name) => `node-redis${version}:${name}`; // keys of this example
const [alice, bob, log] = [k('balance:alice'), k('balance:bob'), k('transfers')];
// 1.-3. Committed, rolled back, refused (see txu.mjs): the same with every client.
await firstOutcomes(run, (args) => client.sendCommand(args), alice, bob, log, k);
let r;

// 4. The three-command form keeps its transaction on the connection. The client above is one
// connection shared by every async task of the process: between our `await`s another task can
// send its own TXU.QUEUE into our transaction (or find ours open). So pin a connection of
// your own for the whole BEGIN..EXEC:
//   node-redis 4: client.executeIsolated(fn): fn gets a connection of the client's isolation
//     pool, used by nobody else until fn's promise settles;
//   node-redis 5 has no isolation pool any more: createClientPool() and pool.execute(fn) do
//     the same (client.duplicate().connect() would give one dedicated connection too).
const pool = version === '5' ? await createClientPool({ url }).on('error', (e) => console.error('pool:', e.message)).connect() : null;
const withDedicatedConnection = (fn) => (pool ? pool.execute(fn) : client.executeIsolated(fn));
const addRaw = (multi, args) => (version === '4' ? multi.addCommand(args) : multi.sendCommand(args));

const begin = ['TXU.BEGIN'];
const exec = ['TXU.EXEC'];
const queueSet = ['TXU.QUEUE', 'SET', k('order'), 'paid'];
const queueBlpop = ['TXU.QUEUE', 'BLPOP', k('q'), '0']; // refused when queued: spoils the transaction

// 4a. multi().execAsPipeline() sends the commands in one go (no MULTI): EXEC is always sent,
// so the connection never stays in a transaction. But the promise rejects with the FIRST error
// reply and drops every other reply: here TXU.QUEUE's refusal; the txid and TXU.EXEC's
// EXECABORT are lost.
const firstError = await withDedicatedConnection(async (conn) => {
  const multi = conn.multi();
  for (const args of [begin, queueSet, queueBlpop, exec]) addRaw(multi, args);
  return multi.execAsPipeline().then(() => null, (e) => e);
});
assert.ok(firstError instanceof Error, 'execAsPipeline should reject when a reply is an error');
assert.match(firstError.message, /^ERR 'BLPOP' is not allowed in a TXU transaction/);
console.log(`execAsPipeline threw only the first error: ${firstError.message}`);

// 4b. To keep every reply: send each command on the pinned connection without awaiting in
// between (node-redis pipelines them), then await them all with Promise.allSettled.
async function txuExec(commands) {
  return withDedicatedConnection(async (conn) => {
    const sent = [begin, ...commands.map((c) => ['TXU.QUEUE', ...c]), exec].map((a) => conn.sendCommand(a));
    const settled = await Promise.allSettled(sent);
    const replies = settled.map((s) => (s.status === 'fulfilled' ? s.value : s.reason));
    const txid = replies[0]; // TXU.BEGIN's reply
    return { txid, queued: replies.slice(1, -1), ...outcome(replies.at(-1)) };
  });
}
r = await txuExec([['SET', k('order'), 'paid'], ['BLPOP', k('q'), '0']]);
assert.equal(r.kind, 'refused');
assert.match(r.txid, /^\d+-\d+$/);
assert.equal(r.queued[0], 'QUEUED');
assert.match(r.queued[1].message, /^ERR 'BLPOP' is not allowed/);
console.log(`allSettled kept all replies: txid ${r.txid}, [${r.queued.map((q) => q.message ?? q)}], then refused`);

r = await txuExec([['DECRBY', alice, '10'], ['INCRBY', bob, '10']]);
assert.equal(r.kind, 'committed');
assert.deepEqual(r.replies, [60, 60]);
r = await txuExec([['DECRBY', alice, '10'], ['HSET', bob, 'x', '1']]);
assert.equal(r.kind, 'rolledBack');
assert.equal(r.command, 2);
assert.deepEqual(await client.sendCommand(['MGET', alice, bob]), ['60', '60']);
console.log(`three-command form: committed, then rolled back transaction ${r.txid}; alice 60, bob 60`);

// 5. Deferred: a RETRY transaction that meets a transient fault (here NOREPLICAS: the server
// wants a replica it does not have) is rolled back and kept as a task txu retries by itself.
await client.sendCommand(['CONFIG', 'SET', 'min-replicas-to-write', '1']);
try {
  r = await client.sendCommand(['TXU.RUN', 'RETRY', '5', ...frames(['SET', alice, '500'])]).then(outcome, outcome);
  assert.equal(r.kind, 'deferred');
  assert.match(r.cause, /^NOREPLICAS/);
  const task = r.task;
  console.log(`deferred as task ${task}: ${r.cause.split(' ')[0]}`);

  // A transaction on a key the task waits on is not run ahead of it: PENDING, nothing applied.
  r = await run(['SET', alice, '0']);
  assert.deepEqual(r, { kind: 'pending', key: alice, task });
  console.log(`pending: key ${r.key} waits for task ${r.task}`);

  // The fault goes away: the timer applies the task. Poll TXU.STATUS (field/value pairs).
  await client.sendCommand(['CONFIG', 'SET', 'min-replicas-to-write', '0']);
  const deadline = Date.now() + 15_000;
  let state;
  for (;;) {
    const fields = await client.sendCommand(['TXU.STATUS', task]);
    state = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]]))).state;
    if (state === 'done' || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(state, 'done', `task ${task} should be done`);
  assert.equal(await client.sendCommand(['GET', alice]), '500');
  console.log(`task ${task} is done: alice 500`);
} finally {
  await client.sendCommand(['CONFIG', 'SET', 'min-replicas-to-write', '0']);
}

// 6. Cluster: the cluster client routes a command by the key you give sendCommand (node-redis
// knows no keys of TXU.RUN). Every key of the transaction must be in one slot: a hash tag.
if (clusterUrl) {
  const cluster = createCluster({ rootNodes: [{ url: clusterUrl }] }).on('error', (e) => console.error('cluster:', e.message));
  await cluster.connect(); // (node-redis 4's cluster connect() resolves to nothing, not the cluster)
  const [a, b] = [`{user${version}}:balance`, `{user${version}}:spent`];
  await cluster.sendCommand(a, false, ['MSET', a, '100', b, '0']);
  const runOn = (firstKey, ...commands) => cluster.sendCommand(firstKey, false, ['TXU.RUN', ...frames(...commands)]).then(outcome, outcome);
  r = await runOn(a, ['DECRBY', a, '30'], ['TXU.CHECK', '1', 'GE', '0'], ['INCRBY', b, '30']);
  assert.deepEqual(r, { kind: 'committed', replies: [70, 'OK', 30] });
  r = await runOn(a, ['DECRBY', a, '80'], ['TXU.CHECK', '1', 'GE', '0'], ['INCRBY', b, '80']);
  assert.equal(r.kind, 'rolledBack');
  assert.equal(r.name, 'TXU.CHECK');
  assert.deepEqual(await cluster.sendCommand(a, true, ['MGET', a, b]), ['70', '30']);
  // Keys in two slots: the server refuses with CROSSSLOT, which outcome() throws again.
  await assert.rejects(runOn(a, ['SET', a, '1'], ['SET', '{other}:b', '2']), { message: /^CROSSSLOT/ });
  console.log('cluster: routed by the key given to sendCommand; committed, rolled back, CROSSSLOT refused');
  await (version === '4' ? cluster.quit() : cluster.close());
} else {
  console.log('cluster: skipped (TXU_CLUSTER_URL not set)');
}

await (version === '4' ? client.quit() : client.close());
await pool?.close();
