"""Shared fixtures: the real server as a subprocess on a loopback port."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.pgcluster import PostgresCluster, find_bindir

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`rpsquest serve` (or `command`, e.g. up) in a subprocess, with its own data dir and port."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, store: Path | None = None, command: str = "serve"
    ) -> None:
        self.data_dir = data_dir
        self.command = command
        self.store = store
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.store is not None and not (self.data_dir / "store").exists():
            shutil.copytree(self.store, self.data_dir / "store")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    self.command,
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.http_url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready: " + self.log.read_text()[-2000:])

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with a first version of every family, trained once per session by the real trainer.

    RPSQUEST_TEST_STORE names a store trained earlier the same way, to copy instead (for quicker local
    runs of a few tests; CI trains its own).
    """
    data_dir = tmp_path_factory.mktemp("trained")
    cached = os.environ.get("RPSQUEST_TEST_STORE")
    if cached:
        shutil.copytree(cached, data_dir / "store")
        return data_dir / "store"
    subprocess.run(
        [sys.executable, "-m", "trainer", "bootstrap", "--data-dir", str(data_dir), "--games", "300"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return data_dir / "store"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, trained_store: Path) -> Iterator[ServerProcess]:
    """One real server for the whole session (default settings, the session's trained models)."""
    server = ServerProcess(tmp_path_factory.mktemp("live"), store=trained_store)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path: Path, trained_store: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with their own settings (and the session's trained models); all are stopped after the test."""
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"server{len(started)}", env, trained_store)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server for the session (skipped, saying why, where its binaries are absent)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    cluster = PostgresCluster(bindir, free_port())
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new empty database of each backend: a SQLite file, or a PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "rpsquest.db"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, trained_store: Path, postgres: PostgresCluster
) -> Iterator[ServerProcess]:
    """One real server on a PostgreSQL database of its own, for the whole session."""
    env = {"RPSQUEST_DATABASE_URL": postgres.create_database()}
    server = ServerProcess(tmp_path_factory.mktemp("live-pg"), env, store=trained_store)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's server on each backend."""
    server: ServerProcess = request.getfixturevalue("live_server" if request.param == "sqlite" else "postgres_server")
    return server


WEED = Path(sys.executable).with_name("weed")


class Weed:
    """SeaweedFS's `weed mini` on loopback ports of its own, in a data dir that outlives a stop."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.s3 = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin", "webdav")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
        self.args = [
            str(WEED),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.port={self.s3}",
        ]
        self.args += [f"-{name}.port={port}" for name, port in ports.items()]
        self.args += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def start(self) -> None:
        with (self.data / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=self.data, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except urllib.error.HTTPError:
                return  # the S3 API answers (an error for an anonymous listing is an answer)
            except OSError:
                time.sleep(0.3)
        self.stop()
        pytest.fail("weed mini did not start: " + (self.data / "weed.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@contextmanager
def recorded_collections() -> Iterator[list[int]]:
    """The generation of every collection made meanwhile."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection while the test runs, with CPython's own trigger off."""
    automatic = gc.isenabled()
    gc.disable()
    try:
        with recorded_collections() as seen:
            yield seen
    finally:
        if automatic:
            gc.enable()
