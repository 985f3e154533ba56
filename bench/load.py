"""Benchmarks of the game server under load, with `rpsquest loadtest`'s own engine as the load generator
(on the same machine: the figures include its cost)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Server, busy_percent, free_port, machine_ticks, percentiles, process_tree
from clients.client import Client, ClientGame
from clients.connection import Connection
from clients.loadtest import generate, loadtest
from inference.store import LocalStore, read_manifest, write_manifest
from storage.history import rounds_since
from storage.pgcluster import PostgresCluster, find_bindir

TOKEN = "bench-admin-token"
NO_LIMIT = {"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_ADMIN_TOKEN": TOKEN}
WORKERS = os.cpu_count() or 1  # the load sections run one server process per core


def _fresh(root: Path, name: str, store: Path, workers: int = 1, env: dict[str, str] | None = None) -> Server:
    data_dir = root / name
    shutil.rmtree(data_dir, ignore_errors=True)
    return Server(data_dir, store, {**NO_LIMIT, "RPSQUEST_WORKERS": str(workers), **(env or {})})


_ECHOED = json.dumps({"type": "move", "game_id": "AbCdEfGhIjKlMnOp", "round": 5, "move": "rock"})


@contextmanager
def _echo_server(workers: int = 1) -> Iterator[str]:
    """The bare echo server (bench/echo.py) on a free port: yields its URL."""
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "bench.echo", str(port), str(workers)], cwd=ROOT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        echo.terminate()
        echo.wait()


async def _echo_flood(url: str, sessions: int, seconds: float) -> float:
    """Messages per second that `sessions` connections echoing flat out get through: the floor of saturation."""
    done = [0]

    async def session(deadline: float) -> None:
        ws = await Connection.open(url, timeout=30)
        while time.perf_counter() < deadline:
            await ws.send(_ECHOED)
            await ws.recv()
            done[0] += 1
        await ws.close()

    started = time.perf_counter()
    await asyncio.gather(*(session(started + seconds) for _ in range(sessions)))
    return done[0] / (time.perf_counter() - started)


async def _roundtrips(
    echo_url: str, game_url: str, n: int, blocks: int, server: Server, pause: float = 0.0
) -> tuple[list[float], list[float], float, float]:
    """`n` echo round trips and `n` moves, one session each, taking turns in `blocks` blocks: a slow
    stretch of the machine falls on both alike; `pause` seconds after each. Also the game server's and
    this client's CPU seconds during the moves' blocks."""
    echo: list[float] = []
    moves: list[float] = []
    server_cpu = client_cpu = 0.0
    client = await Client.open(game_url)
    game = await client.start("forrest", tag="loadtest")
    ws = await Connection.open(echo_url, timeout=10)  # the connection the load tester's client uses
    for block in range(1, blocks + 1):
        while len(echo) < n * block // blocks:
            t = time.perf_counter()
            await ws.send(_ECHOED)
            await ws.recv()
            echo.append(time.perf_counter() - t)
            if pause:
                await asyncio.sleep(pause)
        server_cpu -= server.cpu_seconds()
        client_cpu -= time.process_time()
        while len(moves) < n * block // blocks:
            if game.open_round is None:
                game = await client.start("forrest", tag="loadtest")
            played, answer, latency = await client.move(game, len(moves) % 3)
            assert played is not None, answer
            moves.append(latency)
            if pause:
                await asyncio.sleep(pause)
        server_cpu += server.cpu_seconds()
        client_cpu += time.process_time()
    await ws.close()
    await client.close()
    return echo, moves, server_cpu, client_cpu


PAUSED = 0.02  # seconds between one session's messages in the paced measurement


def roundtrip(root: Path, store: Path, n: int = 4000, blocks: int = 8) -> dict[str, Any]:
    """One session's move round trip against the same stack's bare echo server (the floor), in the same
    run: the two take turns in blocks. What a move costs the server and the checking client in CPU shows
    how much of its round trip is work rather than waiting (a lone round commits alone). Back to back
    (the next message as soon as the answer is in), then with PAUSED seconds after each message, as a
    player's messages come to a machine that idles between them (a quarter as many of each)."""
    server = _fresh(root, "roundtrip", store)
    try:
        with _echo_server() as url:
            runs = {
                "back_to_back": (n, asyncio.run(_roundtrips(url, server.ws_url, n, blocks, server))),
                "paced": (n // 4, asyncio.run(_roundtrips(url, server.ws_url, n // 4, blocks, server, PAUSED))),
            }
    finally:
        server.stop()
    result: dict[str, Any] = {"blocks": blocks, "pause_s": PAUSED}
    for name, (count, (floor, game, server_cpu, client_cpu)) in runs.items():
        f, g = percentiles(floor), percentiles(game)
        result[name] = {
            "echo_us": f,
            "move_us": g,
            "ratio_p50": round(g["p50"] / f["p50"], 2),
            "server_cpu_us_per_move": round(server_cpu / count * 1e6, 1),
            "client_cpu_us_per_move": round(client_cpu / count * 1e6, 1),
            "moves": count,
        }
    return result


def _run_load(server: Server | list[Server], sessions: int, processes: int = 1, **kwargs: Any) -> dict[str, Any]:
    """The load tester's summary (its sessions split over `processes` generator processes), with the server's
    memory after the run, its CPU time per round (with several servers, replicas of one service, their sum;
    the sessions are spread over them) and how busy the whole machine was meanwhile."""
    servers = server if isinstance(server, list) else [server]
    cpu, ticks = sum(s.cpu_seconds() for s in servers), machine_ticks()
    report = generate([s.ws_url for s in servers], sessions, processes=processes, **kwargs)
    cpu = sum(s.cpu_seconds() for s in servers) - cpu
    summary = report.summary()
    summary["machine_busy_percent"] = busy_percent(ticks, machine_ticks())
    summary["server_rss_mib"] = round(sum(s.rss_mib() for s in servers), 1)
    summary["server_cpu_ms_per_round"] = round(cpu * 1000 / max(summary["rounds"], 1), 3)
    return summary


def paced(root: Path, store: Path, pace: str, sessions: int, seconds: float, ramp: float) -> dict[str, Any]:
    """`sessions` sessions at `pace` for `seconds` against a fresh server."""
    server = _fresh(root, f"{pace}-{sessions}", store, WORKERS)
    try:
        return {"workers": WORKERS, **_run_load(server, sessions, duration=seconds, ramp=ramp, pace=pace)}
    finally:
        server.stop()


def during_training(
    root: Path, store: Path, sessions: int = 1000, seconds: float = 60, ramp: float = 10
) -> dict[str, Any]:
    """`sessions` human-paced sessions while one training cycle (`python -m trainer train`, nice 10, on the server's
    own data dir) runs; the load starts once the trainer has started fitting models."""
    server = _fresh(root, "during-training", store, WORKERS)
    log = root / "during-training.log"
    try:
        with log.open("w") as out:
            trainer = subprocess.Popen(
                [sys.executable, "-m", "trainer", "train", "--data-dir", str(server.data_dir)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started = time.monotonic()
        while "training " not in log.read_text() and trainer.poll() is None:
            time.sleep(0.5)
        summary = _run_load(server, sessions, duration=seconds, ramp=ramp, pace="human")
        overlapped = trainer.poll() is None  # still training when the load ended
        code = trainer.wait()
    finally:
        server.stop()
    return {
        "workers": WORKERS,
        "trainer_exit_code": code,
        "trainer_seconds": round(time.monotonic() - started, 1),
        "trainer_ran_through_the_load": overlapped,
        **summary,
    }


def saturation(root: Path, store: Path, sessions: int = 1000, seconds: float = 30) -> dict[str, Any]:
    """`sessions` max-pace sessions, next to the same number of connections echoing flat out against the bare echo
    server with as many workers (the floor: what the machine gets through with no game at all)."""
    with _echo_server(WORKERS) as url:
        floor = asyncio.run(_echo_flood(url, sessions, seconds / 2))
    return {**paced(root, store, "max", sessions, seconds, 5), "echo_floor_messages_per_second": round(floor)}


def capacity(
    root: Path,
    store: Path,
    steps: tuple[int, ...] = (1000, 2000, 2500, 3000, 4000, 5000, 6000, 7500, 8500, 10000),
    seconds: float = 45,
    processes: int = 1,
) -> dict[str, Any]:
    """Human-paced sessions in growing steps, the generator in `processes` processes: p99 (over the whole run,
    and once every session has connected), memory per connection and the garbage collector's pauses (every
    worker's, ramp included); the largest step held with p99 ≤ 100 ms after the ramp. One generator process
    by default: at human pace it uses under half of its core at 10,000 sessions, and a second one adds a
    fourth busy process to the two cores (8,500 sessions: p99 59 ms with one, 445 ms with two)."""
    out: dict[str, Any] = {"workers": WORKERS, "generator_processes": processes, "steps": []}
    for sessions in steps:
        server = _fresh(root, f"capacity-{sessions}", store, WORKERS)
        rest = server.rss_mib()
        try:
            summary = _run_load(server, sessions, processes, duration=seconds, ramp=15, pace="human")
            pauses = server.gc_pauses()
        finally:
            server.stop()
        step = {
            "sessions": sessions,
            "rounds_per_second": summary["rounds_per_second"],
            "p50_ms": summary["move_latency_ms"]["p50"],
            "p99_ms": summary["move_latency_ms"]["p99"],
            "p99_after_ramp_ms": summary["move_latency_ms_after_ramp"]["p99"],
            "failed": summary["sessions_failed"],
            "errors": summary["errors"],
            "server_rss_mib": summary["server_rss_mib"],
            "server_cpu_ms_per_round": summary["server_cpu_ms_per_round"],
            "kib_per_connection": round((summary["server_rss_mib"] - rest) * 1024 / sessions, 1),
            "generator_cpu_percent": summary["generator_cpu_percent"],
            "machine_busy_percent": summary["machine_busy_percent"],
            "gc_pauses": pauses,
        }
        out["steps"].append(step)
        if step["p99_after_ramp_ms"] <= 100 and not step["failed"]:  # held: once every session is connected
            out["held_with_p99_under_100ms"] = sessions
        else:
            break
    return out


def memory_at_rest(root: Path, store: Path) -> dict[str, Any]:
    server = _fresh(root, "rest", store)
    try:
        time.sleep(3)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/models") as r:
            models = json.loads(r.read())
        loaded = sum(len(a) for a in models["families"].values())
        return {"rss_mib": round(server.rss_mib(), 1), "model_versions_loaded": loaded}
    finally:
        server.stop()


async def _memory_steps(server: Server, games: int, connections: int, rounds: int, clients: int) -> dict[str, Any]:
    """Server RSS at rest, then with `connections` idle connections, then `games` unplayed games, then with
    `rounds` rounds played in each: the growth at each step, per connection and per game."""
    rest = server.rss_mib()
    idle = [await Connection.open(server.ws_url, timeout=30) for _ in range(connections)]
    for ws in idle:
        await ws.recv()  # the welcome
    await asyncio.sleep(1)
    with_connections = server.rss_mib()
    players = [await Client.open(server.ws_url) for _ in range(clients)]

    async def start(client: Client) -> list[ClientGame]:
        return [await client.start("forrest", tag="loadtest") for _ in range(games // clients)]

    held = await asyncio.gather(*(start(c) for c in players))
    unplayed = server.rss_mib()

    async def play(client: Client, own: list[ClientGame]) -> None:
        for n in range(rounds):
            for game in own:
                if game.open_round is not None:
                    played, answer, _ = await client.move(game, n % 3)
                    assert played is not None, answer

    await asyncio.gather(*(play(c, own) for c, own in zip(players, held, strict=True)))
    await asyncio.sleep(1)
    played_rss = server.rss_mib()
    still_open = sum(g.open_round is not None for own in held for g in own)
    for ws in idle:
        await ws.close()
    for client in players:
        await client.close()
    started = clients * (games // clients)
    return {
        "rss_at_rest_mib": round(rest, 1),
        "idle_connections": connections,
        "kib_per_idle_connection": round((with_connections - rest) * 1024 / connections, 1),
        "games": started,
        "kib_per_game_unplayed": round((unplayed - with_connections) * 1024 / started, 1),
        f"games_open_after_{rounds}_rounds": still_open,
        f"kib_per_game_after_{rounds}_rounds": round((played_rss - with_connections) * 1024 / still_open, 1),
        "rss_with_everything_mib": round(played_rss, 1),
    }


def game_memory(
    root: Path, store: Path, games: int = 4000, connections: int = 1000, rounds: int = 8, clients: int = 40
) -> dict[str, Any]:
    """Memory per idle connection and per live game (unplayed, and after `rounds` rounds), from the RSS of a
    real server (one process) before and after; games finished early are freed, so the per-game figure after
    `rounds` rounds divides by the games still open (an upper bound)."""
    data_dir = root / "game-memory"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = {**NO_LIMIT, "RPSQUEST_MAX_GAMES_PER_CONNECTION": str(games), "RPSQUEST_GAME_IDLE": "1800"}
    server = Server(data_dir, store, env)
    try:
        time.sleep(2)
        return asyncio.run(_memory_steps(server, games, connections, rounds, clients))
    finally:
        server.stop()


def hot_swap(root: Path, store: Path, sessions: int = 300, seconds: float = 30, every: float = 2.0) -> dict[str, Any]:
    """Swap every family's Production and B between two versions every `every` seconds under load."""
    server = _fresh(root, "hotswap", store)
    local = LocalStore(server.data_dir / "store")
    swaps = 0

    async def swapper() -> None:
        nonlocal swaps
        manifest = read_manifest(local)
        assert manifest is not None
        original = manifest["families"]
        while True:
            await asyncio.sleep(every)
            flipped = {f: {**a, "Production": a["B"], "B": a["Production"]} for f, a in original.items()}
            original = flipped
            await asyncio.to_thread(write_manifest, local, flipped)
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/api/admin/reload",
                method="POST",
                headers={"Authorization": f"Bearer {TOKEN}"},
                data=b"",
            )
            await asyncio.to_thread(urllib.request.urlopen, request)
            swaps += 1

    async def run() -> dict[str, Any]:
        task = asyncio.create_task(swapper())
        try:
            report = await loadtest(server.ws_url, sessions, duration=seconds, ramp=3, pace="max")
        finally:
            task.cancel()
        return report.summary()

    try:
        summary = asyncio.run(run())
    finally:
        server.stop()
    return {
        "swaps": swaps,
        "rounds": summary["rounds"],
        "errors": summary["errors"],
        "protocol_violations": summary["protocol_violations"],
        "move_latency_ms": summary["move_latency_ms"],
        "rounds_per_second": summary["rounds_per_second"],
    }


def _spy(pid: int, seconds: float, raw: Path, *flags: str) -> subprocess.Popen[bytes]:
    """py-spy sampling process `pid` for `seconds` (whole seconds) into `raw` (collapsed stacks), started now."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-d", str(round(seconds)),
         "-r", "100", "-f", "raw", "-o", str(raw), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _event_loop_stacks(raw: Path) -> list[tuple[list[str], int]]:
    """The event loop's samples of a py-spy raw file: (frame names, count); threads waiting for work (writer,
    readers, checkpoints) are left out."""
    out = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " " + f.split("/")[-1].split(":")[0] for f in stack.split(";")]
        if any(f.startswith("Runner.run") for f in frames):
            out.append((frames, int(count)))
    return out


def _shares(stacks: list[tuple[list[str], int]], wanted: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """Samples in all, and each frame's inclusive share (%) of them, for frames whose name holds one of `wanted`,
    largest first."""
    inclusive: dict[str, int] = {}
    total = 0
    for frames, count in stacks:
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    top = sorted(inclusive.items(), key=lambda kv: -kv[1])
    return total, {f: round(n / max(total, 1) * 100, 1) for f, n in top if any(k in f for k in wanted)}


def _stage_shares(stacks: list[tuple[list[str], int]], stages: dict[str, str]) -> tuple[int, dict[str, float]]:
    """Samples in all, and each stage's share (%) of them: the inclusive share of the frames `stages` names."""
    total, shares = _shares(stacks, tuple(stages.values()))
    return total, {
        stage: round(sum((v for f, v in shares.items() if f.startswith(frame)), 0.0), 1)
        for stage, frame in stages.items()
    }


def profile(root: Path, store: Path, sessions: int = 500, seconds: float = 12) -> dict[str, Any]:
    """Where the server's event loop spends its time at saturation (py-spy samples of the server process)."""
    server = _fresh(root, "profile", store)
    raw = root / "profile.txt"
    spy = _spy(server.process.pid, seconds, raw)
    try:
        summary = _run_load(server, sessions, duration=seconds + 2, pace="max")
        spy.wait(timeout=60)
    finally:
        server.stop()
    total, shares = _shares(_event_loop_stacks(raw), ("GameService", "_decide", "Bot.", "predict", "Session.",
                            "record_round", "_with_shadows", "result_message", "decode", "send", "_answer",
                            "_converse", "FeatureTracker", "observe", "encode", "receive"))  # fmt: skip
    return {
        "rounds_per_second": summary["rounds_per_second"],
        "event_loop_samples": total,
        "share_of_event_loop": dict(list(shares.items())[:30]),
    }


# The stages of a human-paced round, by the frame that holds each (inclusive shares of a worker's time).
_HUMAN_STAGES = {
    "waiting for events (idle)": "EpollSelector.select",
    "a move's own work (engine, decision; its commit and model call run apart)": "GameService.move",
    "  of which building the round's row": "RoundWrite.of",
    "the commit (SQLite, on the event loop)": "SQLiteStorage._commit",
    "the game's own model call": "PredictionBatch._flush_served",
    "the shadows' model calls": "PredictionBatch._flush_shadows",
    "sending (the system call)": "_SelectorSocketTransport.write",
    "reading and parsing frames": "_SelectorSocketTransport._read_ready",
}
# The commit's system calls, by their native frames (libc's names).
_COMMIT_CALLS = {
    "reading pages back (pread)": "pread64",
    "writing the log (pwrite)": "pwrite64",
    "SQLite's file locks (fcntl)": "fcntl64",
    "the workers' turn to write (flock)": "flock",
}


def profile_human(
    root: Path, store: Path, sessions: int = 6000, seconds: float = 12, ramp: float = 15
) -> dict[str, Any]:
    """Where one worker's time goes at human pace near the capacity limit: `sessions` sessions on a server of one
    worker per core, the generator in 2 processes. Once every session has connected, py-spy samples one worker
    for `seconds` (idle time included: shares of its wall time), then for `seconds` / 2 with native frames, which
    split the commit into SQLite's system calls (py-spy stops the process to read native stacks, which slows it:
    only the shares within the commit are kept from that pass)."""
    server = _fresh(root, "profile-human", store, WORKERS)
    plain, native = root / "profile-human.txt", root / "profile-human-native.txt"

    def sample() -> None:
        time.sleep(ramp + 5)
        worker = next(p for p in process_tree(server.process.pid) if p != server.process.pid)
        _spy(worker, seconds, plain, "--idle").wait(timeout=seconds + 60)
        _spy(worker, seconds / 2, native, "--native").wait(timeout=seconds + 60)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        summary = _run_load(server, sessions, 2, duration=ramp + 1.5 * seconds + 15, ramp=ramp, pace="human")
        sampler.join()
    finally:
        server.stop()
    total, stages = _stage_shares(_event_loop_stacks(plain), _HUMAN_STAGES)
    commits = [(f, n) for f, n in _event_loop_stacks(native) if any(x.startswith("SQLiteStorage._commit") for x in f)]
    _, calls = _shares(commits, tuple(_COMMIT_CALLS.values()))
    return {
        "sessions": sessions,
        "workers": WORKERS,
        "rounds_per_second": summary["rounds_per_second"],
        "server_cpu_ms_per_round": summary["server_cpu_ms_per_round"],
        "worker_samples": total,
        "share_of_one_worker_percent": stages,
        "share_of_the_commit_percent": {
            what: round(sum((v for f, v in calls.items() if f.split(" ")[0] == call), 0.0), 1)
            for what, call in _COMMIT_CALLS.items()
        },
    }


# The parts of a lone move's server CPU, by the frame that holds each (inclusive shares of the samples).
_LONE_STAGES = {
    "the move's own work (engine, decision, the round's row, the result)": "GameService.move",
    "the commit (SQLite, one round)": "SQLiteStorage._commit",
    "the game's own model call": "PredictionBatch._flush_served",
    "the shadows' model calls (after the answer)": "PredictionBatch._flush_shadows",
    "sending (the system call)": "_SelectorSocketTransport.write",
    "reading and parsing frames": "_SelectorSocketTransport._read_ready",
    "the garbage collector's clock": "collect_forever",
}


def profile_roundtrip(root: Path, store: Path, n: int = 20_000) -> dict[str, Any]:
    """Where a lone move's server CPU goes (the bound of the back-to-back round trip): one session moving back
    to back against a server of one process, py-spy sampling it on the CPU only (idle waits left out)."""
    server = _fresh(root, "profile-roundtrip", store)
    raw = root / "profile-roundtrip.txt"
    try:
        with _echo_server() as url:
            spy = _spy(server.process.pid, 8, raw)
            _, moves, server_cpu, _ = asyncio.run(_roundtrips(url, server.ws_url, n, 1, server))
            spy.wait(timeout=60)
    finally:
        server.stop()
    total, stages = _stage_shares(_event_loop_stacks(raw), _LONE_STAGES)
    return {
        "moves": n,
        "move_p50_us": percentiles(moves)["p50"],
        "server_cpu_us_per_move": round(server_cpu / n * 1e6, 1),
        "samples": total,
        "share_of_the_server_cpu_percent": stages,
    }


WAL_SECONDS = float(os.environ.get("RPSQUEST_BENCH_WAL_SECONDS", "600"))  # a quick check can use 30


def wal_bound(root: Path, store: Path, sessions: int = 200, seconds: float = WAL_SECONDS) -> dict[str, Any]:
    """Full-pace load (no rate limit, one worker per core) for `seconds`, sampling the size of the database's
    write-ahead log every 0.5 s: how large it gets next to the rounds/s the server holds."""
    server = _fresh(root, "wal-bound", store, WORKERS)
    wal = server.data_dir / "rpsquest.db-wal"
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            try:
                samples.append(wal.stat().st_size)
            except FileNotFoundError:
                samples.append(0)

    sampler = threading.Thread(target=sample, name="wal-sampler")
    sampler.start()
    try:
        summary = _run_load(server, sessions, duration=seconds, ramp=5, pace="max")
    finally:
        stop.set()
        sampler.join()
        server.stop()
    mib = np.asarray(samples or [0]) / 2**20
    stored = rounds_since(server.data_dir / "rpsquest.db", 0.0, ("loadtest",))  # the load tester's tag
    return {
        "workers": WORKERS,
        "sessions": sessions,
        "seconds": summary["seconds"],
        "wal_samples": len(samples),
        "wal_mib": {
            "max": round(float(mib.max()), 1),
            "p99": round(float(np.percentile(mib, 99)), 1),
            "p50": round(float(np.percentile(mib, 50)), 1),
            "last": round(float(mib[-1]), 1),
        },
        "database_mib": round((server.data_dir / "rpsquest.db").stat().st_size / 2**20, 1),
        "rounds": summary["rounds"],
        "rounds_stored": stored,
        "answered_rounds_lost": max(0, summary["rounds"] - stored),
        "rounds_per_second": summary["rounds_per_second"],
        "move_latency_ms": summary["move_latency_ms"],
        "errors": summary["errors"],
        "protocol_violations": summary["protocol_violations"],
        "server_cpu_ms_per_round": summary["server_cpu_ms_per_round"],
        "generator_cpu_percent": summary["generator_cpu_percent"],
    }


def replicas(
    root: Path, store: Path, max_pace: tuple[int, float] = (500, 20), human_pace: tuple[int, float] = (1000, 40)
) -> dict[str, Any]:
    """Two replicas sharing one PostgreSQL (fsync on, as in production) against one server on SQLite, on this
    machine: rounds/s at max pace, p99 at human pace ((sessions, seconds) each), and what each round costs the
    database (its CPU, transactions and WAL bytes)."""
    bindir = find_bindir()
    if bindir is None:
        return {"skipped": "PostgreSQL binaries (initdb, pg_ctl) not found"}
    cluster = PostgresCluster(bindir, free_port(), durable=True)
    cluster.start()
    out: dict[str, Any] = {"replicas": 2, "workers_per_replica": 1}
    try:
        for pace, (sessions, seconds) in (("max", max_pace), ("human", human_pace)):
            ramp = 5.0 if pace == "max" else 10.0
            sqlite = _fresh(root, f"replicas-sqlite-{pace}", store)
            try:
                out[f"sqlite_one_{pace}"] = _brief(_run_load(sqlite, sessions, duration=seconds, ramp=ramp, pace=pace))
            finally:
                sqlite.stop()
            url = cluster.create_database()
            pair = [_fresh(root, f"replicas-pg{i}-{pace}", store, env={"RPSQUEST_DATABASE_URL": url}) for i in (0, 1)]
            try:
                commits, wal = cluster.activity(url)
                db_cpu = cluster.cpu_seconds()
                summary = _run_load(pair, sessions, duration=seconds, ramp=ramp, pace=pace)
                db_cpu = cluster.cpu_seconds() - db_cpu  # while the replicas' backends still run
            finally:
                for server in pair:
                    server.stop()
            time.sleep(1.0)  # the replicas' backends have exited, and so reported their counts
            commits_after, wal_after = cluster.activity(url)
            rounds = max(summary["rounds"], 1)
            out[f"postgresql_two_{pace}"] = {
                **_brief(summary),
                "db_cpu_ms_per_round": round(db_cpu * 1000 / rounds, 3),
                "db_commits_per_round": round((commits_after - commits) / rounds, 3),
                "db_wal_bytes_per_round": round((wal_after - wal) / rounds),
            }
    finally:
        cluster.stop()
    return out


SHORT = os.environ.get("RPSQUEST_BENCH_PROCESSES_SHORT") == "1"  # a quick check of the processes section


def processes(
    root: Path, store: Path, sessions: int = 200 if SHORT else 1000, seconds: float = 8 if SHORT else 30,
    servers: tuple[int, ...] = (1, 2, 3), generators: int = 2,
) -> dict[str, Any]:  # fmt: skip
    """Max-pace sessions against 1, 2 and 3 server processes (RPSQUEST_WORKERS) on SQLite, then on PostgreSQL
    (fsync on), with the load generator split over `generators` processes: rounds/s, p50/p99 after the ramp,
    errors, the server's (and PostgreSQL's) CPU per round and the generator's CPU. Several SQLite writers queue
    on one write lock; PostgreSQL's do not, but cost its own CPU on the same cores."""
    ramp = 2.0 if SHORT else 5.0
    out: dict[str, Any] = {"sessions": sessions, "seconds": seconds, "generator_processes": generators, "runs": []}
    for workers in servers:
        server = _fresh(root, f"processes-sqlite-{workers}", store, workers)
        try:
            summary = _run_load(server, sessions, generators, duration=seconds, ramp=ramp, pace="max")
        finally:
            server.stop()
        out["runs"].append({"database": "sqlite", "server_processes": workers, **_processes_row(summary)})
    bindir = find_bindir()
    if bindir is None:
        out["postgresql"] = "skipped: PostgreSQL binaries (initdb, pg_ctl) not found"
        return out
    cluster = PostgresCluster(bindir, free_port(), durable=True)
    cluster.start()
    try:
        for workers in servers:
            env = {"RPSQUEST_DATABASE_URL": cluster.create_database()}
            server = _fresh(root, f"processes-pg-{workers}", store, workers, env)
            try:
                db_cpu = cluster.cpu_seconds()
                summary = _run_load(server, sessions, generators, duration=seconds, ramp=ramp, pace="max")
                db_cpu = cluster.cpu_seconds() - db_cpu  # while the server's backends still run
            finally:
                server.stop()
            row = _processes_row(summary)
            row["db_cpu_ms_per_round"] = round(db_cpu * 1000 / max(summary["rounds"], 1), 3)
            out["runs"].append({"database": "postgresql", "server_processes": workers, **row})
    finally:
        cluster.stop()
    return out


def _processes_row(summary: dict[str, Any]) -> dict[str, Any]:
    steady = summary["move_latency_ms_after_ramp"]
    return {
        "rounds_per_second": summary["rounds_per_second"],
        "p50_ms": steady["p50"],
        "p99_ms": steady["p99"],
        "sessions_failed": summary["sessions_failed"],
        "errors": summary["errors"],
        "protocol_violations": summary["protocol_violations"],
        "server_cpu_ms_per_round": summary["server_cpu_ms_per_round"],
        "generator_cpu_percent": summary["generator_cpu_percent"],
        "generator_cpu_percent_per_process": summary["generator_cpu_percent_per_process"],
        "machine_busy_percent": summary["machine_busy_percent"],
    }


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("sessions", "sessions_failed", "rounds", "rounds_per_second", "move_latency_ms_after_ramp", "errors",
            "protocol_violations", "server_rss_mib", "server_cpu_ms_per_round", "generator_cpu_percent",
            "machine_busy_percent")  # fmt: skip
    return {k: summary[k] for k in keys}
