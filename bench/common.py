"""Shared helpers of the benchmarks: machine facts, a server subprocess, percentiles."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"
    )


def percentiles(samples: list[float], scale: float = 1e6) -> dict[str, float]:
    """p50/p90/p99/max of `samples` (seconds) in µs by default."""
    a = np.asarray(samples) * scale
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p90": round(float(np.percentile(a, 90)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """`root` and its descendants."""
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user and system) the processes `pids` have used so far (the ones gone since count 0)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, every core and process (the kernel's too)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How busy the machine's cores were between two `machine_ticks()`, in % of all of them."""
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / max(total, 1), 1)


class Server:
    """`rpsquest serve` as a subprocess on a data dir (trained models copied in)."""

    def __init__(
        self, data_dir: Path, store: Path | None, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        """Start it; its output goes to `log` when given, else nowhere."""
        self.data_dir = data_dir
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        if store is not None and not (data_dir / "store").exists():
            shutil.copytree(store, data_dir / "store")
        output = subprocess.DEVNULL if log is None else log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _tree(self) -> list[int]:
        """The serving process and its worker processes, if any."""
        return process_tree(self.process.pid)

    def rss_mib(self) -> float:
        """Resident memory of the server, worker processes included."""
        total = 0
        for pid in self._tree():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def metrics(self) -> str:
        """What /metrics shows now (Prometheus text, every worker's)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def gc_pauses(self) -> dict[str, float]:
        """The garbage collector's pauses so far, every worker's (rpsquest_gc_pause_seconds): how many, the
        seconds paused in all, how many took over 50 ms, and the bound of the slowest one's bucket."""
        buckets: dict[float, float] = {}
        count = total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            if family.name != "rpsquest_gc_pause_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
        slowest = min((le for le, n in buckets.items() if n >= count), default=0.0)
        return {
            "pauses": count,
            "paused_s": round(total, 3),
            "over_50ms": count - buckets.get(0.05, count),
            "slowest_under_s": slowest if count else 0.0,
        }

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the server's processes have used so far."""
        return cpu_seconds(self._tree())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
