"""Flink keys for the job's shards, chosen so the shards spread evenly over the analysis subtasks.

PyFlink's key_by wraps the key in a one-field Row, whose hashCode() is 62 + k for an Integer k (measured), and
Flink sends it to key group murmur(62 + k) % max_parallelism and a key group g to subtask
g * parallelism // max_parallelism. With only a handful of shards, hashing the shard numbers themselves
leaves subtasks uneven (16 shards over 2 subtasks land 11 / 5, over 4 subtasks 3 / 8 / 1 / 4). So shard s is
keyed by the smallest unused integer whose key group falls in the s-th of `SPREAD` equal ranges (mod SPREAD):
because the ranges of a power-of-two parallelism nest, every power-of-two parallelism up to SPREAD that divides
the shard count gets exactly shards / parallelism shards per subtask.
"""

from __future__ import annotations

from functools import cache

MAX_PARALLELISM = 128  # set on the operator, so key groups (and savepoints) do not depend on its parallelism
SPREAD = 8
ROW_HASH_OFFSET = 62  # Row.of(k).hashCode() - k, measured on Flink 1.20 (tests/unit/test_shard_stream.py)
_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def flink_murmur(code: int) -> int:
    """org.apache.flink.util.MathUtils.murmurHash(int), which KeyGroupRangeAssignment applies to hashCode()."""
    h = (code * 0xCC9E2D51) & _MASK
    h = (_rotl(h, 15) * 0x1B873593) & _MASK
    h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    h ^= 4
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    signed = h - (1 << 32) if h & 0x80000000 else h
    return abs(signed) if signed != -(1 << 31) else 0


def key_group(key: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    """The key group of integer key `key` in PyFlink's Row wrapper (KeyByKeySelector)."""
    return flink_murmur((key + ROW_HASH_OFFSET) & _MASK) % max_parallelism


def subtask_of(key: int, parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    return key_group(key, max_parallelism) * parallelism // max_parallelism


@cache
def shard_keys(shards: int) -> tuple[int, ...]:
    """The Flink key of each shard 0 .. shards - 1."""
    group_span = MAX_PARALLELISM // SPREAD
    keys: list[int] = []
    candidate = 0
    for shard in range(shards):
        wanted = shard % SPREAD
        while key_group(candidate) // group_span != wanted:
            candidate += 1
        keys.append(candidate)
        candidate += 1
    return tuple(keys)
