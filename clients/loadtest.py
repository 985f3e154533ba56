"""`rpsquest loadtest`: thousands of simulated players through the real protocol, with latency figures.

Every session is one WebSocket connection playing whole games as a simulated player of
the engine's population (tag `loadtest`, so they never reach A/B statistics). Every
answer is checked against the rules; what fails is a protocol violation.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from clients.client import RETRY_CODES, Client, ProtocolViolation, Refused
from engine.opponents import OPPONENTS
from engine.players import population

DECIDE_SECONDS = 0.7  # a person's time to choose a move
ROUND_SECONDS = 2.2  # a person's whole round, reading the result included
BUSY_GENERATOR = 90.0  # % of one core: above it, the generator's own queueing is inside its latency figures


@dataclass
class LoadReport:
    """What a load test counted."""

    sessions: int = 0
    opened: int = 0
    failed: int = 0
    games: int = 0
    rounds: int = 0
    latencies: list[float] = field(default_factory=list)
    ramped: int = 0  # how many latencies were measured while sessions were still connecting
    errors: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0
    cpu_started: float = 0.0  # the generator's own CPU time (time.process_time) at the start and the end
    cpu_finished: float = 0.0

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.finished or time.perf_counter()) - self.started)

    @property
    def generator_cpu_percent(self) -> float:
        """The CPU the load generator used, in % of one core over the run."""
        return 100.0 * ((self.cpu_finished or time.process_time()) - self.cpu_started) / self.seconds

    @staticmethod
    def latency_ms(latencies: list[float]) -> dict[str, float]:
        if not latencies:
            return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
        a = np.asarray(latencies) * 1000.0
        return {
            "p50": round(float(np.percentile(a, 50)), 3),
            "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "sessions_opened": self.opened,
            "sessions_failed": self.failed,
            "games": self.games,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 2),
            "rounds_per_second": round(self.rounds / self.seconds, 1),
            "move_latency_ms": self.latency_ms(self.latencies),
            "move_latency_ms_after_ramp": self.latency_ms(self.latencies[self.ramped :]),
            "errors": dict(self.errors),
            "protocol_violations": dict(self.violations),
            "generator_cpu_percent": round(self.generator_cpu_percent, 1),
        }


def _think(rng: random.Random, mean: float) -> float:
    """A human-like wait: gamma distributed around `mean` seconds."""
    return rng.gammavariate(4.0, mean / 4.0)


async def _retry_after(report: LoadReport, code: str) -> bool:
    """Count an error answer; True, after a pause, when the request is worth sending again."""
    report.errors[code] += 1
    if code not in RETRY_CODES:
        return False
    await asyncio.sleep(0.1)
    return True


async def _session(
    index: int, url: str, report: LoadReport, *, deadline: float, games_left: list[int], pace: str,
    opponents: list[str], seed: int, rate: float,
) -> None:  # fmt: skip
    rng = random.Random(seed * 1_000_003 + index)
    player = population(seed * 1_000_003 + index, 1)[0]
    try:
        client = await Client.open(url, rate=rate)
    except Exception as exc:  # refused, timed out, no welcome: every way a connect can fail
        report.failed += 1
        report.errors[f"connect: {type(exc).__name__}"] += 1
        return
    report.opened += 1
    try:
        while time.perf_counter() < deadline and games_left[0] != 0:
            games_left[0] -= 1
            try:
                game = await client.start(opponents[rng.randrange(len(opponents))], tag="loadtest")
            except Refused as exc:
                games_left[0] += 1  # not started: still to play
                if await _retry_after(report, exc.code):
                    continue
                break
            while game.open_round is not None:
                if pace == "human":
                    await asyncio.sleep(_think(rng, ROUND_SECONDS - DECIDE_SECONDS) + _think(rng, DECIDE_SECONDS))
                if time.perf_counter() >= deadline:
                    return
                try:
                    played, answer, latency = await client.move(game, player.move(game.rounds, game.values()))
                except ProtocolViolation as exc:
                    report.violations[str(exc).split(":")[0]] += 1
                    break
                if played is None:
                    if await _retry_after(report, answer["code"]):
                        continue
                    break
                report.rounds += 1
                report.latencies.append(latency)
            else:
                report.games += 1
    except ProtocolViolation as exc:
        report.violations[str(exc).split(":")[0]] += 1
    except Exception as exc:  # a dropped connection ends this session, not the test
        report.errors[f"connection: {type(exc).__name__}"] += 1
    finally:
        await client.close()


async def _progress(report: LoadReport, out: TextIO, every: float = 1.0) -> None:
    last_rounds, last_time = 0, time.perf_counter()
    while True:
        await asyncio.sleep(every)
        now = time.perf_counter()
        recent = report.latencies[-5000:]
        p50 = float(np.percentile(recent, 50)) * 1000 if recent else 0.0
        p99 = float(np.percentile(recent, 99)) * 1000 if recent else 0.0
        rate = (report.rounds - last_rounds) / (now - last_time)
        last_rounds, last_time = report.rounds, now
        out.write(
            f"\r{now - report.started:6.0f}s  connected {report.opened - report.failed:6d}  failed {report.failed:4d}"
            f"  rounds/s {rate:8.1f}  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  errors {sum(report.errors.values())}  "
        )
        out.flush()


async def loadtest(
    url: str | Sequence[str], sessions: int, *, duration: float | None = None, games: int | None = None,
    ramp: float = 0.0, pace: str = "max", opponent: str | None = None, seed: int = 0, rate: float = 0.0,
    progress: TextIO | None = None,
) -> LoadReport:  # fmt: skip
    """Run `sessions` simulated players against `url` for `duration` seconds or `games` games in all.

    With several URLs (replicas of one service), session i connects to the i-th modulo their number."""
    if duration is None and games is None:
        raise ValueError("give a duration or a number of games")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # the load generator's own collections would show up as server latency
    report = LoadReport(sessions=sessions, started=time.perf_counter(), cpu_started=time.process_time())
    deadline = report.started + (duration if duration is not None else 10**9)
    games_left = [games if games is not None else -1]
    opponents = [opponent] if opponent else [o.id for o in OPPONENTS]
    urls = [url] if isinstance(url, str) else list(url)
    ticker = asyncio.create_task(_progress(report, progress)) if progress else None

    async def delayed(i: int) -> None:
        if ramp > 0:
            await asyncio.sleep(ramp * i / sessions)
        await _session(i, urls[i % len(urls)], report, deadline=deadline, games_left=games_left, pace=pace,
                       opponents=opponents, seed=seed, rate=rate)  # fmt: skip

    async def ramp_done() -> None:
        await asyncio.sleep(ramp)
        report.ramped = len(report.latencies)

    marker = asyncio.create_task(ramp_done())
    try:
        await asyncio.gather(*(delayed(i) for i in range(sessions)))
    finally:
        report.finished = time.perf_counter()
        report.cpu_finished = time.process_time()
        marker.cancel()
        if ticker:
            ticker.cancel()
            assert progress is not None
            progress.write("\n")
    return report


def format_report(summary: dict[str, Any]) -> str:
    lat = summary["move_latency_ms"]
    steady = summary["move_latency_ms_after_ramp"]
    cpu = summary["generator_cpu_percent"]
    busy = cpu >= BUSY_GENERATOR
    return "\n".join([
        f"sessions   {summary['sessions']} ({summary['sessions_opened']} opened, {summary['sessions_failed']} failed)",
        f"games      {summary['games']}",
        f"rounds     {summary['rounds']} in {summary['seconds']} s = {summary['rounds_per_second']} rounds/s",
        f"latency    p50 {lat['p50']} ms  p90 {lat['p90']} ms  p99 {lat['p99']} ms  max {lat['max']} ms",
        f"  after the ramp: p50 {steady['p50']} ms  p99 {steady['p99']} ms  max {steady['max']} ms",
        f"errors     {json.dumps(summary['errors'])}",
        f"violations {json.dumps(summary['protocol_violations'])}",
        f"generator  {cpu} % of one core" + (
            ": near its limit, so its own queueing is inside these latencies; split the sessions over more"
            " processes or machines" if busy else ""
        ),
    ])  # fmt: skip


def run(args: Any) -> int:
    """The `rpsquest loadtest` command."""
    urls = [u.strip() for given in args.url for u in given.split(",") if u.strip()]
    report = asyncio.run(loadtest(
        urls, args.sessions, duration=args.duration, games=args.games, ramp=args.ramp, pace=args.pace,
        opponent=args.opponent, seed=args.seed, rate=args.rate, progress=sys.stderr,
    ))  # fmt: skip
    summary = report.summary()
    print(format_report(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 1 if summary["protocol_violations"] else 0
