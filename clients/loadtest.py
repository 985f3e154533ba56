"""`rpsquest loadtest`: thousands of simulated players through the real protocol, with latency figures.

Every session is one WebSocket connection playing whole games as a simulated player of
the engine's population (tag `loadtest`, so they never reach A/B statistics). Every
answer is checked against the rules; what fails is a protocol violation.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Barrier
from threading import BrokenBarrierError
from typing import Any, TextIO

import numpy as np

from clients.client import RETRY_CODES, Client, ProtocolViolation, Refused
from engine.opponents import OPPONENTS
from engine.players import population

DECIDE_SECONDS = 0.7  # a person's time to choose a move
ROUND_SECONDS = 2.2  # a person's whole round, reading the result included
BUSY_GENERATOR = 90.0  # % of one core: above it, the generator's own queueing is inside its latency figures
STARTUP_SECONDS = 60.0  # how long generator processes may take to start (imports) before the run gives up
COUNTS = 4  # what a generator process publishes for the live progress: rounds, opened, failed, errors


class GeneratorFailed(Exception):
    """A generator process did not start, or ended without its report."""


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
    processes: int = 1
    cpu_per_process: list[float] = field(default_factory=list)  # % of one core, of each process of a merged run

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.finished or time.perf_counter()) - self.started)

    @property
    def generator_cpu_percent(self) -> float:
        """The CPU the load generator used, in % of one core over the run (all its processes together)."""
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
        total = round(self.generator_cpu_percent, 1)
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
            "generator_cpu_percent": total,
            "processes": self.processes,
            "generator_cpu_percent_per_process": self.cpu_per_process or [total],
        }


def merge(parts: Sequence[LoadReport], started: float, finished: float, cpu_seconds: float) -> LoadReport:
    """The report of a whole run from those of its generator processes.

    Counts add up; the latency samples are pooled, so percentiles are of every sample (never an average of
    percentiles); the samples taken during the ramp come first, so `ramped` still marks where it ended.
    `cpu_seconds` is what every process of the generator used between `started` and `finished`."""
    merged = LoadReport(
        started=started, finished=finished, cpu_finished=cpu_seconds, processes=len(parts),
        cpu_per_process=[round(part.generator_cpu_percent, 1) for part in parts],
    )  # fmt: skip
    for part in parts:
        merged.sessions += part.sessions
        merged.opened += part.opened
        merged.failed += part.failed
        merged.games += part.games
        merged.rounds += part.rounds
        merged.errors.update(part.errors)
        merged.violations.update(part.violations)
        merged.latencies += part.latencies[: part.ramped]
    merged.ramped = len(merged.latencies)
    for part in parts:
        merged.latencies += part.latencies[part.ramped :]
    return merged


@dataclass(frozen=True)
class Plan:
    """What one generator process plays: its share of the run's sessions (and of its games)."""

    urls: tuple[str, ...]
    sessions: int  # of the whole run: a session's ramp delay, seed and URL follow its index in the run
    indices: range  # the sessions this process drives
    duration: float | None
    games: int | None  # this process's share of the games, or None: until the duration is over
    ramp: float
    pace: str
    opponents: tuple[str, ...]
    seed: int
    rate: float


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


@contextmanager
def _collector_off() -> Iterator[None]:
    """Python's garbage collector off for a run, then one full collection.

    The generator's pauses would show up as server latency, and collections take CPU from the server on the
    same cores: a young collection every 0.1 s, as the server runs them, took 15 % of the generator's CPU at
    8,500 human-paced sessions. A round leaves no garbage that needs the collector: what a run leaves is each
    closed connection's transport and socket, about seven objects a session (14,317 objects after 156,705
    rounds of 2,000 sessions), so it is bounded by the sessions and freed at the end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


async def _play(plan: Plan, report: LoadReport, progress: TextIO | None) -> None:
    """Drive the sessions of `plan`, counting into `report`."""
    with _collector_off():
        report.sessions = len(plan.indices)
        report.started, report.cpu_started = time.perf_counter(), time.process_time()
        deadline = report.started + (plan.duration if plan.duration is not None else 10**9)
        games_left = [plan.games if plan.games is not None else -1]
        ticker = asyncio.create_task(_progress(report, progress)) if progress else None

        async def delayed(i: int) -> None:
            if plan.ramp > 0:
                await asyncio.sleep(plan.ramp * i / plan.sessions)
            await _session(i, plan.urls[i % len(plan.urls)], report, deadline=deadline, games_left=games_left,
                           pace=plan.pace, opponents=list(plan.opponents), seed=plan.seed, rate=plan.rate)  # fmt: skip

        async def ramp_done() -> None:
            await asyncio.sleep(plan.ramp)
            report.ramped = len(report.latencies)

        marker = asyncio.create_task(ramp_done())
        try:
            await asyncio.gather(*(delayed(i) for i in plan.indices))
        finally:
            report.finished = time.perf_counter()
            report.cpu_finished = time.process_time()
            marker.cancel()
            if ticker:
                ticker.cancel()
                assert progress is not None
                progress.write("\n")


def _plans(
    url: str | Sequence[str], sessions: int, processes: int, duration: float | None, games: int | None, ramp: float,
    pace: str, opponent: str | None, seed: int, rate: float,
) -> list[Plan]:  # fmt: skip
    """The run split over `processes` generator processes: process k drives sessions k, k + processes, …
    (so each has its part of the ramp and of every URL) and its share of the games."""
    if duration is None and games is None:
        raise ValueError("give a duration or a number of games")
    if not 1 <= processes <= sessions:
        raise ValueError(f"processes must be between 1 and the number of sessions ({sessions}), not {processes}")
    urls = (url,) if isinstance(url, str) else tuple(url)
    opponents = (opponent,) if opponent else tuple(o.id for o in OPPONENTS)
    share = [None if games is None else games // processes + (k < games % processes) for k in range(processes)]
    return [
        Plan(urls, sessions, range(k, sessions, processes), duration, share[k], ramp, pace, opponents, seed, rate)
        for k in range(processes)
    ]


async def loadtest(
    url: str | Sequence[str], sessions: int, *, duration: float | None = None, games: int | None = None,
    ramp: float = 0.0, pace: str = "max", opponent: str | None = None, seed: int = 0, rate: float = 0.0,
    progress: TextIO | None = None,
) -> LoadReport:  # fmt: skip
    """Run `sessions` simulated players against `url` for `duration` seconds or `games` games in all, in this
    process.

    With several URLs (replicas of one service), session i connects to the i-th modulo their number."""
    [plan] = _plans(url, sessions, 1, duration, games, ramp, pace, opponent, seed, rate)
    report = LoadReport()
    await _play(plan, report, progress)
    return report


async def _publish(report: LoadReport, counts: SynchronizedArray[int], slot: int, every: float = 0.5) -> None:
    """Keep this process's counts in its slot of `counts`, for the parent's live progress."""
    while True:
        counts[slot * COUNTS : (slot + 1) * COUNTS] = [
            report.rounds, report.opened, report.failed, sum(report.errors.values()),
        ]  # fmt: skip
        await asyncio.sleep(every)


def _worker(plan: Plan, slot: int, start: Barrier, counts: SynchronizedArray[int], out: Connection) -> None:
    """A generator process: wait for the others to be ready, play `plan`, send back the report."""

    async def main() -> LoadReport:
        report = LoadReport()
        publisher = asyncio.create_task(_publish(report, counts, slot))
        try:
            await _play(plan, report, None)
        finally:
            publisher.cancel()
        return report

    start.wait(STARTUP_SECONDS)
    out.send(asyncio.run(main()))
    out.close()


def _totals(counts: SynchronizedArray[int], processes: int) -> list[int]:
    """Rounds, sessions opened, sessions failed and errors of every process so far."""
    return [sum(counts[k * COUNTS + i] for k in range(processes)) for i in range(COUNTS)]


def _in_processes(plans: list[Plan], progress: TextIO | None) -> LoadReport:
    """Play every plan in a process of its own, started together; merge their reports."""
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no copy of the caller's threads or loop
    start = context.Barrier(len(plans) + 1)
    counts: SynchronizedArray[int] = context.Array("q", COUNTS * len(plans))
    pipes = [context.Pipe(duplex=False) for _ in plans]
    workers = [
        context.Process(target=_worker, args=(plan, k, start, counts, pipes[k][1]), name=f"loadtest-{k}", daemon=True)
        for k, plan in enumerate(plans)
    ]
    for worker in workers:
        worker.start()
    for _, sender in pipes:
        sender.close()  # the worker holds the other end: when it dies, its pipe reads EOF here
    parts: dict[int, LoadReport] = {}
    try:
        try:
            start.wait(STARTUP_SECONDS)
        except BrokenBarrierError:
            raise GeneratorFailed(f"the generator processes did not all start within {STARTUP_SECONDS:.0f} s") from None
        started, cpu_started = time.perf_counter(), time.process_time()
        waiting = {receiver: k for k, (receiver, _) in enumerate(pipes)}
        last_rounds, last_time = 0, started
        while waiting:
            ready = wait(list(waiting), timeout=1.0)
            for receiver in [r for r in waiting if r in ready]:
                k = waiting.pop(receiver)
                try:
                    parts[k] = receiver.recv()
                except EOFError:
                    workers[k].join(5)
                    raise GeneratorFailed(
                        f"generator process {k} exited with status {workers[k].exitcode} before sending its report"
                    ) from None
            if progress:
                now = time.perf_counter()
                rounds, opened, failed, errors = _totals(counts, len(plans))
                progress.write(
                    f"\r{now - started:6.0f}s  connected {opened - failed:6d}  failed {failed:4d}  rounds/s"
                    f" {(rounds - last_rounds) / (now - last_time):8.1f}  errors {errors}  ({len(plans)} processes)  "
                )
                progress.flush()
                last_rounds, last_time = rounds, now
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_started + sum(p.cpu_finished - p.cpu_started for p in parts.values())
    except BaseException:
        for worker in workers:
            worker.terminate()
        raise
    finally:
        for worker in workers:
            worker.join()
        if progress:
            progress.write("\n")
    return merge([parts[k] for k in range(len(plans))], started, finished, cpu)


def generate(
    url: str | Sequence[str], sessions: int, *, processes: int = 1, duration: float | None = None,
    games: int | None = None, ramp: float = 0.0, pace: str = "max", opponent: str | None = None, seed: int = 0,
    rate: float = 0.0, progress: TextIO | None = None,
) -> LoadReport:  # fmt: skip
    """`loadtest`, with the sessions split over `processes` generator processes (one: in this process).

    The split keeps what a single process would do: every session's seed, ramp delay and URL follow its index
    in the whole run, and the run's games are shared out. Raises GeneratorFailed when a process fails."""
    plans = _plans(url, sessions, processes, duration, games, ramp, pace, opponent, seed, rate)
    if processes > 1:
        return _in_processes(plans, progress)
    report = LoadReport()
    asyncio.run(_play(plans[0], report, progress))
    return report


def format_report(summary: dict[str, Any]) -> str:
    lat = summary["move_latency_ms"]
    steady = summary["move_latency_ms_after_ramp"]
    cpu = summary["generator_cpu_percent"]
    each = summary["generator_cpu_percent_per_process"]
    busy = max(each) >= BUSY_GENERATOR
    shown = f"{cpu} % of one core" if len(each) == 1 else (
        f"{cpu} % of one core in {len(each)} processes ({', '.join(str(c) for c in each)} % each)"
    )  # fmt: skip
    return "\n".join([
        f"sessions   {summary['sessions']} ({summary['sessions_opened']} opened, {summary['sessions_failed']} failed)",
        f"games      {summary['games']}",
        f"rounds     {summary['rounds']} in {summary['seconds']} s = {summary['rounds_per_second']} rounds/s",
        f"latency    p50 {lat['p50']} ms  p90 {lat['p90']} ms  p99 {lat['p99']} ms  max {lat['max']} ms",
        f"  after the ramp: p50 {steady['p50']} ms  p99 {steady['p99']} ms  max {steady['max']} ms",
        f"errors     {json.dumps(summary['errors'])}",
        f"violations {json.dumps(summary['protocol_violations'])}",
        f"generator  {shown}" + (
            ": near its limit, so its own queueing is inside these latencies; split the sessions over more"
            " processes (--processes) or machines" if busy else ""
        ),
    ])  # fmt: skip


def run(args: Any) -> int:
    """The `rpsquest loadtest` command."""
    urls = [u.strip() for given in args.url for u in given.split(",") if u.strip()]
    try:
        report = generate(
            urls, args.sessions, processes=args.processes, duration=args.duration, games=args.games, ramp=args.ramp,
            pace=args.pace, opponent=args.opponent, seed=args.seed, rate=args.rate, progress=sys.stderr,
        )  # fmt: skip
    except GeneratorFailed as exc:
        print(f"rpsquest: {exc}", file=sys.stderr)
        return 2
    summary = report.summary()
    print(format_report(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 1 if summary["protocol_violations"] else 0
