"""Simulated A/B tests of engine.promotion: false-promotion rate under A/A, power and stopping times.

Every simulated test is monitored after every game, from the minimum number of games per arm up to a
horizon, with the engine's own e-values (vectorised over the simulations, a block of games at a time).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.promotion import PromotionSettings, log_e_values

IntArray = NDArray[np.int64]
BASE_RATE = 0.75  # bench/RESULTS.md: the bots win 74.0-76.5 % of games against simulated people
HORIZON = 20_000  # games per simulated test (both arms), 10,000 per arm at the default split
BLOCK = 400


@dataclass(frozen=True, slots=True)
class Runs:
    """First game (1-based, both arms counted) at which each test's boundaries were crossed; 0 = never."""

    promote_at: IntArray
    futile_at: IntArray

    @property
    def promoted(self) -> NDArray[np.bool_]:
        """The test's decision was promotion (it crossed the promotion boundary first, or at the same game)."""
        first: NDArray[np.bool_] = (self.futile_at == 0) | (self.promote_at <= self.futile_at)
        return (self.promote_at > 0) & first

    @property
    def rejected(self) -> NDArray[np.bool_]:
        return (self.futile_at > 0) & ~self.promoted

    @property
    def stopped_at(self) -> IntArray:
        """Games when the test decided (0 = undecided at the horizon)."""
        both = np.where(self.promote_at > 0, self.promote_at, np.iinfo(np.int64).max)
        first = np.minimum(both, np.where(self.futile_at > 0, self.futile_at, np.iinfo(np.int64).max))
        return np.where(first == np.iinfo(np.int64).max, 0, first)


def simulate(
    p_production: float,
    p_b: float,
    settings: PromotionSettings,
    sims: int,
    seed: int,
    horizon: int = HORIZON,
    watch_promotion: bool = False,
) -> Runs:
    """`sims` tests of Bernoulli games; each stops at its first decision, or with `watch_promotion` only
    once the promotion boundary has been crossed too (to measure that boundary alone, ignoring futility)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((4, sims), dtype=np.int64)  # production games, production wins, B games, B wins
    promote_at = np.zeros(sims, dtype=np.int64)
    futile_at = np.zeros(sims, dtype=np.int64)
    threshold = math.log(settings.threshold)
    for start in range(0, horizon, BLOCK):
        active = np.flatnonzero((promote_at == 0) if watch_promotion else (promote_at == 0) & (futile_at == 0))
        if not len(active):
            break
        k = min(BLOCK, horizon - start)
        to_b = rng.random((len(active), k)) < settings.split
        won = rng.random((len(active), k)) < np.where(to_b, p_b, p_production)
        c = counts[:, active, None] + np.stack(
            [np.cumsum(~to_b, 1), np.cumsum(~to_b & won, 1), np.cumsum(to_b, 1), np.cumsum(to_b & won, 1)]
        )
        ready = (c[0] >= settings.min_games) & (c[2] >= settings.min_games)
        better = np.zeros_like(ready)
        futile = np.zeros_like(ready)
        if ready.any():
            log_better, log_futile = log_e_values(c[0][ready], c[1][ready], c[2][ready], c[3][ready], settings)
            better[ready] = log_better >= threshold
            futile[ready] = log_futile >= threshold
        for crossed, first in ((better, promote_at), (futile, futile_at)):
            hit = crossed.any(1) & (first[active] == 0)
            first[active[hit]] = start + 1 + crossed[hit].argmax(1)
        counts[:, active] = c[:, :, -1]
    return Runs(promote_at, futile_at)


def _wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(flags: NDArray[np.bool_]) -> dict[str, Any]:
    n, hits = len(flags), int(flags.sum())
    low, high = _wilson(hits, n)
    return {"count": hits, "rate": round(hits / n, 4), "ci95": [round(low, 4), round(high, 4)]}


def _per_arm(games: IntArray, split: float) -> dict[str, Any]:
    """Median and 90th percentile of `games` (decided tests only), as games of the larger arm."""
    if not len(games):
        return {"median": None, "p90": None}
    larger = max(split, 1 - split)
    return {q: int(np.percentile(games, pct) * larger) for q, pct in (("median", 50), ("p90", 90))}


def fixed_sample_per_arm(p_production: float, p_b: float, alpha: float, power: float) -> int:
    """Games per arm a one-look, one-sided z-test at `alpha` needs for `power` (for comparison)."""
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    var = p_production * (1 - p_production) + p_b * (1 - p_b)
    return math.ceil(z * z * var / (p_b - p_production) ** 2)


def aa(settings: PromotionSettings, rate: float, sims: int, seed: int) -> dict[str, Any]:
    """A/A: both arms win at `rate`; every promotion is false."""
    runs = simulate(rate, rate, settings, sims, seed, watch_promotion=True)
    decided = runs.stopped_at[runs.stopped_at > 0]
    return {
        "win_rate": rate,
        "split": settings.split,
        "sims": sims,
        "horizon_games": HORIZON,
        "false_promotions": _rate(runs.promoted),
        "promotion_boundary_ever_crossed": _rate(runs.promote_at > 0),
        "rejected": _rate(runs.rejected),
        "undecided_at_horizon": _rate(runs.stopped_at == 0),
        "games_per_arm_to_decide": _per_arm(decided, settings.split),
    }


def power(settings: PromotionSettings, p_production: float, p_b: float, sims: int, seed: int) -> dict[str, Any]:
    """B truly better (or worse): how often and how fast the test promotes it."""
    runs = simulate(p_production, p_b, settings, sims, seed)
    promoted = np.sort(runs.promote_at[runs.promoted])
    target = math.ceil(0.8 * sims)
    at_80 = int(promoted[target - 1] * max(settings.split, 1 - settings.split)) if len(promoted) >= target else None
    decided = runs.stopped_at[runs.stopped_at > 0]
    return {
        "win_rates": [p_production, p_b],
        "sims": sims,
        "horizon_games": HORIZON,
        "promoted": _rate(runs.promoted),
        "rejected": _rate(runs.rejected),
        "undecided_at_horizon": _rate(runs.stopped_at == 0),
        "games_per_arm_for_80pct_promoted": at_80,
        "games_per_arm_to_decide": _per_arm(decided, settings.split),
        "fixed_sample_per_arm_one_look": fixed_sample_per_arm(p_production, p_b, settings.alpha, 0.8),
    }


def run(sims: int = 2000) -> dict[str, Any]:
    """The bench section: A/A at the bots' win rate (two splits), power for +5 points, a worse B."""
    started = time.perf_counter()
    default = PromotionSettings()
    out: dict[str, Any] = {
        "settings": {
            "alpha": default.alpha,
            "min_games": default.min_games,
            "margin": default.margin,
            "tau": default.tau,
        },
        "aa": aa(default, BASE_RATE, sims, seed=1),
        "aa_split_20": aa(PromotionSettings(split=0.2), BASE_RATE, sims // 2, seed=2),
        "aa_rate_50": aa(default, 0.5, sims // 2, seed=3),
        "plus_5_points": power(default, BASE_RATE, BASE_RATE + 0.05, sims // 2, seed=4),
        "plus_5_points_from_70": power(default, 0.70, 0.75, sims // 2, seed=5),
        "minus_5_points": power(default, BASE_RATE, BASE_RATE - 0.05, sims // 2, seed=6),
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out
