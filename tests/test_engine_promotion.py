"""engine.promotion: the sequential test's error rates, SRM, challenger ranking and every lifecycle branch."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import quad

from engine.promotion import (
    Arm,
    Lineup,
    Losses,
    Outcome,
    PromotionSettings,
    admit,
    decide,
    log_e_value,
    log_e_values,
    rank_challengers,
    srm_check,
    step,
)

SETTINGS = PromotionSettings()


def _first_crossings(p_production: float, p_b: float, sims: int, games: int, seed: int) -> tuple[list[int], list[int]]:
    """Per simulated test, monitored after every game: first game crossing promotion / futility (0 = never)."""
    rng = np.random.default_rng(seed)
    promote: list[int] = []
    futile: list[int] = []
    threshold = math.log(SETTINGS.threshold)
    for _ in range(sims):
        to_b = rng.random(games) < SETTINGS.split
        won = rng.random(games) < np.where(to_b, p_b, p_production)
        counts = [np.cumsum(x, dtype=np.int64) for x in (~to_b, ~to_b & won, to_b, to_b & won)]
        ready = np.flatnonzero((counts[0] >= SETTINGS.min_games) & (counts[2] >= SETTINGS.min_games))
        production_games, production_wins, b_games, b_wins = (c[ready] for c in counts)
        better, futility = log_e_values(production_games, production_wins, b_games, b_wins, SETTINGS)
        for log_e, out in ((better, promote), (futility, futile)):
            crossed = np.flatnonzero(log_e >= threshold)
            out.append(int(ready[crossed[0]]) + 1 if len(crossed) else 0)
    return promote, futile


def _promoted(promote: list[int], futile: list[int]) -> int:
    return sum(1 for p, f in zip(promote, futile, strict=True) if p and (not f or p <= f))


def test_aa_false_promotion_rate_stays_within_alpha() -> None:
    """300 seeded A/A tests at the bots' win rate, looked at after every game up to 3,000 games per arm."""
    promote, futile = _first_crossings(0.75, 0.75, sims=300, games=6000, seed=11)
    allowed = SETTINGS.alpha * 300 + 7  # alpha plus about two binomial standard deviations
    assert _promoted(promote, futile) <= allowed
    assert sum(1 for p in promote if p) <= allowed  # the promotion boundary alone, futility ignored
    assert sum(1 for f in futile if f) >= 270  # and equal versions do end: B rejected as futile


def test_power_against_a_large_difference() -> None:
    promote, futile = _first_crossings(0.55, 0.75, sims=100, games=2000, seed=12)
    assert _promoted(promote, futile) >= 95
    promote, futile = _first_crossings(0.75, 0.55, sims=100, games=2000, seed=13)
    assert _promoted(promote, futile) == 0
    assert sum(1 for f in futile if f) >= 95


@pytest.mark.parametrize(
    ("excess", "var"), [(0.03, 4e-4), (0.0, 1e-3), (-0.02, 2e-4), (-0.1, 1e-4), (-0.4, 1e-4), (0.2, 5e-5)]
)
def test_e_value_is_the_half_normal_mixture_of_likelihood_ratios(excess: float, var: float) -> None:
    """The closed form equals the mixture integral, in the far tail (z < -30) too."""
    tau = SETTINGS.tau
    mode = max(0.0, excess)  # where the likelihood ratio peaks on theta >= 0

    def integrand(theta: float) -> float:
        log_ratio = (theta * excess - theta * theta / 2) / var - (mode * excess - mode * mode / 2) / var
        return math.exp(log_ratio) * 2 * float(stats.norm.pdf(theta, scale=tau))

    width = math.sqrt(var)
    edges = [0.0, *(x for x in (mode - 8 * width, mode + 8 * width) if x > 0), 1.0]
    pieces = [quad(integrand, a, b, epsabs=0, epsrel=1e-12, limit=200)[0] for a, b in itertools.pairwise(edges)]
    numeric = (mode * excess - mode * mode / 2) / var + math.log(sum(pieces))
    closed = float(log_e_value(np.array([excess]), np.array([var]), tau)[0])
    assert closed == pytest.approx(numeric, abs=1e-7)


def test_decide_promotes_rejects_or_keeps_collecting() -> None:
    assert decide(Arm(99, 99, 0), Arm(99, 99, 99), SETTINGS).outcome is Outcome.CONTINUE  # minimum games
    better = decide(Arm(400, 400, 280), Arm(400, 400, 340), SETTINGS)
    assert better.outcome is Outcome.PROMOTE
    assert better.evidence.low > 0 and better.evidence.e_better >= 20 and better.evidence.p_better <= 0.05
    worse = decide(Arm(400, 400, 340), Arm(400, 400, 280), SETTINGS)
    assert worse.outcome is Outcome.REJECT and worse.evidence.high < SETTINGS.margin
    tie = decide(Arm(5000, 5000, 3750), Arm(5000, 5000, 3750), SETTINGS)
    assert tie.outcome is Outcome.REJECT  # ties keep Production
    unsure = decide(Arm(300, 300, 225), Arm(300, 300, 234), SETTINGS)
    assert unsure.outcome is Outcome.CONTINUE
    assert unsure.evidence.low < 0 < SETTINGS.margin < unsure.evidence.high
    assert max(unsure.evidence.e_better, unsure.evidence.e_futile) < SETTINGS.threshold
    mismatch = srm_check(600, 400, 0.5)
    assert decide(Arm(600, 400, 280), Arm(400, 400, 340), SETTINGS, mismatch).outcome is Outcome.PAUSE


def test_decision_details_hold_every_ledger_number() -> None:
    srm = srm_check(410, 400, 0.5)
    details = decide(Arm(410, 400, 280), Arm(400, 400, 340), SETTINGS, srm).details()
    json.dumps(details, allow_nan=False)
    assert details["outcome"] == "promote" and details["production_wins"] == 280 and details["b_games"] == 400
    assert {"e_better", "p_better", "e_futile", "p_futile", "threshold", "z", "low", "high", "srm_p"} <= set(details)
    assert details["difference"] == pytest.approx(0.15)
    assert details["threshold"] == 20


@settings(max_examples=500)
@given(
    games=st.integers(1, 5000),
    wins_p=st.floats(0, 1),
    wins_b=st.floats(0, 1),
    games_b=st.integers(1, 5000),
)
def test_evidence_is_coherent(games: int, wins_p: float, wins_b: float, games_b: int) -> None:
    production = Arm(games, games, round(wins_p * games))
    b = Arm(games_b, games_b, round(wins_b * games_b))
    decision = decide(production, b, SETTINGS)
    ev = decision.evidence
    assert ev.low <= ev.difference <= ev.high
    assert 0 <= ev.p_better <= 1 and 0 <= ev.p_futile <= 1
    if decision.outcome is Outcome.PROMOTE and b.wins < b.games:  # one more B win keeps a promotion
        assert decide(production, Arm(b.started, b.games, b.wins + 1), SETTINGS).outcome is Outcome.PROMOTE
    if decision.outcome is Outcome.REJECT and b.wins > 0:  # one fewer keeps a rejection
        assert decide(production, Arm(b.started, b.games, b.wins - 1), SETTINGS).outcome is Outcome.REJECT
    if abs(ev.low) > 1e-9:  # the interval's ends are the two tests' boundaries
        assert (ev.e_better >= SETTINGS.threshold) is (ev.low > 0)
    if abs(ev.high - SETTINGS.margin) > 1e-9:
        assert (ev.e_futile >= SETTINGS.threshold) is (ev.high < SETTINGS.margin)
    json.dumps(decision.details(), allow_nan=False)


@pytest.mark.parametrize(
    ("production", "b", "split", "mismatch"),
    [(5000, 5000, 0.5, False), (5200, 4800, 0.5, True), (5080, 4920, 0.5, False), (800, 200, 0.2, False),
     (500, 500, 0.2, True), (12, 0, 0.5, True), (3, 0, 0.5, False), (40, 0, 0.0, False), (40, 1, 0.0, True)],
)  # fmt: skip
def test_srm_on_known_splits(production: int, b: int, split: float, mismatch: bool) -> None:
    srm = srm_check(production, b, split)
    assert srm.mismatch is mismatch
    if 0 < split < 1:
        expected = [(1 - split) * (production + b), split * (production + b)]
        chi2, p = stats.chisquare([production, b], expected)
        assert srm.chi2 == pytest.approx(chi2) and srm.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.floats(0.01, 0.99))
def test_srm_p_value_is_the_chi_square_tail(production: int, b: int, split: float) -> None:
    srm = srm_check(production, b, split)
    assert srm.p_value == pytest.approx(stats.chi2.sf(srm.chi2, 1), rel=1e-9, abs=1e-300)


def test_ranking_orders_by_paired_log_loss() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 1.5, 500)
    losses = {"v7": base + 0.10 + rng.normal(0, 0.05, 500), "v8": base, "v9": base + 0.04 + rng.normal(0, 0.05, 500)}
    ranked = rank_challengers(losses)
    assert [r.version for r in ranked] == ["v8", "v9", "v7"]
    assert ranked[0].behind == 0 and ranked[0].behind_se == 0
    for r in ranked:
        d = losses[r.version] - base
        assert r.rounds == 500 and r.log_loss == pytest.approx(float(np.mean(losses[r.version])))
        assert r.behind == pytest.approx(float(d.mean()))
        assert r.behind_se == pytest.approx(float(np.std(d, ddof=1) / math.sqrt(500)))
    assert [r.version for r in rank_challengers({"a": [], "b": []})] == ["a", "b"]  # no rounds: given order
    assert rank_challengers({"a": [0.9]})[0].behind_se is None
    with pytest.raises(ValueError, match="same rounds"):
        rank_challengers({"a": [1.0, 1.0], "b": [1.0]})


def test_admit_fills_an_empty_shadow_or_replaces_the_worst() -> None:
    assert admit(Lineup("v1", "v2"), "v5") == (Lineup("v1", "v2", shadow1="v5"), None)
    assert admit(Lineup("v1", "v2", shadow1="v3"), "v5") == (Lineup("v1", "v2", "v3", "v5"), None)
    ranking = rank_challengers({"v3": [1.2, 1.1], "v4": [1.0, 1.0]})
    assert admit(Lineup("v1", "v2", "v3", "v4"), "v5", ranking) == (Lineup("v1", "v2", "v5", "v4"), "v3")


FULL = Lineup("v1", "v2", "v3", "v4")
WATCH = Lineup("v2", "v1", "v3", "v4", watching=True)  # v2 was promoted over v1
CHALLENGERS = {"v3": [1.1, 1.2, 1.0], "v4": [1.0, 1.0, 0.9]}  # v4 ranks first
EVEN = Arm(3000, 3000, 2250)
CLOSE = (Arm(1000, 1000, 750), Arm(1000, 1000, 760))  # not decided yet
SHORT = Arm(50, 50, 40)
STRONG = Arm(3000, 3000, 2550)


@pytest.mark.parametrize(
    ("lineup", "production", "b", "challengers", "outcome", "after", "retired"),
    [
        (Lineup("v1", None, "v3", "v4"), EVEN, Arm(0, 0, 0), CHALLENGERS, Outcome.START,
         Lineup("v1", "v4", "v3", None), ()),
        (Lineup("v1"), EVEN, Arm(0, 0, 0), {}, Outcome.CONTINUE, Lineup("v1"), ()),
        (FULL, Arm(1300, 1000, 750), Arm(700, 700, 525), CHALLENGERS, Outcome.PAUSE, FULL, ()),
        (FULL, SHORT, Arm(50, 50, 50), CHALLENGERS, Outcome.CONTINUE, FULL, ()),
        (FULL, *CLOSE, CHALLENGERS, Outcome.CONTINUE, FULL, ()),
        (FULL, EVEN, STRONG, CHALLENGERS, Outcome.PROMOTE, WATCH, ()),
        (FULL, EVEN, EVEN, CHALLENGERS, Outcome.REJECT, Lineup("v1", "v4", "v3", None), ("v2",)),
        (Lineup("v1", "v2"), STRONG, EVEN, {}, Outcome.REJECT, Lineup("v1"), ("v2",)),
        (WATCH, EVEN, STRONG, CHALLENGERS, Outcome.ROLLBACK, Lineup("v1", "v4", "v3", None), ("v2",)),
        (WATCH, STRONG, EVEN, CHALLENGERS, Outcome.CONFIRM, Lineup("v2", "v4", "v3", None), ("v1",)),
        (WATCH, *CLOSE, CHALLENGERS, Outcome.CONTINUE, WATCH, ()),
    ],
)  # fmt: skip
def test_step_branches(
    lineup: Lineup,
    production: Arm,
    b: Arm,
    challengers: Mapping[str, Losses],
    outcome: Outcome,
    after: Lineup,
    retired: tuple[str, ...],
) -> None:
    result = step(lineup, production, b, challengers, SETTINGS)
    assert result.decision.outcome is outcome
    assert result.lineup == after
    assert result.retired == retired
    assert [r.version for r in result.ranking] == [v for v in ("v4", "v3") if v in lineup.shadows]
    json.dumps(result.decision.details(), allow_nan=False)
    if outcome is Outcome.PAUSE:
        assert result.decision.srm is not None and result.decision.srm.p_value < 0.001


def test_lineup_aliases_for_the_manifest() -> None:
    assert WATCH.aliases() == {"Production": "v2", "B": "v1", "shadow1": "v3", "shadow2": "v4"}
    assert Lineup("v1", shadow2="v4").aliases() == {"Production": "v1", "shadow2": "v4"}


def test_settings_are_checked() -> None:
    for bad in ({"alpha": 0.0}, {"min_games": 0}, {"margin": 1.5}, {"split": -0.1}, {"tau": 0.0}):
        with pytest.raises(ValueError):
            PromotionSettings(**bad)
    with pytest.raises(ValueError):
        Arm(10, 11, 3)
