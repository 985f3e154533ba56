"""A throwaway PostgreSQL server for the tests and the benchmarks: initdb + pg_ctl in a temporary folder, on a
loopback port."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from bench.common import cpu_seconds, process_tree

_names = itertools.count()


def find_bindir() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/VERSION/bin (newest first)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A server of its own; as root the binaries run as the `postgres` user (initdb refuses root)."""

    def __init__(self, bindir: Path, port: int, durable: bool = False) -> None:
        self.bindir = bindir
        self.port = port
        self.durable = durable  # fsync as in production (benchmarks), or not (tests: a machine crash may lose it)
        self.root = Path(tempfile.mkdtemp(prefix="rpsq-pg-"))
        self.data = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [*(["runuser", "-u", "postgres", "--"] if self.as_postgres else []), *args]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"test{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def cpu_seconds(self) -> float:
        """CPU time the server's processes (the postmaster and every backend now running) have used so far."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        return cpu_seconds(process_tree(postmaster))

    def activity(self, url: str) -> tuple[int, int]:
        """(transactions committed, WAL bytes written) so far, by the whole server."""
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            row = conn.execute(
                "SELECT (SELECT SUM(xact_commit) FROM pg_stat_database)::bigint,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
