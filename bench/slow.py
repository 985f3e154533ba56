"""Slow-header sockets against a server (issue 10): /healthz latency and the server's memory while they are held.

Each attacking socket sends `GET / HTTP/1.1` and a Host line, then a header line every 10 s, never completing
its headers; when the server closes it, it connects again a second later, as a patient attacker would. The
sockets are spread over helper processes (`python -m bench.slow PORT COUNT RAMP HOLD`), each with its own
open-file limit, and niced: on this one machine they stand for attackers elsewhere, so they get the CPU the
server leaves. The bench process probes /healthz on a new connection every 50 ms, as a health checker does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Server, percentiles
from server.connections import raise_open_file_limit

HEADER_EVERY = 10.0  # seconds between the header lines of a slow socket
RECONNECT_AFTER = 1.0  # seconds an attacker waits after the server closed its socket
PROBE_EVERY = 0.05


async def _attack(port: int, count: int, ramp: float, hold: float) -> dict[str, int]:
    """Hold `count` slow-header sockets on `port` for `hold` seconds after a `ramp`; what happened to them."""
    tally = {"connected": 0, "connect_timeout": 0, "connect_error": 0, "closed_by_server": 0}
    stop = time.monotonic() + ramp + hold

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            except (OSError, TimeoutError) as exc:
                tally["connect_timeout" if isinstance(exc, TimeoutError) else "connect_error"] += 1
                await asyncio.sleep(RECONNECT_AFTER)
                continue
            tally["connected"] += 1
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
                while time.monotonic() < stop:
                    try:
                        if not await asyncio.wait_for(reader.read(1024), min(HEADER_EVERY, stop - time.monotonic())):
                            tally["closed_by_server"] += 1
                            break
                    except TimeoutError:
                        writer.write(b"X-Slow: 1\r\n")
            except OSError:
                tally["closed_by_server"] += 1
            finally:
                writer.close()
            await asyncio.sleep(RECONNECT_AFTER)

    await asyncio.gather(*(one(ramp * i / count) for i in range(count)))
    tally["cpu_ms"] = round(time.process_time() * 1000)
    return tally


def _probe(port: int) -> float | None:
    """Seconds for one /healthz on a new connection, or None when it failed."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        return time.perf_counter() - started if response.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def _probe_for(server: Server, seconds: float) -> tuple[list[float], int, float]:
    """Probe /healthz for `seconds`: latencies, failures, the server's largest RSS (MiB) meanwhile."""
    latencies: list[float] = []
    failures = 0
    rss = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latency = _probe(server.port)
        if latency is None:
            failures += 1
        else:
            latencies.append(latency)
        rss = max(rss, server.rss_mib())
        time.sleep(PROBE_EVERY)
    return latencies, failures, rss


def slow_sockets(
    root: Path,
    store: Path,
    count: int = 20_000,
    helpers: int = 2,
    ramp: float = 10.0,
    hold: float = 30.0,
    workers: int = os.cpu_count() or 1,
) -> dict[str, Any]:
    """/healthz while `count` slow-header sockets are held against a server of `workers` processes (one per core,
    as the load sections run it: each process has its own open-file limit and connection cap)."""
    log = root / "slow-sockets.log"
    server = Server(root / "slow-sockets", store, {"RPSQUEST_WORKERS": str(workers)}, log=log)
    try:
        before, _, rss_before = _probe_for(server, 3.0)
        helper = [sys.executable, "-m", "bench.slow", str(server.port), str(count // helpers), str(ramp), str(hold)]
        attackers = [
            subprocess.Popen(["nice", "-n", "10", *helper], cwd=ROOT, stdout=subprocess.PIPE) for _ in range(helpers)
        ]
        time.sleep(ramp)
        cpu = server.cpu_seconds()
        during, failures, rss = _probe_for(server, hold)
        cpu = server.cpu_seconds() - cpu
        tallies = [json.loads(a.communicate(timeout=ramp + hold + 60)[0]) for a in attackers]
        time.sleep(2)
        exposition = server.metrics()
    finally:
        server.stop()
    refused = dict(re.findall(r'rpsquest_connections_refused_total\{reason="(\w+)"\} ([0-9.e+]+)', exposition))
    return {
        "slow_sockets": count,
        "server_workers": workers,
        "helper_processes": helpers,
        "ramp_s": ramp,
        "held_s": hold,
        "healthz_before_ms": percentiles(before, 1e3),
        "healthz_during_ms": percentiles(during, 1e3) if during else None,
        "healthz_probes_during": len(during) + failures,
        "healthz_failed_during": failures,
        "attackers": {key: sum(t[key] for t in tallies) for key in tallies[0] if key != "cpu_ms"},
        "server_refused": {reason: int(float(n)) for reason, n in refused.items()},
        "server_cpu_share_during": round(cpu / hold, 2),
        "attackers_cpu_share": round(sum(t["cpu_ms"] for t in tallies) / 1000 / (ramp + hold), 2),
        "server_rss_mib_before": round(rss_before, 1),
        "server_rss_mib_max_during": round(rss, 1),
        "server_log_bytes": log.stat().st_size,
    }


if __name__ == "__main__":  # python -m bench.slow PORT COUNT RAMP HOLD: one attacking helper process
    port, count, ramp, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    raise_open_file_limit()
    print(json.dumps(asyncio.run(_attack(port, count, ramp, hold))))
