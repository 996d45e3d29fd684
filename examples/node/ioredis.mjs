// txu from ioredis: `node ioredis.mjs`.
//
// Shows TXU.RUN (commit, rollback, refused before running, deferred -> pending -> done), the
// three-command form TXU.BEGIN / TXU.QUEUE / TXU.EXEC in a pipeline (whose replies are
// [err, result] pairs), and TXU.RUN routed by its keys on a cluster.
// Environment: TXU_URL (a server with the txu module), TXU_CLUSTER_URL (one node of a cluster
// with the module; the cluster part is skipped without it).
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { firstOutcomes, frames, outcome } from './txu.mjs';

const url = process.env.TXU_URL ?? 'redis://127.0.0.1:6379';
const clusterUrl = process.env.TXU_CLUSTER_URL;
setTimeout(() => { console.error('FAIL: timed out'); process.exit(1); }, 60_000).unref();

const redis = new Redis(url, { maxRetriesPerRequest: 3 });
const run = (...commands) => redis.call('TXU.RUN', ...frames(...commands)).then(outcome, outcome);
const k = (name) => `ioredis:${name}`; // keys of this example
const [alice, bob, log] = [k('balance:alice'), k('balance:bob'), k('transfers')];
// 1.-3. Committed, rolled back, refused (see txu.mjs): the same with every client.
await firstOutcomes(run, (args) => redis.call(...args), alice, bob, log, k);
let r;

// 4. The three-command form keeps its transaction on the connection. A `new Redis()` is one
// connection shared by every async task of the process, so separate `await redis.call(
// 'TXU.QUEUE', ...)`s could interleave with another task's. A pipeline is written to the one
// connection in a single piece, BEGIN to EXEC, so nothing lands in between (and EXEC always
// ends the transaction). Its exec() never rejects for an error reply: it resolves to one
// [err, result] pair per command. (redis.duplicate() gives a connection of your own if you
// must await between the commands.)
async function txuExec(commands) {
  const pipeline = redis.pipeline().call('TXU.BEGIN');
  for (const c of commands) pipeline.call('TXU.QUEUE', ...c);
  const pairs = await pipeline.call('TXU.EXEC').exec();
  const [[, txid], ...rest] = pairs;
  const [execErr, execReply] = rest.pop();
  return { txid, queued: rest, ...outcome(execErr ?? execReply) };
}
r = await txuExec([['SET', k('order'), 'paid'], ['BLPOP', k('q'), '0']]);
assert.equal(r.kind, 'refused');
assert.match(r.txid, /^\d+-\d+$/);
assert.deepEqual(r.queued[0], [null, 'QUEUED']);
assert.match(r.queued[1][0].message, /^ERR 'BLPOP' is not allowed/);
assert.equal(r.queued[1][1], undefined);
console.log(`pipeline pairs: txid ${r.txid}, [null, QUEUED], [${r.queued[1][0].message}, undefined], then refused`);

r = await txuExec([['DECRBY', alice, '10'], ['INCRBY', bob, '10']]);
assert.equal(r.kind, 'committed');
assert.deepEqual(r.replies, [60, 60]);
r = await txuExec([['DECRBY', alice, '10'], ['HSET', bob, 'x', '1']]);
assert.equal(r.kind, 'rolledBack');
assert.equal(r.command, 2);
assert.deepEqual(await redis.mget(alice, bob), ['60', '60']);
console.log(`three-command form: committed, then rolled back transaction ${r.txid}; alice 60, bob 60`);

// 5. Deferred: a RETRY transaction that meets a transient fault (here NOREPLICAS: the server
// wants a replica it does not have) is rolled back and kept as a task txu retries by itself.
await redis.config('SET', 'min-replicas-to-write', '1');
try {
  r = await redis.call('TXU.RUN', 'RETRY', '5', ...frames(['SET', alice, '500'])).then(outcome, outcome);
  assert.equal(r.kind, 'deferred');
  assert.match(r.cause, /^NOREPLICAS/);
  const task = r.task;
  console.log(`deferred as task ${task}: ${r.cause.split(' ')[0]}`);

  // A transaction on a key the task waits on is not run ahead of it: PENDING, nothing applied.
  r = await run(['SET', alice, '0']);
  assert.deepEqual(r, { kind: 'pending', key: alice, task });
  console.log(`pending: key ${r.key} waits for task ${r.task}`);

  // The fault goes away: the timer applies the task. Poll TXU.STATUS (field/value pairs).
  await redis.config('SET', 'min-replicas-to-write', '0');
  const deadline = Date.now() + 15_000;
  let state;
  for (;;) {
    const fields = await redis.call('TXU.STATUS', task);
    state = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]]))).state;
    if (state === 'done' || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(state, 'done', `task ${task} should be done`);
  assert.equal(await redis.get(alice), '500');
  console.log(`task ${task} is done: alice 500`);
} finally {
  await redis.config('SET', 'min-replicas-to-write', '0');
}
redis.disconnect();

// 6. Cluster. ioredis finds a command's keys in its own built-in command table, which has no
// TXU.RUN: `cluster.call('TXU.RUN', ...)` has no slot, goes to a random primary, and works only
// because ioredis follows the MOVED reply (an extra round trip, and a slot-table refresh each
// time). To route it by its keys, send it as a Command that names its routing key: ioredis
// computes the slot from getKeys()[0], and still follows MOVED/ASK while a slot moves.
// Every key of the transaction must be in that slot: give them one hash tag. (ioredis's
// keyPrefix option is not applied to TXU.RUN's inner keys.)
class TxuRun extends Redis.Command {
  constructor(routingKey, args) {
    super('TXU.RUN', args, { replyEncoding: 'utf8' });
    this.routingKey = routingKey;
  }
  getKeys() {
    return [this.routingKey];
  }
}

if (clusterUrl) {
  const { hostname, port } = new URL(clusterUrl);
  const cluster = new Redis.Cluster([{ host: hostname, port: Number(port) }]);
  const runOn = (routingKey, ...commands) => cluster.sendCommand(new TxuRun(routingKey, frames(...commands))).then(outcome, outcome);
  // MOVED replies the primaries sent so far (INFO errorstats), to check the routing.
  const movedSoFar = async () => {
    let n = 0;
    for (const node of cluster.nodes('master')) n += Number(/errorstat_MOVED:count=(\d+)/.exec(await node.info('errorstats'))?.[1] ?? 0);
    return n;
  };

  const [a, b] = ['{user}:balance', '{user}:spent'];
  await cluster.mset(a, '100', b, '0');
  const moved = await movedSoFar();
  r = await runOn(a, ['DECRBY', a, '30'], ['TXU.CHECK', '1', 'GE', '0'], ['INCRBY', b, '30']);
  assert.deepEqual(r, { kind: 'committed', replies: [70, 'OK', 30] });
  r = await runOn(a, ['DECRBY', a, '80'], ['TXU.CHECK', '1', 'GE', '0'], ['INCRBY', b, '80']);
  assert.equal(r.kind, 'rolledBack');
  assert.equal(r.name, 'TXU.CHECK');
  assert.equal(await movedSoFar(), moved, 'TxuRun should go straight to the primary of its slot');
  assert.deepEqual(await cluster.mget(a, b), ['70', '30']);
  // Keys in two slots: the server refuses with CROSSSLOT, which outcome() throws again.
  await assert.rejects(runOn(a, ['SET', a, '1'], ['SET', '{other}:b', '2']), { message: /^CROSSSLOT/ });
  console.log('cluster: TXU.RUN routed by its key with no MOVED; committed, rolled back, CROSSSLOT refused');
  cluster.disconnect();
} else {
  console.log('cluster: skipped (TXU_CLUSTER_URL not set)');
}
