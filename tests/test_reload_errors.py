"""Model reload errors are reported where they happen (reload API, /readyz) and logged once with a count,
against a real server and its local store folder."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from conftest import ServerProcess

from inference.store import LocalStore, read_manifest, write_manifest

TOKEN = "test-admin-token"
UNREADABLE = "model manifest unreadable: aliases.json is not valid JSON"


def _call(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=b"{}" if token else None, method="POST" if token else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _truncate_manifest(server: ServerProcess) -> None:
    path = server.data_dir / "store" / "aliases.json"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _log_lines(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if text in line]


def test_reload_api_and_readyz_say_what_happened(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(
        {"RPSQUEST_ADMIN_TOKEN": TOKEN, "RPSQUEST_RELOAD_INTERVAL": "3600", "RPSQUEST_LOG_REPEAT_INTERVAL": "3600"}
    )
    reload_url, ready_url = server.http_url + "/api/admin/reload", server.http_url + "/readyz"
    store = LocalStore(server.data_dir / "store")
    manifest = read_manifest(store)
    assert manifest is not None
    families = manifest["families"]
    first = {family: dict(aliases) for family, aliases in families.items()}

    # one family points at a version that does not exist, another changes validly in the same manifest
    families["logistic"] = {**families["logistic"], "Production": "v9"}
    families["xgboost"] = {**families["xgboost"], "Production": "v2", "B": "v1"}
    assert write_manifest(store, families) == 2
    status, body = _call(reload_url, TOKEN)
    assert status == 200, body
    assert body["changed"] is True and body["generation"] == 2
    assert body["manifest"] == {"status": "ok", "generation": 2}
    assert body["families"]["xgboost"] == {"status": "applied", "serving": families["xgboost"]}
    assert body["families"]["mlp"] == {"status": "unchanged", "serving": first["mlp"]}
    logistic = body["families"]["logistic"]
    assert logistic["status"] == "refused" and logistic["serving"] == first["logistic"]  # the last good version
    assert list(logistic["refused"]) == ["Production"]
    assert "logistic v9: missing model.onnx or card.json" in logistic["refused"]["Production"]
    assert body["rejected"] == {"logistic/Production": logistic["refused"]["Production"]}
    status, ready = _call(ready_url)
    assert status == 200
    assert ready == {"status": "degraded", "generation": 2, "manifest": body["manifest"], "rejected": body["rejected"]}

    # a truncated manifest: every attempt says so, nothing stops serving, and the log holds one line
    _truncate_manifest(server)
    for _ in range(20):
        status, body = _call(reload_url, TOKEN)
        assert status == 200 and body["changed"] is False and body["generation"] == 2
        assert body["manifest"]["status"] == "unreadable"
        assert body["manifest"]["error"].startswith("aliases.json is not valid JSON (")
        assert body["families"]["xgboost"] == {"status": "unchanged", "serving": families["xgboost"]}
    status, ready = _call(ready_url)
    assert status == 200 and ready["status"] == "degraded" and ready["manifest"] == body["manifest"]
    _, models = _call(server.http_url + "/api/models")
    assert models["families"]["xgboost"]["Production"]["version"] == "v2"

    # no manifest at all
    (server.data_dir / "store" / "aliases.json").unlink()
    status, body = _call(reload_url, TOKEN)
    assert status == 200 and body["manifest"] == {"status": "missing", "error": "the model store has no aliases.json"}
    assert _call(ready_url)[1]["manifest"]["status"] == "missing"

    # a manifest written afresh names generation 1: older than the one applied, so refused as stale
    write_manifest(store, first)
    status, body = _call(reload_url, TOKEN)
    assert status == 200 and body["changed"] is False and body["generation"] == 2
    assert body["manifest"]["status"] == "stale" and body["manifest"]["generation"] == 1

    # a repaired manifest is applied again, and the server is plainly ready
    write_manifest(store, first, generation=3)
    status, body = _call(reload_url, TOKEN)
    assert status == 200 and body["changed"] is True and body["rejected"] == {}
    assert _call(ready_url) == (200, {"status": "ready", "generation": 3})

    server.stop()  # a graceful stop writes the counts still held back
    assert len(_log_lines(server, UNREADABLE)) == 2
    first_line, summary = _log_lines(server, UNREADABLE)
    assert first_line.endswith("; the current versions keep serving")
    assert "; the current versions keep serving [19 identical messages suppressed in " in summary
    assert "Traceback" not in server.log.read_text()


def test_a_broken_manifest_found_by_polling_is_reported_and_logged_once(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_RELOAD_INTERVAL": "0.1"})
    _truncate_manifest(server)
    deadline = time.monotonic() + 60
    while True:  # the poll finds it: /readyz says so, and stays 200 since every family still serves
        status, ready = _call(server.http_url + "/readyz")
        assert status == 200, ready
        if ready["status"] == "degraded":
            break
        assert time.monotonic() < deadline, "the poll never reported the broken manifest"
        time.sleep(0.1)
    assert ready["manifest"]["status"] == "unreadable" and ready["rejected"] == {}
    time.sleep(1.0)  # more polls: each fails the same way
    server.stop()
    lines = _log_lines(server, UNREADABLE)
    assert 1 <= len(lines) <= 2, lines  # the first, and at shutdown the count of the others
    assert "suppressed" not in lines[0]
    assert "Traceback" not in server.log.read_text()
