"""Prometheus metrics of the game server, on a registry of its own.

With several worker processes (RPSQUEST_WORKERS) the serving command sets
PROMETHEUS_MULTIPROC_DIR before the workers start: every worker then keeps its values in
files there and /metrics, whichever worker answers, adds up all of them.

The model lifecycle's figures (promotion decisions, the running test, training runs) come from the
database instead, so every process and every replica reports the same: they are read when /metrics
is scraped, at most once per FIGURES_MAX_AGE seconds, and shown as they are (never added up).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.opponents import FAMILIES
from engine.promotion import Outcome
from storage.records import LifecycleFigures

disable_created_metrics()  # type: ignore[no-untyped-call]

registry = CollectorRegistry()


def exposition() -> CollectorRegistry:
    """The registry /metrics shows: this process's, or every worker's when there are several."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return registry
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

http_requests = Counter(
    "rpsquest_http_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=registry
)
http_latency = Histogram(
    "rpsquest_http_request_seconds",
    "HTTP request handling time",
    ["route"],
    buckets=_LATENCY_BUCKETS,
    registry=registry,
)
ws_connections = Gauge(
    "rpsquest_ws_connections", "Open WebSocket connections", registry=registry, multiprocess_mode="livesum"
)
ws_messages = Counter("rpsquest_ws_messages_total", "WebSocket messages received", ["type"], registry=registry)
ws_errors = Counter("rpsquest_ws_errors_total", "Error answers sent, by code", ["code"], registry=registry)
ws_closes = Counter("rpsquest_ws_closes_total", "Connections closed by a limit", ["code"], registry=registry)
rounds = Counter("rpsquest_rounds_total", "Rounds played", ["opponent", "tag"], registry=registry)
games_started = Counter("rpsquest_games_started_total", "Games started", ["opponent", "tag"], registry=registry)
games_finished = Counter(
    "rpsquest_games_finished_total", "Games finished", ["opponent", "tag", "winner"], registry=registry
)
move_latency = Histogram(
    "rpsquest_move_seconds",
    "Time from a move arriving to its result being sent",
    buckets=_LATENCY_BUCKETS,
    registry=registry,
)
gc_pauses = Histogram(
    "rpsquest_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector, by generation: every connection of the process waits meanwhile",
    ["generation"],
    buckets=_LATENCY_BUCKETS,
    registry=registry,
)
live_games = Gauge("rpsquest_live_games", "Games held in memory", registry=registry, multiprocess_mode="livesum")
abandoned = Counter("rpsquest_games_abandoned_total", "Games marked abandoned", registry=registry)
games_refused = Counter(
    "rpsquest_games_refused_total", "Starts and resumes refused by a cap on live games", ["cap"], registry=registry
)
games_expired = Counter(
    "rpsquest_games_expired_total", "Games deleted because no round was played in time", registry=registry
)
games_evicted = Counter(
    "rpsquest_games_evicted_total", "Played games dropped from memory when idle (reloaded on use)", registry=registry
)
model_generation = Gauge(
    "rpsquest_model_generation",
    "Generation of the alias manifest being served (the oldest any worker serves)",
    registry=registry,
    multiprocess_mode="livemin",
)
model_serving = Gauge(
    "rpsquest_model_serving",
    "1 for the version each alias serves now, 0 for the versions it served before",
    ["family", "alias", "version"],
    registry=registry,
    multiprocess_mode="livemax",
)
connections_open = Gauge(
    "rpsquest_connections_open",
    "Open client connections (HTTP and WebSocket), as counted against RPSQUEST_MAX_CONNECTIONS",
    registry=registry,
    multiprocess_mode="livesum",
)
connections_refused = Counter(
    "rpsquest_connections_refused_total",
    "Connections refused or closed by a connection limit, by reason",
    ["reason"],
    registry=registry,
)
model_swaps = Counter(
    "rpsquest_model_swaps_total", "Times an alias moved to another version", ["family", "alias"], registry=registry
)
model_load_failures = Counter(
    "rpsquest_model_load_failures_total",
    "Model versions that could not be loaded or were refused, by reason (missing|checksum|contract|golden|store|other)",
    ["family", "reason"],
    registry=registry,
)
model_predictions = Counter(
    "rpsquest_model_predictions_total",
    "Predictions of played rounds from round 4: kind=blend, the probabilities the bot used (the serving arm's);"
    " kind=model, each alias's own model probabilities (shadows included)",
    ["family", "alias", "version", "kind"],
    registry=registry,
)
model_correct_predictions = Counter(
    "rpsquest_model_correct_predictions_total",
    "Of rpsquest_model_predictions_total, those whose most likely move was the player's",
    ["family", "alias", "version", "kind"],
    registry=registry,
)

arm_games = Counter(
    "rpsquest_arm_games_total",
    "Finished games per arm: the version that served them as its alias, and who won",
    ["family", "alias", "version", "winner"],
    registry=registry,
)

_Labels = tuple[str, str, str, str]
_predictions: set[_Labels] = set()  # (family, alias, version, kind) label sets of the prediction counters
_serving: set[tuple[str, str, str]] = set()  # (family, alias, version) label sets of model_serving
_arms: set[_Labels] = set()  # (family, alias, version, winner) label sets of arm_games


class Tally:
    """Increments of the counters every round touches, added to them at most PERIOD seconds later: one inc per
    label set and period instead of one per event (with several workers, every inc writes a shared file).
    /metrics adds this process's tally first (`settle`), so a lone worker shows every round at once."""

    PERIOD = 1.0

    def __init__(self) -> None:
        self._counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, counter: Counter, *labels: str) -> None:
        key = (counter, labels)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.PERIOD, self.settle)

    def settle(self) -> None:
        """Add what was counted to the counters."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counts, self._counts = self._counts, {}
        for (counter, labels), n in counts.items():
            counter.labels(*labels).inc(n)


tally = Tally()


class PauseClock:
    """A gc.callbacks entry that times each collection into gc_pauses."""

    def __init__(self) -> None:
        self._started = 0.0
        self._children = {g: gc_pauses.labels(str(g)) for g in range(3)}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._children[info["generation"]].observe(time.perf_counter() - self._started)


def count_prediction(family: str, alias: str, version: str, kind: str, correct: bool) -> None:
    """One prediction of a played round (kind `blend` or `model`), and whether its top move was the player's."""
    _predictions.add((family, alias, version, kind))
    tally.add(model_predictions, family, alias, version, kind)
    if correct:
        tally.add(model_correct_predictions, family, alias, version, kind)


def show_models(serving: set[tuple[str, str, str]], used: set[tuple[str, str]]) -> None:
    """model_serving: 1 for each (family, alias, version) serving now, 0 for one that served before while its
    version is still `used` (family, version); a version no longer used loses every label set it had."""
    tally.settle()  # what was counted for a version goes in before its label sets go
    gone = {labels for labels in _serving - serving if labels[0::2] not in used}
    for labels in gone:
        model_serving.remove(*labels)
    for labels in _serving - serving - gone:
        model_serving.labels(*labels).set(0)
    for labels in serving:
        model_serving.labels(*labels).set(1)
    _serving.difference_update(gone)
    _serving.update(serving)
    for counted in [p for p in _predictions if (p[0], p[2]) not in used]:
        _predictions.discard(counted)
        model_predictions.remove(*counted)
        model_correct_predictions.remove(*counted)
    for finished in [a for a in _arms if (a[0], a[2]) not in used]:
        _arms.discard(finished)
        arm_games.remove(*finished)


def count_game(family: str, alias: str, version: str, winner: str) -> None:
    """A finished game of one arm."""
    labels = (family, alias, version, winner)
    _arms.add(labels)
    arm_games.labels(*labels).inc()


FIGURES_MAX_AGE = 15.0
TRAINING_OUTCOMES = ("success", "failure", "skipped")
_TESTS = {"better": "e_better", "futile": "e_futile"}  # the e-value's label and its key in a ledger row


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def lifecycle_metrics(figures: LifecycleFigures) -> list[Metric]:
    """The Prometheus families of the lifecycle's figures (every family and outcome shown, 0 when none yet)."""
    decisions = CounterMetricFamily(
        "rpsquest_promotion_decisions", "Promotion ledger rows, by family and outcome", labels=["family", "outcome"]
    )
    counts = {(f, o): n for f, o, n in figures.decisions}
    families = sorted(set(FAMILIES) | {f for f, _ in counts})
    for family in families:
        for outcome in sorted({o.value for o in Outcome} | {o for f, o in counts if f == family}):
            decisions.add_metric([family, outcome], counts.get((family, outcome), 0))
    e_value = GaugeMetricFamily(
        "rpsquest_promotion_e_value",
        "The running test's e-values (its family's last ledger row)",
        labels=["family", "test"],
    )
    threshold = GaugeMetricFamily(
        "rpsquest_promotion_threshold", "The e-value at which the test decides (1/alpha)", labels=["family"]
    )
    srm = GaugeMetricFamily(
        "rpsquest_promotion_srm_p_value", "Sample-ratio mismatch p-value of the running test", labels=["family"]
    )
    for family, details in sorted(figures.latest.items()):
        for test, key in _TESTS.items():
            if (value := _number(details.get(key))) is not None:
                e_value.add_metric([family, test], value)
        if (value := _number(details.get("threshold"))) is not None:
            threshold.add_metric([family], value)
        if (value := _number(details.get("srm_p"))) is not None:
            srm.add_metric([family], value)
    runs = CounterMetricFamily("rpsquest_training_runs", "Finished training runs, by outcome", labels=["outcome"])
    for outcome in sorted(set(TRAINING_OUTCOMES) | set(figures.training_runs)):
        runs.add_metric([outcome], figures.training_runs.get(outcome, 0))
    out: list[Metric] = [decisions, e_value, threshold, srm, runs]
    for name, documentation, value in (
        ("rpsquest_training_last_success_timestamp_seconds",
         "When the last successful training run finished (Unix time)", figures.last_success),
        ("rpsquest_training_last_duration_seconds",
         "How long the last training run that trained took (success or failure)", figures.last_duration),
    ):  # fmt: skip
        if value is not None:
            out.append(GaugeMetricFamily(name, documentation, value=value))
    return out


class LifecycleCollector:
    """The last figures read from the database, and when they were read."""

    def __init__(self) -> None:
        self.figures = LifecycleFigures()
        self.read_at = -math.inf

    def stale(self, now: float) -> bool:
        return now - self.read_at >= FIGURES_MAX_AGE

    def update(self, figures: LifecycleFigures, now: float) -> None:
        self.figures, self.read_at = figures, now

    def collect(self) -> Iterator[Metric]:
        yield from lifecycle_metrics(self.figures)


lifecycle = LifecycleCollector()
database_registry = CollectorRegistry()
database_registry.register(lifecycle)
