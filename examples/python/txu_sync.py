"""txu from redis-py (synchronous client).

Shows:
  1. TXU.RUN as one call: a commit, a rollback by a failing command, a rollback by TXU.CHECK.
  2. The three-command form (TXU.BEGIN / TXU.QUEUE / TXU.EXEC) on ONE pinned connection,
     and what goes wrong with separate calls on a pooled client.
  3. EXECABORT: a transaction refused before anything ran.
  4. RETRY: DEFERRED, then PENDING for a transaction behind it, then the task is done.
All of it with a RESP2 client (redis-py's default) and a RESP3 client (protocol=3): the
replies are the same.

Run: TXU_URL=redis://127.0.0.1:6379 python txu_sync.py   (needs redis-py, Python >= 3.10)
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import redis
from redis.exceptions import ExecAbortError, ResponseError


# --- Typed outcomes -----------------------------------------------------------------------
# txu reports how a transaction ended in its error reply's first word. We turn each into a
# class the application can `match` on. Errors that are not a transaction outcome (ERR
# syntax, NOPERM, connection errors) stay exceptions.

@dataclass
class Committed:          # every command ran; `replies` holds each command's reply
    replies: list
    txid: str | None = None   # set with RETAIN (or the three-command form)

@dataclass
class RolledBack:         # command `index` failed; every earlier write was undone
    index: int
    command: str
    error: str

@dataclass
class Deferred:           # RETRY: rolled back on a transient fault, kept as a task that
    task_id: str          # txu's timer retries; ask TXU.STATUS <task_id> later
    why: str

@dataclass
class Pending:            # touched a key a deferred task waits on; nothing was applied
    key: str
    task_id: str

@dataclass
class Refused:            # EXECABORT: refused before anything ran (e.g. a blocking command)
    error: str

Outcome = Committed | RolledBack | Deferred | Pending | Refused

ROLLBACK = re.compile(r"ROLLBACK command (\d+) \((.*?)\) failed: (.*)", re.S)
DEFERRED = re.compile(r"DEFERRED (\S+) (.*)", re.S)
PENDING = re.compile(r"PENDING key '(.*)' waits for deferred task (\S+);", re.S)


def outcome_of(err: ResponseError) -> Outcome:
    # redis-py strips the error codes it knows ("ERR ", "EXECABORT ", "NOPERM ", ...) from the
    # message and raises a subclass instead: EXECABORT arrives as ExecAbortError("Transaction
    # discarded ..."). Codes it does not know (ROLLBACK, DEFERRED, PENDING) stay in the text.
    if isinstance(err, ExecAbortError):
        return Refused(str(err))
    text = str(err)
    if m := ROLLBACK.match(text):
        return RolledBack(int(m[1]), m[2], m[3])
    if m := DEFERRED.match(text):
        return Deferred(m[1], m[2])
    if m := PENDING.match(text):
        return Pending(m[1], m[2])
    raise err  # not a transaction outcome: a bug or an operational problem


def txu_run(r: redis.Redis, *commands: tuple, retry: int | None = None,
            retain_ms: int | None = None) -> Outcome:
    """TXU.RUN [RETRY n] [RETAIN ms] <argc> <cmd...> ...: a whole transaction in one call.

    It keeps no connection state, so it is safe on redis-py's pooled client, from any thread.
    Note: redis-py 6 sends a command again after a connection error (3 retries by default).
    If a connection drops after the server ran the transaction but before its reply arrived,
    the retry runs it a second time. For a transaction that must not run twice, build the
    client with retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0) and decide yourself.
    """
    args: list = ["TXU.RUN"]
    if retry is not None:
        args += ["RETRY", retry]
    if retain_ms is not None:
        args += ["RETAIN", retain_ms]
    for cmd in commands:
        args += [len(cmd), *cmd]          # <argc> counts the command name too
    try:
        reply = r.execute_command(*args)
    except ResponseError as err:
        return outcome_of(err)
    if retain_ms is not None:             # with RETAIN the reply is [txid, replies]
        return Committed(reply[1], txid=reply[0])
    return Committed(reply)


def txu_pinned(r: redis.Redis, *commands: tuple) -> Outcome:
    """TXU.BEGIN / TXU.QUEUE ... / TXU.EXEC on one connection.

    The open transaction lives on the server's connection. redis-py's Redis() is a POOL:
    each r.execute_command() borrows any free connection and gives it back, so
    r.execute_command("TXU.BEGIN") then r.execute_command("TXU.QUEUE", ...) may use two
    different connections (another thread may have taken the first one meanwhile: its
    commands then join our transaction, ours land outside any). A pipeline borrows ONE
    connection for the whole execute() and sends everything on it, so the transaction opens
    and closes on the same connection. (TXU.RUN avoids the question altogether.)
    """
    pipe = r.pipeline(transaction=False)  # transaction=False: no MULTI/EXEC around it
    pipe.execute_command("TXU.BEGIN")
    for cmd in commands:
        pipe.execute_command("TXU.QUEUE", *cmd)
    pipe.execute_command("TXU.EXEC")
    # raise_on_error=False returns errors as exception objects in place. With the default
    # (True) redis-py raises the first one with its message rewritten to
    # "Command # N (TXU.EXEC) of pipeline caused error: ROLLBACK ...".
    txid, *queued, result = pipe.execute(raise_on_error=False)
    if isinstance(txid, Exception):
        raise txid
    if isinstance(result, ResponseError):
        outcome = outcome_of(result)
        if isinstance(outcome, Refused):  # say which TXU.QUEUE spoiled it, and why
            why = [f"command {i}: {e}" for i, e in enumerate(queued, 1) if isinstance(e, Exception)]
            outcome.error += " (" + "; ".join(why) + ")"
        return outcome
    return Committed(result, txid=txid)


# --- Helpers for the example --------------------------------------------------------------

def expect(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def status(r: redis.Redis, txid: str) -> dict:
    # A map: a dict over RESP3, a flat [field, value, ...] list over RESP2.
    reply = r.execute_command("TXU.STATUS", txid)
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


def wait_until_done(r: redis.Redis, task_id: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (st := status(r, task_id))["state"] == "pending":
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still pending after {timeout_s}s: {st}")
        time.sleep(0.05)
    return st


# --- The example --------------------------------------------------------------------------

def demo(r: redis.Redis, tag: str) -> list:
    """Runs every case on client `r`; returns what happened (without ids) for comparison."""
    alice, bob, log = f"py:{tag}:alice", f"py:{tag}:bob", f"py:{tag}:log"
    r.delete(alice, bob, log)
    r.set(alice, 100)
    r.set(bob, 20)
    seen = []

    # 1. Commit: move 30 from alice to bob, only if alice stays >= 0 (TXU.CHECK 1 GE 0).
    out = txu_run(r, ("DECRBY", alice, 30), ("TXU.CHECK", 1, "GE", 0), ("INCRBY", bob, 30))
    print(f"  transfer 30: {out}")
    expect(out, Committed([70, "OK", 50]), "transfer 30")
    seen.append(out)

    # 1b. Rollback by a failing command: HSET on a string key fails with WRONGTYPE.
    out = txu_run(r, ("DECRBY", alice, 30), ("HSET", bob, "currency", "EUR"))
    match out:
        case RolledBack(index, command, error):
            print(f"  rolled back: command {index} ({command}) failed: {error}")
    expect((out.index, out.command, out.error.split()[0]), (2, "HSET", "WRONGTYPE"), "rollback")
    expect(r.mget(alice, bob), ["70", "50"], "balances after the rollback (DECRBY undone)")
    seen.append(out)

    # 1c. Rollback by a guard: alice would go below 0.
    out = txu_run(r, ("DECRBY", alice, 80), ("TXU.CHECK", 1, "GE", 0), ("INCRBY", bob, 80))
    print(f"  transfer 80: {out}")
    expect((type(out), out.index, out.command), (RolledBack, 2, "TXU.CHECK"), "guarded transfer")
    expect(r.mget(alice, bob), ["70", "50"], "balances after the failed check")
    seen.append(out)

    # 2. Three-command form, pinned to one connection by a pipeline.
    out = txu_pinned(r, ("DECRBY", alice, 10), ("INCRBY", bob, 10), ("LPUSH", log, "alice->bob:10"))
    print(f"  pinned transfer 10: replies {out.replies}, txid {out.txid}")
    expect(out.replies, [60, 60, 1], "pinned transfer")
    seen.append(out.replies)

    out = txu_pinned(r, ("DECRBY", alice, 10), ("HSET", bob, "currency", "EUR"))
    print(f"  pinned, failing: {out}")
    expect((type(out), out.index), (RolledBack, 2), "pinned rollback")
    expect(r.get(alice), "60", "alice after the pinned rollback")
    seen.append(out)

    # 3. EXECABORT: BLPOP could block the server, so txu refuses the whole transaction
    #    before running anything (TXU.RUN names the command; TXU.EXEC says "previous errors").
    out = txu_run(r, ("DECRBY", alice, 1), ("BLPOP", log, 0))
    print(f"  refused: {out}")
    expect(type(out), Refused, "TXU.RUN with BLPOP")
    expect("command 2 (BLPOP)" in out.error, True, f"refusal names BLPOP ({out.error})")
    out2 = txu_pinned(r, ("DECRBY", alice, 1), ("BLPOP", log, 0))
    print(f"  refused (pinned): {out2}")
    expect(type(out2), Refused, "pinned form with BLPOP")
    expect(r.get(alice), "60", "alice after the refusals")
    seen += [type(out), type(out2)]
    return seen


def wrong_way(r: redis.Redis) -> None:
    """Why separate pooled calls are wrong, made deterministic: between our TXU.BEGIN and
    our TXU.QUEUE, "another thread" borrows the connection that holds the transaction."""
    pool = r.connection_pool
    r.execute_command("TXU.BEGIN")         # opened on some connection A, which goes back
    other_thread = pool.get_connection()   # another thread now uses A ...
    try:
        r.execute_command("TXU.QUEUE", "SET", "py:wrong", "1")  # ... so this goes to B
        raise AssertionError("TXU.QUEUE on a second pooled connection was accepted")
    except ResponseError as err:
        print(f"  separate pooled calls: TXU.QUEUE got '{err}' (it ran on another connection)")
        expect(str(err), "TXU.QUEUE without TXU.BEGIN", "TXU.QUEUE off the pinned connection")
    finally:  # clean up: A still holds the open transaction
        other_thread.send_command("TXU.ROLLBACK")
        expect(other_thread.read_response(), "OK", "TXU.ROLLBACK on connection A")
        pool.release(other_thread)


def deferred(r: redis.Redis, tag: str) -> None:
    """RETRY: a transient fault (NOREPLICAS) defers the transaction instead of losing it."""
    key = f"py:{tag}:deferred"
    r.delete(key)
    r.config_set("min-replicas-to-write", 1)  # no replica here: every write gets NOREPLICAS
    try:
        out = txu_run(r, ("SET", key, "v"), retry=5)
        print(f"  with RETRY under NOREPLICAS: {out}")
        expect((type(out), out.why.split()[0]), (Deferred, "NOREPLICAS"), "RETRY transaction")
        task = out.task_id
        expect(status(r, task)["state"], "pending", "TXU.STATUS of the task")

        out = txu_run(r, ("SET", key, "w"))   # must not overtake the deferred task
        print(f"  another transaction on the key: {out}")
        expect(out, Pending(key, task), "transaction behind the task")
    finally:
        r.config_set("min-replicas-to-write", 0)  # reset even when the example fails
    st = wait_until_done(r, task)
    print(f"  after the fault cleared: task {task} is {st['state']}, {key} = {r.get(key)!r}")
    expect(st["state"], "done", "task state")
    expect(r.get(key), "v", "value written by the retried task")


def main() -> None:
    url = os.environ.get("TXU_URL", "redis://127.0.0.1:6379")
    results = {}
    for protocol in (2, 3):
        r = redis.Redis.from_url(url, protocol=protocol, decode_responses=True)
        print(f"RESP{protocol}:")
        results[protocol] = demo(r, f"resp{protocol}")
        if protocol == 2:
            wrong_way(r)
        deferred(r, f"resp{protocol}")
        r.close()
    # Same typed results from both protocols (errors and arrays alike).
    expect(results[3], results[2], "RESP3 results vs RESP2")
    print("RESP2 and RESP3 gave the same results")


if __name__ == "__main__":
    main()
