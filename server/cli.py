"""The `rpsquest` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvicorn

from server.app import create_app
from server.settings import Settings, SettingsError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where data lives (default ./data, env RPSQUEST_DATA_DIR)")


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")


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
    return parser


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the game server until interrupted."""
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=4096,
        ws_ping_interval=settings.idle_timeout / 3.0,
        ws_ping_timeout=settings.idle_timeout * 2.0 / 3.0,
        ws_per_message_deflate=settings.ws_deflate,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(f"RPS Quest is up: open http://{shown}:{port}/  (data in {settings.data_dir}; Ctrl-C stops)", flush=True)
    server.run()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(args.data_dir)
        if args.command in ("serve", "up"):
            serve(settings, args.host, args.port)
        elif args.command == "simulate":
            from server.simulate import simulate

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
