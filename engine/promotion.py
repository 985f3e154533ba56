"""Promotion statistics of one model family: the sequential A/B test, rollback, SRM, challenger ranking.

Pure: the trainer and server shells load the counts, call `step`, and write the lineup and the ledger
row it returns. docs/promotion.md explains the statistics in plain words.

The test compares the bot's game win rate of B with Production's, d = rate(B) - rate(Production),
with two one-sided normal-mixture sequential probability ratio tests (mSPRT, Johari et al., "Always
valid inference"). Each is an e-value: a number that, while its null hypothesis holds, stays at or
above 1/alpha with probability at most alpha over all time, however often it is looked at.

- "better": null d <= 0. At e >= 1/alpha B is promoted. False-promotion rate <= alpha.
- "futile": null d >= margin. At e >= 1/alpha B is rejected: it is worse, or it cannot be better by
  the margin. A B that is better by the margin or more is wrongly rejected with probability <= alpha.
  Without this rule two equal versions would keep collecting forever and the challengers would wait.

Each e-value mixes the likelihood ratio of the estimate over a half-normal prior (scale `tau`) on the
alternative side. The estimate's variance is the plug-in binomial variance under each null: pooled over
both arms for "better" (equal arms), separate for "futile". [low, high] is the always-valid interval
these two tests imply (each end holds with probability 1 - alpha at all times).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Losses = Sequence[float] | FloatArray  # per-round log losses of one challenger, round i paired across them
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TAIL_Z = -30.0  # below this, Phi(z) comes from its asymptotic series (erfc underflows near -38)
_E_CAP_LOG = 690.0  # e-values are reported up to exp(690), about 1e300
_erfc = np.vectorize(math.erfc, otypes=[float])


class Outcome(StrEnum):
    """What a step decided; the ledger's decision column."""

    PROMOTE = "promote"  # B significantly better: it becomes Production; the old Production becomes B
    REJECT = "reject"  # B worse or futile: Production stays, B leaves, the best challenger becomes B
    CONTINUE = "continue"  # keep collecting
    ROLLBACK = "rollback"  # after a promotion, the old Production (now B) is significantly better: it returns
    CONFIRM = "confirm"  # after a promotion, the old Production is not better: it leaves, the promotion stands
    PAUSE = "pause"  # sample-ratio mismatch: no decision for this family until the split is repaired
    START = "start"  # no B: the best challenger becomes B and its test starts


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    """The test's parameters (defaults are the product's)."""

    alpha: float = 0.05  # false-promotion rate; also the false-rejection and false-rollback rate
    min_games: int = 100  # finished games each arm needs before any decision
    margin: float = 0.05  # win-rate gain worth waiting for: B is rejected once it cannot reach it
    split: float = 0.5  # configured share of started games for B (RPSQUEST_AB_SPLIT)
    srm_p: float = 0.001  # a split test with a smaller p-value is a sample-ratio mismatch
    tau: float = 0.05  # scale of the mixing prior on d: the effect size the test is quickest for

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be between 0 and 1")
        if self.min_games < 1:
            raise ValueError("min_games must be at least 1")
        if not 0.0 < self.margin < 1.0:
            raise ValueError("margin must be between 0 and 1")
        if not 0.0 <= self.split <= 1.0:
            raise ValueError("split must be between 0 and 1")
        if not 0.0 < self.srm_p < 1.0 or self.tau <= 0.0:
            raise ValueError("srm_p must be between 0 and 1 and tau positive")

    @property
    def threshold(self) -> float:
        """The e-value at which a test decides: 1 / alpha."""
        return 1.0 / self.alpha


@dataclass(frozen=True, slots=True)
class Arm:
    """One serving alias's games in the current test: started, finished, and won by the bot (a tie is not won)."""

    started: int
    games: int
    wins: int

    def __post_init__(self) -> None:
        if not 0 <= self.wins <= self.games <= self.started:
            raise ValueError(f"need 0 <= wins <= games <= started, got {self}")

    @property
    def rate(self) -> float:
        """The bot's win rate over the finished games (0 without any)."""
        return self.wins / self.games if self.games else 0.0


def _log_scaled_phi(z: FloatArray) -> FloatArray:
    """log(exp(z^2 / 2) * Phi(z)), without overflow or underflow."""
    out = np.empty_like(z)
    near = z >= _TAIL_Z
    zn = z[near]
    out[near] = 0.5 * zn * zn + np.log(0.5 * _erfc(-zn / _SQRT2))
    zt = z[~near]  # Phi(z) = phi(z) / |z| * (1 - 1/z^2 + 3/z^4 - 15/z^6 + ...)
    z2 = zt * zt
    out[~near] = -np.log(-zt) - _LOG_SQRT_2PI + np.log1p(-1.0 / z2 + 3.0 / z2**2 - 15.0 / z2**3)
    return out


def log_e_value(excess: FloatArray, var: FloatArray, tau: float) -> FloatArray:
    """log of the one-sided normal-mixture e-value against "true difference <= null".

    `excess` is the estimate minus the null value, `var` the estimate's variance. Mixing the normal
    likelihood ratio over a half-normal prior of scale tau on the alternatives above the null gives
    E = 2 / sqrt(1 + tau^2 / var) * exp(z^2 / 2) * Phi(z), with z = excess * tau / sqrt(var * (var + tau^2)).
    An infinite variance (an arm without games) gives E = 1.
    """
    t2 = tau * tau
    z = excess * tau / np.sqrt(var * (var + t2))
    return math.log(2.0) - 0.5 * np.log1p(t2 / var) + _log_scaled_phi(z)


def difference(
    production_games: IntArray, production_wins: IntArray, b_games: IntArray, b_wins: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vectorised win-rate difference d_hat = rate(B) - rate(Production) and two plug-in variances of it.

    Pooled (both arms' wins over both arms' games): the variance when the arms are equal, the null of
    "better". Separate (each arm's own rate): the variance at the futility null, where they differ.
    Rates in variances are smoothed ((wins + 1) / (games + 2)); an arm without games gives infinity.
    """
    n_p, n_b = np.maximum(production_games, 1), np.maximum(b_games, 1)
    diff = b_wins / n_b - production_wins / n_p
    pooled = (production_wins + b_wins + 1.0) / (production_games + b_games + 2.0)
    rate_p = (production_wins + 1.0) / (production_games + 2.0)
    rate_b = (b_wins + 1.0) / (b_games + 2.0)
    empty = (production_games == 0) | (b_games == 0)
    var_pooled = np.where(empty, np.inf, pooled * (1.0 - pooled) * (1.0 / n_p + 1.0 / n_b))
    var_separate = np.where(empty, np.inf, rate_p * (1.0 - rate_p) / n_p + rate_b * (1.0 - rate_b) / n_b)
    return diff, var_pooled, var_separate


def log_e_values(
    production_games: IntArray,
    production_wins: IntArray,
    b_games: IntArray,
    b_wins: IntArray,
    settings: PromotionSettings,
) -> tuple[FloatArray, FloatArray]:
    """Vectorised (log e_better, log e_futile) for arrays of counts; `evidence` and the bench both use it."""
    diff, var_pooled, var_separate = difference(production_games, production_wins, b_games, b_wins)
    return log_e_value(diff, var_pooled, settings.tau), log_e_value(settings.margin - diff, var_separate, settings.tau)


def _radius(var: float, settings: PromotionSettings) -> float:
    """Where the e-value of an excess h over the null reaches 1/alpha: the distance from d_hat to an interval end."""
    if math.isinf(var):
        return 2.0
    target = math.log(settings.threshold)
    low, high = 0.0, 2.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if float(log_e_value(np.array([mid]), np.array([var]), settings.tau)[0]) >= target:
            high = mid
        else:
            low = mid
    return high


def _capped_exp(log_value: float) -> float:
    return math.exp(min(log_value, _E_CAP_LOG))


@dataclass(frozen=True, slots=True)
class Srm:
    """Sample-ratio check of the started games against the configured split (chi-square, 1 degree of freedom)."""

    production_started: int
    b_started: int
    expected_b_share: float
    chi2: float
    p_value: float
    mismatch: bool


def srm_check(production_started: int, b_started: int, split: float, threshold: float = 0.001) -> Srm:
    """Pearson's chi-square of the realised split; p = erfc(sqrt(chi2 / 2)); mismatch when p < threshold.

    With a split of 0 or 1 an arm expects no games: any game there is a mismatch (p = 0).
    """
    total = production_started + b_started
    expected = ((1.0 - split) * total, split * total)
    chi2 = 0.0
    for observed, wanted in zip((production_started, b_started), expected, strict=True):
        if wanted > 0:
            chi2 += (observed - wanted) ** 2 / wanted
        elif observed > 0:
            chi2 = math.inf
    p_value = math.erfc(math.sqrt(chi2 / 2.0))
    return Srm(production_started, b_started, split, chi2, p_value, p_value < threshold)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the sequential test measured: every number of a ledger row."""

    production: Arm
    b: Arm
    difference: float  # rate(B) - rate(Production)
    std_error: float  # of the difference, pooled (when the arms are equal)
    z: float  # difference / std_error: the two-proportion z statistic
    low: float  # promotion's boundary: e_better >= 1/alpha exactly when low > 0 (pooled variance)
    high: float  # futility's boundary: e_futile >= 1/alpha exactly when high < margin (separate variances)
    e_better: float  # e-value against "B no better than Production" (capped at about 1e300)
    e_futile: float  # e-value against "B better by the margin or more"
    p_better: float  # always-valid p-values: min(1, 1 / e)
    p_futile: float


def evidence(production: Arm, b: Arm, settings: PromotionSettings) -> Evidence:
    """The test's numbers for the counts so far."""

    def counts(value: int) -> IntArray:
        return np.array([value], dtype=np.int64)

    arrays = (counts(production.games), counts(production.wins), counts(b.games), counts(b.wins))
    log_better, log_futile = (float(a[0]) for a in log_e_values(*arrays, settings))
    diff, var_pooled, var_separate = (float(a[0]) for a in difference(*arrays))
    se = math.sqrt(var_pooled)
    return Evidence(
        production=production,
        b=b,
        difference=diff,
        std_error=se,
        z=diff / se if math.isfinite(se) else 0.0,
        low=max(-1.0, diff - _radius(var_pooled, settings)),
        high=min(1.0, diff + _radius(var_separate, settings)),
        e_better=_capped_exp(log_better),
        e_futile=_capped_exp(log_futile),
        p_better=min(1.0, math.exp(-log_better)),
        p_futile=min(1.0, math.exp(-log_futile)),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """One step's decision with its numbers: what the ledger row stores."""

    outcome: Outcome
    reason: str
    evidence: Evidence
    srm: Srm | None
    settings: PromotionSettings

    def details(self) -> dict[str, object]:
        """Flat, JSON-ready numbers for the ledger's details column."""
        ev, s = self.evidence, self.settings
        out: dict[str, object] = {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "alpha": s.alpha,
            "threshold": s.threshold,
            "margin": s.margin,
            "min_games": s.min_games,
            "tau": s.tau,
        }
        for name, arm in (("production", ev.production), ("b", ev.b)):
            out |= {f"{name}_started": arm.started, f"{name}_games": arm.games, f"{name}_wins": arm.wins}
        out |= {
            "difference": ev.difference,
            "std_error": ev.std_error if math.isfinite(ev.std_error) else None,
            "z": ev.z,
            "low": ev.low,
            "high": ev.high,
            "e_better": ev.e_better,
            "p_better": ev.p_better,
            "e_futile": ev.e_futile,
            "p_futile": ev.p_futile,
        }
        if self.srm is not None:
            out |= {"srm_expected_b_share": self.srm.expected_b_share, "srm_p": self.srm.p_value}
            out["srm_chi2"] = self.srm.chi2 if math.isfinite(self.srm.chi2) else None
        return out


def _points(x: float) -> str:
    return f"{x * 100:+.1f}"


def decide(production: Arm, b: Arm, settings: PromotionSettings, srm: Srm | None = None) -> Decision:
    """The sequential test's decision: PROMOTE, REJECT or CONTINUE (PAUSE when `srm` is a mismatch).

    Promotion wins when both e-values cross at once (B is better, if by less than the margin).
    """
    ev = evidence(production, b, settings)
    ci = f"always-valid interval {_points(ev.low)} to {_points(ev.high)} points"
    if srm is not None and srm.mismatch:
        share = srm.b_started / max(1, srm.production_started + srm.b_started)
        reason = (
            f"sample-ratio mismatch: B started {share:.1%} of games, expected {srm.expected_b_share:.1%}"
            f" (p={srm.p_value:.2g})"
        )
        return Decision(Outcome.PAUSE, reason, ev, srm, settings)
    if min(production.games, b.games) < settings.min_games:
        reason = f"collecting: {production.games} and {b.games} games, {settings.min_games} needed on each arm"
        return Decision(Outcome.CONTINUE, reason, ev, srm, settings)
    if ev.e_better >= settings.threshold:
        reason = f"B better: e-value {ev.e_better:.3g} >= {settings.threshold:g}; {ci}"
        return Decision(Outcome.PROMOTE, reason, ev, srm, settings)
    if ev.e_futile >= settings.threshold:
        gain = _points(settings.margin)
        reason = f"B not better by {gain} points: e-value {ev.e_futile:.3g} >= {settings.threshold:g}; {ci}"
        return Decision(Outcome.REJECT, reason, ev, srm, settings)
    reason = (
        f"collecting: e-values {ev.e_better:.3g} (better) and {ev.e_futile:.3g} (futile) < {settings.threshold:g}; {ci}"
    )
    return Decision(Outcome.CONTINUE, reason, ev, srm, settings)


@dataclass(frozen=True, slots=True)
class Ranked:
    """A challenger's log loss on the paired rounds, and how far it is behind the first-ranked one."""

    version: str
    rounds: int
    log_loss: float | None  # mean over the paired rounds; None without rounds
    behind: float | None  # mean paired difference of log loss to the first-ranked (0 for it)
    behind_se: float | None  # paired standard error of `behind` (needs 2 rounds)


def rank_challengers(losses: Mapping[str, Losses]) -> tuple[Ranked, ...]:
    """Challengers best first by mean log loss on the same rounds (equal-length sequences, round i paired).

    Without rounds the given order stands (shadow1 before shadow2).
    """
    arrays = {version: np.asarray(values, dtype=np.float64) for version, values in losses.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"paired log losses need the same rounds, got lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return tuple(Ranked(version, 0, None, None, None) for version in arrays)
    order = sorted(arrays, key=lambda v: float(arrays[v].mean()))  # stable: ties keep the given order
    best = arrays[order[0]]
    ranked = []
    for version in order:
        d = arrays[version] - best
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else None
        ranked.append(Ranked(version, n, float(arrays[version].mean()), float(d.mean()), se))
    return tuple(ranked)


@dataclass(frozen=True, slots=True)
class Lineup:
    """Which version holds each alias of a family, and whether the test is watching a promotion."""

    production: str
    b: str | None = None
    shadow1: str | None = None
    shadow2: str | None = None
    watching: bool = False  # B is the Production before the last promotion: the test now decides rollback

    @property
    def shadows(self) -> tuple[str, ...]:
        return tuple(v for v in (self.shadow1, self.shadow2) if v is not None)

    def aliases(self) -> dict[str, str]:
        """alias -> version for the manifest; empty aliases left out."""
        named = {"Production": self.production, "B": self.b, "shadow1": self.shadow1, "shadow2": self.shadow2}
        return {alias: version for alias, version in named.items() if version is not None}

    def without_shadow(self, version: str) -> Lineup:
        """This lineup with `version` taken out of its shadow slot."""
        return replace(
            self,
            shadow1=None if self.shadow1 == version else self.shadow1,
            shadow2=None if self.shadow2 == version else self.shadow2,
        )


def admit(lineup: Lineup, version: str, ranking: Sequence[Ranked] = ()) -> tuple[Lineup, str | None]:
    """A new version enters as a shadow: the first empty slot, else in place of the last-ranked shadow.

    Returns the new lineup and the version it displaced, if any.
    """
    if lineup.shadow1 is None:
        return replace(lineup, shadow1=version), None
    if lineup.shadow2 is None:
        return replace(lineup, shadow2=version), None
    ranked = [r.version for r in ranking if r.version in lineup.shadows]
    worst = ranked[-1] if ranked else lineup.shadow2
    if lineup.shadow1 == worst:
        return replace(lineup, shadow1=version), worst
    return replace(lineup, shadow2=version), worst


@dataclass(frozen=True, slots=True)
class Step:
    """A step's decision, the lineup after it, the challengers' ranking, and the versions that left every alias."""

    decision: Decision
    lineup: Lineup
    ranking: tuple[Ranked, ...]
    retired: tuple[str, ...] = field(default=())


def _next_b(lineup: Lineup, ranking: tuple[Ranked, ...]) -> Lineup:
    """The best-ranked challenger becomes B (none: B stays empty); the test starts over, not watching."""
    if not ranking:
        return replace(lineup, b=None, watching=False)
    best = ranking[0].version
    return replace(lineup.without_shadow(best), b=best, watching=False)


def step(
    lineup: Lineup,
    production: Arm,
    b: Arm,
    challengers: Mapping[str, Losses],
    settings: PromotionSettings,
) -> Step:
    """One lifecycle step of a family.

    `production` and `b` count the games each alias's version served since the current test started
    (when B took its alias); `challengers` maps each shadow version to its per-round log losses on the
    same human rounds. While `lineup.watching`, B is the previous Production, and the same test decides
    rollback: B significantly better -> ROLLBACK; B rejected -> CONFIRM.
    """
    ranking = rank_challengers({v: challengers.get(v, ()) for v in lineup.shadows})
    if lineup.b is None:
        decision = decide(production, b, settings)
        if not ranking:
            why = "no B and no challenger: Production serves every game"
            return Step(replace(decision, outcome=Outcome.CONTINUE, reason=why), lineup, ranking)
        why = f"no B: challenger {ranking[0].version} becomes B and its test starts"
        return Step(replace(decision, outcome=Outcome.START, reason=why), _next_b(lineup, ranking), ranking)
    srm = srm_check(production.started, b.started, settings.split, settings.srm_p)
    decision = decide(production, b, settings, srm)
    if decision.outcome is Outcome.PROMOTE and lineup.watching:
        why = f"rollback to {lineup.b}: {decision.reason}"
        after = _next_b(replace(lineup, production=lineup.b), ranking)
        return Step(replace(decision, outcome=Outcome.ROLLBACK, reason=why), after, ranking, (lineup.production,))
    if decision.outcome is Outcome.PROMOTE:
        after = replace(lineup, production=lineup.b, b=lineup.production, watching=True)
        return Step(decision, after, ranking)
    if decision.outcome is Outcome.REJECT:
        if lineup.watching:
            why = f"promotion of {lineup.production} confirmed: {decision.reason}"
            decision = replace(decision, outcome=Outcome.CONFIRM, reason=why)
        return Step(decision, _next_b(lineup, ranking), ranking, (lineup.b,))
    return Step(decision, lineup, ranking)
