"""txu on a Redis Cluster with redis-py's RedisCluster.

Shows TXU.RUN routed by its keys (a commit and a rollback on hash-tagged keys), that the keys
live on the primary that owns their slot, and keys of two slots refused (by redis-py, and by the server).

How RedisCluster routes TXU.RUN, a module command it has no table entry for: at start it
reads COMMAND from the server, where txu.run carries the flag `movablekeys`. For such a
command redis-py asks a node `COMMAND GETKEYS TXU.RUN ...` before each call, and txu answers
with the keys of every inner command; redis-py hashes them to a slot and sends TXU.RUN to
that slot's primary (and follows MOVED/ASK if the slot moved). So it works with no txu code,
at the cost of one extra round trip per call. To skip that round trip, pass the node
yourself: rc.execute_command(..., target_nodes=rc.get_node_from_key(key)) (a MOVED reply is
still followed; shown below).

Run: TXU_CLUSTER_URL=redis://127.0.0.1:7000 python txu_cluster.py   (needs redis-py)
"""
from __future__ import annotations

import os

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (ClusterCrossSlotError, MovedError, RedisClusterException,
                              ResponseError)

# The typed outcomes and their parser: txu_sync.py's (one definition for every example).
from txu_sync import Committed, Outcome, RolledBack, outcome_of


def txu_run(rc: RedisCluster, *commands: tuple, **kwargs) -> Outcome:
    args: list = ["TXU.RUN"]
    for cmd in commands:
        args += [len(cmd), *cmd]          # <argc> counts the command name too
    try:
        return Committed(rc.execute_command(*args, **kwargs))
    except ResponseError as err:
        return outcome_of(err)


def expect(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def main() -> None:
    rc = RedisCluster.from_url(os.environ.get("TXU_CLUSTER_URL", "redis://127.0.0.1:7000"),
                               decode_responses=True)
    # One hash tag, {user1}, puts both keys in one slot: a transaction lives in one slot.
    balance, spent = "{user1}:balance", "{user1}:spent"
    rc.delete(balance, spent)                           # (one key per DEL in a cluster)
    rc.mset_nonatomic({balance: 100, spent: 0})

    # Commit: spend 30 if the balance stays >= 0.
    out = txu_run(rc, ("DECRBY", balance, 30), ("TXU.CHECK", 1, "GE", 0), ("INCRBY", spent, 30))
    print(f"spend 30: {out}")
    expect(out, Committed([70, "OK", 30]), "spend 30")

    # Rollback: spending 80 would go below 0; the DECRBY is undone.
    out = txu_run(rc, ("DECRBY", balance, 80), ("TXU.CHECK", 1, "GE", 0), ("INCRBY", spent, 80))
    print(f"spend 80: {out}")
    expect((type(out), out.index, out.command), (RolledBack, 2, "TXU.CHECK"), "spend 80")
    expect(rc.mget_nonatomic(balance, spent), ["70", "30"], "values after the rollback")

    # The keys are on the primary that owns their slot: read them on each primary with a
    # plain connection (no routing). The owner answers; the others redirect to it (MOVED).
    slot = rc.keyslot(balance)
    owner = rc.get_node_from_key(balance)
    for node in rc.get_primaries():
        direct = redis.Redis(host=node.host, port=node.port, decode_responses=True)
        try:
            value = direct.get(balance)
            print(f"  {node.name} owns slot {slot}: {balance} = {value}")
            expect((node.name, value), (owner.name, "70"), "the node that answered")
        except MovedError as moved:  # redis-py parses "MOVED <slot> <host>:<port>"
            print(f"  {node.name}: MOVED {moved.slot_id} {moved.host}:{moved.port}")
            expect((moved.slot_id, moved.host, moved.port), (slot, owner.host, owner.port),
                   "redirect")
        finally:
            direct.close()

    # Skipping COMMAND GETKEYS: name the node. Even a wrong one works: it replies MOVED and
    # redis-py follows the redirect to the owner.
    wrong = next(n for n in rc.get_primaries() if n is not owner)
    out = txu_run(rc, ("INCRBY", spent, 1), target_nodes=wrong)
    print(f"sent to {wrong.name} (not the owner), redirected: {out}")
    expect(out, Committed([31]), "TXU.RUN sent to the wrong node")

    # Keys of two slots. redis-py refuses the call itself (it learnt the keys from COMMAND
    # GETKEYS); sent to a node anyway (target_nodes skips that check), the server refuses it
    # with CROSSSLOT, which redis-py raises as ClusterCrossSlotError. Nothing is written.
    a, b = "{user1}:cross", "{user2}:cross"
    rc.delete(a)
    rc.delete(b)
    try:
        txu_run(rc, ("SET", a, 1), ("SET", b, 2))
        raise AssertionError("a TXU.RUN over two slots was accepted")
    except RedisClusterException as err:
        print(f"two slots: refused by redis-py: {err}")
    try:
        txu_run(rc, ("SET", a, 1), ("SET", b, 2), target_nodes=owner)
        raise AssertionError("a TXU.RUN over two slots was accepted by the server")
    except ClusterCrossSlotError as err:
        print(f"two slots: refused by the server: CROSSSLOT {err}")
    expect((rc.exists(a), rc.exists(b)), (0, 0), "keys after the cross-slot calls")
    rc.close()


if __name__ == "__main__":
    main()
