"""Which worker should own which partition: a pure function every worker computes alike.

Given the same member list, every worker gets the same answer, so nobody negotiates: a worker takes
the free partitions assigned to it and hands back the ones assigned to another live worker. The rule
is rendezvous hashing (each partition ranks the workers by a hash of (partition, worker)) with a
capacity of ⌈P / W⌉ per worker, so the load is balanced to within one partition and a change of
membership moves few partitions beyond the ones it must: a departing worker's partitions go to the
next in their ranking, a joining worker takes its share, and the capacity rule shuffles a couple
more (tested: 16 partitions, 3 → 4 workers moves 4-6).
"""

from __future__ import annotations

import hashlib
import math


def _score(partition: int, member: str) -> int:
    digest = hashlib.blake2b(f"{partition}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(partitions: int, members: list[str] | set[str]) -> dict[int, str]:
    """partition → member for partitions 0..P-1 (empty when there are no members)."""
    members = sorted(set(members))
    if not members:
        return {}
    capacity = math.ceil(partitions / len(members))
    load = dict.fromkeys(members, 0)
    out: dict[int, str] = {}
    for p in range(partitions):
        for member in sorted(members, key=lambda m: (-_score(p, m), m)):
            if load[member] < capacity:
                out[p] = member
                load[member] += 1
                break
    return out
