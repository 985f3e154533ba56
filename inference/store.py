"""The model store: ONNX files, model cards and the alias manifest (protocol.md, Model store).

Layout: models/<family>/<version>/model.onnx, models/<family>/<version>/card.json and
aliases.json = {"generation": n, "families": {family: {alias: version}}}, written last
and whole. `LocalStore` keeps it in a folder; an S3 bucket serves behind the same
protocol.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from inference.settings import Settings

MANIFEST = "aliases.json"
_TMP = ".tmp-"


class ModelStore(Protocol):
    """Bytes by key, as in an object store."""

    def read(self, key: str) -> bytes | None:
        """The object at `key`, or None when there is none."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Store `data` at `key`, replacing it whole."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`."""
        ...


def model_key(family: str, version: str, name: str) -> str:
    return f"models/{family}/{version}/{name}"


def read_manifest(store: ModelStore) -> dict[str, Any] | None:
    raw = store.read(MANIFEST)
    return None if raw is None else dict(json.loads(raw))


class ManifestError(Exception):
    """The manifest cannot be used at all; `status` says why: missing, unreadable, wrong shape or store error."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Manifest:
    """A manifest whose outer shape is right; each family's entry is still unchecked (see the model pool)."""

    generation: int
    families: dict[str, object]


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest in `raw`; raises ManifestError (unreadable, wrong shape)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # truncated or not JSON, or not UTF-8
        raise ManifestError("unreadable", f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError("wrong shape", f"{MANIFEST} must be an object, not {type(data).__name__}")
    generation, families = data.get("generation"), data.get("families")
    if type(generation) is not int or generation < 0:
        raise ManifestError("wrong shape", f"{MANIFEST}: generation must be a whole number >= 0, not {generation!r}")
    if not isinstance(families, dict):
        raise ManifestError("wrong shape", f"{MANIFEST}: families must be an object of family -> {{alias: version}}")
    return Manifest(generation, families)


def load_manifest(store: ModelStore) -> Manifest:
    """The store's manifest; raises ManifestError (missing, unreadable, wrong shape, store error)."""
    try:
        raw = store.read(MANIFEST)
    except Exception as exc:  # S3 or file-system errors of every kind: the store is down, not the manifest
        raise ManifestError("store error", f"the model store cannot be read ({type(exc).__name__}: {exc})") from None
    if raw is None:
        raise ManifestError("missing", f"the model store has no {MANIFEST}")
    return parse_manifest(raw)


def stored_manifest(store: ModelStore) -> tuple[int, dict[str, dict[str, str]]] | None:
    """The manifest as (generation, families) with the entries that have the right shape, or None when it is
    missing or broken; raises ManifestError when the store cannot be read."""
    try:
        manifest = load_manifest(store)
    except ManifestError as exc:
        if exc.status == "store error":
            raise
        return None
    families = {
        family: dict(aliases)
        for family, aliases in manifest.families.items()
        if isinstance(aliases, dict) and all(isinstance(v, str) for v in aliases.values())
    }
    return manifest.generation, families


def write_manifest(store: ModelStore, families: dict[str, dict[str, str]], generation: int | None = None) -> int:
    """Write a manifest as `generation` (default: the next after the stored one, 1 in place of a missing or broken
    one); returns its generation."""
    if generation is None:
        try:
            generation = load_manifest(store).generation + 1
        except ManifestError as exc:
            if exc.status == "store error":
                raise
            generation = 1
    store.write(MANIFEST, json.dumps({"generation": generation, "families": families}, indent=2).encode())
    return generation


def versions(store: ModelStore, family: str) -> list[str]:
    """The versions of `family` in the store, oldest first (versions are v1, v2, ...)."""
    found = {key.split("/")[2] for key in store.keys(f"models/{family}/") if key.endswith("/card.json")}
    return sorted(found, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0)


class LocalStore:
    """A model store in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def keys(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith(_TMP))


STORE_CONNECT_TIMEOUT = 3.0  # seconds
STORE_READ_TIMEOUT = 30.0


class S3Store:
    """A model store in an S3 bucket (MinIO in the cluster), through the minio client."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str) -> None:
        import urllib3
        from minio import Minio

        url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        # Fail fast when the store is down (the callers keep the last good state and say why): two quick
        # retries, not the client's default of five with back-off (about 12 s of a reload per attempt).
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=STORE_CONNECT_TIMEOUT, read=STORE_READ_TIMEOUT),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        )
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # a retry is not news; a failure is
        self.client = Minio(
            url.netloc, access_key=access_key, secret_key=secret_key, secure=url.scheme == "https", http_client=http
        )
        self.bucket = bucket
        if not self.client.bucket_exists(bucket):
            self.client.make_bucket(bucket)

    def read(self, key: str) -> bytes | None:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def keys(self, prefix: str) -> list[str]:
        return sorted(str(o.object_name) for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True))


def open_store(settings: Settings) -> ModelStore:
    """The store the settings name: the S3 bucket when an endpoint is set, else a folder in the data dir."""
    if settings.s3_endpoint:
        return S3Store(settings.s3_endpoint, settings.s3_bucket, settings.s3_access_key, settings.s3_secret_key)
    return LocalStore(settings.store_root())
