"""The `rpsquest` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

import uvicorn

from engine.opponents import FAMILIES, OPPONENTS
from inference.settings import Settings, SettingsError
from inference.store import open_store, read_manifest
from server.connections import raise_open_file_limit
from server.datalock import DataDirBusy, lock_data_dir
from server.messages import MAX_FRAME
from server.supervisor import Supervisor
from storage.database import prepare

# The server's event loop is asyncio's own. uvloop (libuv) accepts one connection per turn of the loop: at
# saturation, when a turn commits and answers hundreds of rounds, new connections waited more than ten seconds
# and timed out (63-588 of 1,000 max-pace sessions); asyncio accepts every waiting connection each turn, and
# served as many rounds per second (bench/RESULTS.md).
EVENT_LOOP = "asyncio"
CLOSE_GRACE = 5  # seconds the answers still being sent get once the drain is over (the chart allows 5)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where data lives (default ./data, env RPSQUEST_DATA_DIR)")


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")


def _positive(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpsquest", description="RPS Quest: play Rock-Paper-Scissors against ML.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="the whole system on one machine with embedded defaults")
    serve = commands.add_parser("serve", help="the game server alone")
    for p in (up, serve):
        _add_common(p)
        _add_listen(p)
    simulate = commands.add_parser("simulate", help="simulated players play real games (tagged sim)")
    _add_common(simulate)
    simulate.add_argument("--games", type=int, required=True, help="how many games to play")
    simulate.add_argument("--url", default="ws://127.0.0.1:8000/ws", help="the server's WebSocket URL")
    simulate.add_argument("--concurrency", type=int, default=8, help="connections playing at once (default 8)")
    simulate.add_argument("--seed", type=int, default=0, help="seed of the simulated population (default 0)")
    load = commands.add_parser("loadtest", help="many simulated players against a server, with latency figures")
    _add_common(load)
    load.add_argument("--url", required=True, action="append",
                      help="the server's WebSocket URL, e.g. ws://127.0.0.1:8000/ws; repeat it (or give a comma-"
                           "separated list) to spread the sessions over replicas")  # fmt: skip
    load.add_argument("--sessions", type=int, required=True, help="concurrent sessions (connections)")
    until = load.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", type=float, help="seconds to run")
    until.add_argument("--games", type=int, help="games to play in all")
    load.add_argument("--ramp", type=float, default=0.0, help="seconds over which the sessions connect")
    load.add_argument("--pace", choices=("human", "max"), default="max", help="think like people, or flat out")
    load.add_argument("--opponent", choices=[o.id for o in OPPONENTS], help="play one opponent only")
    load.add_argument("--rate", type=float, default=0.0, help="cap messages/s per session (0: none)")
    load.add_argument("--seed", type=int, default=0, help="seed of the simulated players")
    load.add_argument("--processes", type=_positive, default=1,
                      help="generator processes sharing the sessions (default 1); one report of them all")  # fmt: skip
    load.add_argument("--json", help="also write the report as JSON to this file")
    train = commands.add_parser("train", help="one training cycle: train, export and register new versions")
    _add_common(train)
    train.add_argument("--family", choices=FAMILIES, help="train one family only")
    train.add_argument("--min-rounds", type=int, default=0, help="train only when this many new rounds arrived")
    promote = commands.add_parser("promote", help="run the promotion rules now (docs/promotion.md)")
    _add_common(promote)
    promote.add_argument("--family", choices=FAMILIES, help="one family only")
    promote.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    evaluate = commands.add_parser("evaluate", help="offline accuracy and win-rate estimate on recorded play")
    _add_common(evaluate)
    evaluate.add_argument("--data", required=True, help="CSV: player_id,game_id,round,move,opp_move[,values]")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _trainer(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", *args]


def trainer_available() -> bool:
    """True when the training extras are installed (the server itself never imports them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "xgboost", "onnxscript"))


def cold_start(settings: Settings) -> None:
    """On an empty model store, train a first version of every family before serving."""
    if read_manifest(open_store(settings)) is not None:
        return
    if not trainer_available():
        print("rpsquest: no models yet and the trainer is not installed (pip install 'rpsquest[train]');"
              " serving with the online predictor only", file=sys.stderr)  # fmt: skip
        return
    print("rpsquest: first start: training the first models (1-2 min on 2 quiet cores, longer on busy)", flush=True)
    subprocess.run(_trainer("bootstrap", "--data-dir", str(settings.data_dir)), check=True)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the game server until interrupted: `settings.workers` processes share the port.

    Every worker builds its app from the environment (the data dir is passed on there). Any
    worker can play any game: games live in the database and a worker reads one afresh when a
    connection resumes it. With several workers their metrics go through files in the data dir.
    """
    os.environ["RPSQUEST_DATA_DIR"] = str(settings.data_dir)
    raise_open_file_limit()  # the workers inherit it; each sizes its connection cap to it (server/connections.py)
    prepare(settings.database())  # migrate once, before the workers (or other replicas) open it
    if settings.workers > 1:
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # the files of an earlier run's workers
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(f"RPS Quest is up: open http://{shown}:{port}/  (data in {settings.data_dir}; Ctrl-C stops)", flush=True)
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        workers=settings.workers,
        host=host,
        port=port,
        loop=EVENT_LOOP,
        http="server.connections:GuardedHttp",  # httptools with the header timeout and connection caps
        ws="server.connections:GuardedWebSocket",
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        ws_max_size=MAX_FRAME,
        ws_ping_interval=settings.idle_timeout / 3.0,
        ws_ping_timeout=settings.idle_timeout * 2.0 / 3.0,
        ws_per_message_deflate=settings.ws_deflate,
        lifespan="on",
        timeout_graceful_shutdown=CLOSE_GRACE,  # after the drain (server/drain.py): the WebSockets are closed
        access_log=False,
        log_level="warning",
    )


class Stopped(Exception):
    """SIGINT or SIGTERM reached `up` or `serve`."""


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def run_server(settings: Settings, with_trainer: bool, host: str, port: int) -> int:
    """`up` and `serve`: hold the data dir, train on a cold start, serve (with the training loop under `up`).

    uvicorn handles SIGINT and SIGTERM while it serves, then puts back the handlers it found and
    raises the signal again. The handler put here turns either signal into Stopped, so the trainer
    always ends with this process (SIGTERM's default action would end it at once and leave the
    trainer running). The trainer runs in its own session: a terminal's Ctrl-C reaches it only
    through this process. A trainer that exits on its own is started again (server/supervisor.py).
    """
    try:
        lock_data_dir(settings.data_dir)
    except DataDirBusy as exc:
        print(f"rpsquest: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    trainer: Supervisor | None = None
    try:
        cold_start(settings)
        if with_trainer and trainer_available():
            trainer = Supervisor(_trainer("loop", "--data-dir", str(settings.data_dir)), settings.database())
            trainer.start()
        serve(settings, host, port)
    except Stopped:
        pass
    finally:
        if trainer is not None:
            trainer.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "loadtest" and args.processes > args.sessions:
        parser.error(f"--processes {args.processes} is more than --sessions {args.sessions}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(args.data_dir)
        if args.command in ("train", "evaluate", "promote"):
            argv_out = [args.command, "--data-dir", str(settings.data_dir)]
            if args.command in ("train", "promote") and args.family:
                argv_out += ["--family", args.family]
            if args.command == "train" and args.min_rounds:
                argv_out += ["--min-rounds", str(args.min_rounds)]
            if args.command == "promote" and args.dry_run:
                argv_out.append("--dry-run")
            if args.command == "evaluate":
                argv_out += ["--data", args.data] + (["--json"] if args.json else [])
            return subprocess.run(_trainer(*argv_out), check=False).returncode
        if args.command in ("serve", "up"):
            return run_server(settings, args.command == "up", args.host, args.port)
        if args.command == "loadtest":
            from clients.loadtest import run

            return run(args)
        if args.command == "simulate":
            from clients.simulate import simulate

            report = asyncio.run(simulate(args.url, args.games, args.concurrency, args.seed))
            print(
                f"games {report.games}  rounds {report.rounds}  winners {dict(report.winners)}"
                f"  errors {dict(report.errors)}  violations {len(report.violations)}"
            )
            return 1 if report.violations or report.errors else 0
    except SettingsError as exc:
        print(f"rpsquest: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
