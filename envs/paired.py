"""Paired comparison of two policies evaluated on the same episodes: McNemar's exact test.

Two evaluations of the same protocol (same suite, tasks, init states, seed) score the same
episodes, so their outcomes pair up by (suite, task, episode). Only the discordant pairs (one
policy succeeded, the other failed) carry evidence of a difference; under "no difference" each
discordant pair goes either way with probability 1/2, so the count of one kind is Binomial(n, 1/2)
with n the number of discordant pairs. benchmarks/rl's README reported it by hand;
benchmarks/ablations computes it here from the per-episode JSON lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 with no discordant pair)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a}, {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def episode_key(record: dict) -> tuple[str, int, int]:
    """What identifies an episode of the protocol across evaluations."""
    return (str(record["suite"]), int(record["task"]), int(record["episode"]))


@dataclass(frozen=True)
class Paired:
    """Outcomes of policies A and B on the episodes both evaluations recorded."""

    episodes: int
    both: int  # successes of both
    only_a: int
    only_b: int
    neither: int

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.only_a, self.only_b)

    def to_dict(self) -> dict:
        return {
            "episodes": self.episodes,
            "both": self.both,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "neither": self.neither,
            "p_value": self.p_value,
        }


def pair_outcomes(records_a: list[dict], records_b: list[dict]) -> Paired:
    """Pair two evaluations' episode records by (suite, task, episode); episodes only one of them
    recorded (an evaluation still running) are left out."""
    a = {episode_key(r): bool(r["success"]) for r in records_a}
    b = {episode_key(r): bool(r["success"]) for r in records_b}
    shared = sorted(set(a) & set(b))
    counts = {(x, y): 0 for x in (True, False) for y in (True, False)}
    for key in shared:
        counts[(a[key], b[key])] += 1
    return Paired(
        episodes=len(shared),
        both=counts[(True, True)],
        only_a=counts[(True, False)],
        only_b=counts[(False, True)],
        neither=counts[(False, False)],
    )
