"""Serving over the model lifecycle: /api/models on a large database, and memory over many hot swaps."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import Server, percentiles
from clients.loadtest import loadtest
from inference.store import LocalStore, read_manifest, write_manifest
from storage.benchdata import fill

TOKEN = "bench-admin-token"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


def models_api(root: Path, store: Path, rounds: int = 10_000_000, requests: int = 50) -> dict[str, Any]:
    """GET /api/models on a database of `rounds` finished human rounds (made by SQL, storage/benchdata.py)."""
    data_dir = root / "models_api"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    took = fill(data_dir / "rpsquest.db", rounds)
    size = sum(p.stat().st_size for p in data_dir.glob("rpsquest.db*")) / 2**20
    server = Server(data_dir, store)
    try:
        url = f"http://127.0.0.1:{server.port}/api/models"
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            body = _get(url)
            samples.append(time.perf_counter() - started)
        rss = server.rss_mib()
    finally:
        server.stop()
    return {
        "rounds": rounds,
        "database_mib": round(size, 1),
        "fill_seconds": round(took["fill"], 1),
        "full_scan_seconds": round(took["totals"], 1),  # the backfill: what every request scanned before
        "request_ms": percentiles(samples, scale=1e3),
        "server_rss_mib": round(rss, 1),
        "mlp_production_rounds": body["families"]["mlp"].get("Production", {}).get("live", {}).get("rounds"),
    }


def _reload(port: int) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/admin/reload",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
        data=b"",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


def swaps(root: Path, store: Path, count: int = 200, sessions: int = 50) -> dict[str, Any]:
    """`count` swaps of every family's B to a new version (copies of the trained ones) while `sessions`
    max-pace players play: resident memory and loaded versions along the way."""
    data_dir = root / "swaps"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = Server(data_dir, store, {"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_ADMIN_TOKEN": TOKEN})
    local = LocalStore(data_dir / "store")
    manifest = read_manifest(local)
    assert manifest is not None
    families: dict[str, dict[str, str]] = manifest["families"]
    for family, aliases in families.items():
        for i in range(count):
            shutil.copytree(data_dir / "store" / "models" / family / aliases["B"], data_dir / "store" / "models" /
                            family / f"v{1000 + i}")  # fmt: skip
    rest = server.rss_mib()
    samples: list[dict[str, Any]] = []

    async def swapper() -> None:
        for i in range(count):
            for aliases in families.values():
                aliases["B"] = f"v{1000 + i}"
            await asyncio.to_thread(write_manifest, local, families)
            report = await asyncio.to_thread(_reload, server.port)
            if (i + 1) % 20 == 0:
                loaded = sum(len(v) for v in report["loaded"].values())
                samples.append({"swaps": i + 1, "rss_mib": round(server.rss_mib(), 1), "versions_loaded": loaded})

    async def run() -> dict[str, Any]:
        stop = asyncio.create_task(swapper())
        load = asyncio.create_task(loadtest(server.ws_url, sessions, duration=10**6, ramp=2, pace="max"))
        await stop
        load.cancel()
        return {}

    started = time.perf_counter()
    try:
        asyncio.run(run())
        seconds = time.perf_counter() - started
        time.sleep(2)
        after = _reload(server.port)
        end = {"rss_mib": round(server.rss_mib(), 1), "versions_loaded": sum(len(v) for v in after["loaded"].values())}
    finally:
        server.stop()
    return {
        "swaps": count,
        "families_swapped_each_time": len(families),
        "sessions": sessions,
        "seconds": round(seconds, 1),
        "rss_mib_before": round(rest, 1),
        "along_the_way": samples,
        "after_play_stopped": end,
    }
