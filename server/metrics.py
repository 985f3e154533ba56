"""Prometheus metrics of the game server, on a registry of its own.

With several worker processes (RPSQUEST_WORKERS) the serving command sets
PROMETHEUS_MULTIPROC_DIR before the workers start: every worker then keeps its values in
files there and /metrics, whichever worker answers, adds up all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess

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

_Labels = tuple[str, str, str, str]
_predictions: dict[_Labels, tuple[Counter, Counter]] = {}  # label sets in use, with their children
_serving: set[tuple[str, str, str]] = set()  # (family, alias, version) label sets of model_serving


def count_prediction(family: str, alias: str, version: str, kind: str, correct: bool) -> None:
    """One prediction of a played round (kind `blend` or `model`), and whether its top move was the player's."""
    labels = (family, alias, version, kind)
    children = _predictions.get(labels)
    if children is None:
        children = _predictions[labels] = (model_predictions.labels(*labels), model_correct_predictions.labels(*labels))
    children[0].inc()
    if correct:
        children[1].inc()


def show_models(serving: set[tuple[str, str, str]], used: set[tuple[str, str]]) -> None:
    """model_serving: 1 for each (family, alias, version) serving now, 0 for one that served before while its
    version is still `used` (family, version); a version no longer used loses every label set it had."""
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
        del _predictions[counted]
        model_predictions.remove(*counted)
        model_correct_predictions.remove(*counted)
