"""txu from redis-py's asyncio client (redis.asyncio).

Shows TXU.RUN (a commit, a rollback, many transfers at once on one pooled client) and the
three-command form pinned to one connection by an async pipeline.

Run: TXU_URL=redis://127.0.0.1:6379 python txu_asyncio.py   (needs redis-py, Python >= 3.10)
"""
from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis
from redis.exceptions import ResponseError

# The typed outcomes and their parser: txu_sync.py's (one definition for every example).
from txu_sync import Committed, Outcome, RolledBack, outcome_of


async def txu_run(r: redis.Redis, *commands: tuple) -> Outcome:
    """TXU.RUN <argc> <cmd...> ...: one call, no connection state, any pooled connection."""
    args: list = ["TXU.RUN"]
    for cmd in commands:
        args += [len(cmd), *cmd]
    try:
        return Committed(await r.execute_command(*args))
    except ResponseError as err:
        return outcome_of(err)


async def txu_pinned(r: redis.Redis, *commands: tuple) -> Outcome:
    """TXU.BEGIN / TXU.QUEUE ... / TXU.EXEC on one connection.

    redis.asyncio.Redis is a pool too: between two awaited calls another task may take the
    connection that holds our open transaction. An async pipeline holds ONE connection
    for its whole execute(), so BEGIN, every QUEUE and EXEC go to the same connection.
    """
    async with r.pipeline(transaction=False) as pipe:
        pipe.execute_command("TXU.BEGIN")
        for cmd in commands:
            pipe.execute_command("TXU.QUEUE", *cmd)
        pipe.execute_command("TXU.EXEC")
        # raise_on_error=False: errors come back in place, with their message unchanged.
        txid, *_queued, result = await pipe.execute(raise_on_error=False)
    if isinstance(txid, Exception):
        raise txid
    if isinstance(result, ResponseError):
        return outcome_of(result)
    return Committed(result, txid=txid)


def expect(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


async def main() -> None:
    r = redis.Redis.from_url(os.environ.get("TXU_URL", "redis://127.0.0.1:6379"),
                             decode_responses=True)
    alice, bob = "py:async:alice", "py:async:bob"
    await r.delete(alice, bob)
    await r.mset({alice: 100, bob: 0})

    # Commit.
    out = await txu_run(r, ("DECRBY", alice, 10), ("INCRBY", bob, 10))
    print(f"transfer 10: {out}")
    expect(out, Committed([90, 10]), "transfer 10")

    # Rollback: the second command fails (WRONGTYPE), the DECRBY is undone.
    out = await txu_run(r, ("DECRBY", alice, 10), ("HSET", bob, "currency", "EUR"))
    match out:
        case RolledBack(index, command, error):
            print(f"rolled back: command {index} ({command}) failed: {error}")
        case _:
            raise AssertionError(f"expected a rollback, got {out}")
    expect(await r.mget(alice, bob), ["90", "10"], "balances after the rollback")

    # Many transactions at once on the shared pool: safe, TXU.RUN keeps no connection state.
    # Each moves 10 unless alice would go below 0 (the TXU.CHECK rolls those back).
    outs = await asyncio.gather(*(
        txu_run(r, ("DECRBY", alice, 10), ("TXU.CHECK", 1, "GE", 0), ("INCRBY", bob, 10))
        for _ in range(12)))
    done = sum(isinstance(o, Committed) for o in outs)
    refused = sum(isinstance(o, RolledBack) and o.command == "TXU.CHECK" for o in outs)
    print(f"12 concurrent transfers: {done} committed, {refused} rolled back by the check")
    expect((done, refused), (9, 3), "concurrent transfers (alice had 90)")
    expect(await r.mget(alice, bob), ["0", "100"], "balances after the concurrent transfers")

    # Three-command form, pinned by an async pipeline: a commit, then a rollback.
    out = await txu_pinned(r, ("INCRBY", alice, 5), ("DECRBY", bob, 5))
    print(f"pinned transfer 5 back: replies {out.replies}, txid {out.txid}")
    expect(out.replies, [5, 95], "pinned transfer")
    out = await txu_pinned(r, ("INCRBY", alice, 5), ("LPUSH", bob, "x"))
    print(f"pinned, failing: {out}")
    expect((type(out), out.index, out.command), (RolledBack, 2, "LPUSH"), "pinned rollback")
    expect(await r.mget(alice, bob), ["5", "95"], "balances after the pinned rollback")

    await r.aclose()


if __name__ == "__main__":
    asyncio.run(main())
