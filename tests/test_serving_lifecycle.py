"""Serving over the model lifecycle: shadows that survive a restart, versions that cannot load, many swaps,
and reloads that never go back a generation (real server processes, real store, real SQLite)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ServerProcess

from clients.client import Client, ClientGame
from engine.opponents import ALIASES
from inference.store import LocalStore, read_manifest, write_manifest
from storage import GameRecord, SQLiteStorage

TOKEN = "test-admin-token"
QUIET = {"RPSQUEST_ADMIN_TOKEN": TOKEN, "RPSQUEST_RELOAD_INTERVAL": "3600"}  # reloads only when a test asks


def _call(url: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _reload(server: ServerProcess) -> dict[str, Any]:
    status, body = _call(server.http_url + "/api/admin/reload", "POST")
    assert status == 200, body
    return dict(body)


def _metric_lines(server: ServerProcess, name: str) -> list[str]:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def _stored(server: ServerProcess, game_id: str) -> GameRecord:
    async def load() -> GameRecord:
        storage = SQLiteStorage(server.data_dir / "rpsquest.db")
        try:
            record = await storage.load_game(game_id)
        finally:
            await storage.close()
        assert record is not None
        return record

    return asyncio.run(load())


async def _play_rounds(client: Client, game: ClientGame, rounds: int, rng: random.Random) -> None:
    for _ in range(rounds):
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer


async def _resume(client: Client, game: ClientGame) -> dict[str, Any]:
    answer = await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
    assert answer["type"] == "game", answer
    return answer


def _round_models(server: ServerProcess, game_id: str) -> dict[int, tuple[str, set[str]]]:
    """Each played round's source and the aliases that predicted it, as stored."""
    return {r.decision.round: (r.decision.source, set(r.decision.models)) for r in _stored(server, game_id).rounds}


def test_shadows_of_the_open_round_survive_a_restart(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Round 5 is decided by a process killed before the player moves: the next process, which loads the game,
    predicts its shadows again from the stored features, and the played round is stored with every alias."""
    first = server_factory(QUIET, data_dir=tmp_path / "data")
    rng = random.Random(3)

    async def opening() -> ClientGame:
        client = await Client.open(first.ws_url, rate=25)
        game = await client.start("brian", tag="sim")
        await _play_rounds(client, game, 4, rng)  # round 5 is open: decided with a model, shadows follow
        await client.close()
        return game

    game = asyncio.run(opening())
    pending = _stored(first, game.game_id).pending
    assert pending is not None and pending.round == 5 and len(pending.models) == 1  # the served model's alone
    first.kill()  # kill -9: nothing in the first process's memory survives

    second = server_factory(QUIET, data_dir=tmp_path / "data")

    async def rest() -> None:
        client = await Client.open(second.ws_url, rate=25)
        await _resume(client, game)
        await _play_rounds(client, game, 1, rng)
        await client.close()

    asyncio.run(rest())
    models = _round_models(second, game.game_id)
    assert models[5] == ("model", set(ALIASES))  # decided by the first process, played by the second


def test_a_pinned_version_that_cannot_load_plays_on_with_the_predictor_and_keeps_shadows(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    env = {**QUIET, "RPSQUEST_AB_SPLIT": "0"}  # every game on Production
    first = server_factory(env, data_dir=tmp_path / "data")
    store = LocalStore(first.data_dir / "store")
    manifest = read_manifest(store)
    assert manifest is not None
    pinned = manifest["families"]["logistic"]["Production"]
    rng = random.Random(4)

    async def opening() -> ClientGame:
        client = await Client.open(first.ws_url, rate=25)
        game = await client.start("logan", tag="sim")
        await _play_rounds(client, game, 2, rng)
        await client.close()
        return game

    game = asyncio.run(opening())
    first.stop()
    # Production moves on and the game's own version disappears from the store
    families = manifest["families"]
    families["logistic"] = {**families["logistic"], "Production": families["logistic"]["B"]}
    write_manifest(store, families)
    shutil.rmtree(first.data_dir / "store" / "models" / "logistic" / pinned)

    second = server_factory(env, data_dir=tmp_path / "data")

    async def rest() -> list[dict[str, Any]]:
        client = await Client.open(second.ws_url, rate=25)
        errors = []
        for _ in range(3):  # every resume reads the game afresh: the version is still not tried again
            await _resume(client, game)
        while game.open_round is not None:
            played, answer, _ = await client.move(game, rng.randrange(3))
            if played is None:
                errors.append(answer)
        await client.close()
        return errors

    assert asyncio.run(rest()) == []
    assert game.final is not None and game.final["insight"]["version"] == pinned
    models = _round_models(second, game.game_id)
    assert len(models) == len(game.rounds) > 4
    for n, (source, aliases) in models.items():
        if n > 3:  # the other aliases predicted every round; the game's own version none
            assert source != "model" and aliases == set(ALIASES) - {"Production"}, n
    failures = _metric_lines(second, "rpsquest_model_load_failures_total")
    assert failures == ['rpsquest_model_load_failures_total{family="logistic",reason="missing"} 1.0'], failures


def _new_version(store_dir: Path, family: str, source: str, name: str) -> None:
    shutil.copytree(store_dir / "models" / family / source, store_dir / "models" / family / name)


def test_200_swaps_under_play_keep_loaded_versions_and_metric_labels_bounded(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(QUIET)
    store_dir = server.data_dir / "store"
    store = LocalStore(store_dir)
    manifest = read_manifest(store)
    assert manifest is not None
    families = manifest["families"]
    source = families["logistic"]["B"]
    players, swaps = 4, 200
    for i in range(swaps):
        _new_version(store_dir, "logistic", source, f"v{1000 + i}")
    most_loaded = 0

    async def play(seed: int, stop: asyncio.Event) -> int:
        rng = random.Random(seed)
        client = await Client.open(server.ws_url, rate=25)
        games = 0
        while not stop.is_set():  # a game started is played to its end
            game = await client.start("logan", tag="loadtest")
            while game.open_round is not None:
                played, answer, _ = await client.move(game, rng.randrange(3))
                assert played is not None, answer
            games += 1
        await client.close()
        return games

    async def scenario() -> list[int]:
        nonlocal most_loaded
        stop = asyncio.Event()
        tasks = [asyncio.create_task(play(seed, stop)) for seed in range(players)]
        for i in range(swaps):
            families["logistic"] = {**families["logistic"], "B": f"v{1000 + i}"}
            await asyncio.to_thread(write_manifest, store, families)
            report = await asyncio.to_thread(_reload, server)
            assert report["changed"] and report["rejected"] == {}, report
            most_loaded = max(most_loaded, len(report["loaded"]["logistic"]))
        stop.set()
        return await asyncio.gather(*tasks)

    played = asyncio.run(scenario())
    assert sum(played) >= players
    # every alias's version plus at most one per game in play (each player plays one game at a time)
    assert most_loaded <= len(ALIASES) + players, most_loaded
    report = _reload(server)  # all games are over: only what the aliases serve is left
    assert sorted(report["loaded"]["logistic"]) == sorted(set(families["logistic"].values()))
    assert families["logistic"]["B"] == f"v{1000 + swaps - 1}"
    for name in ("rpsquest_model_serving", "rpsquest_model_predictions_total"):
        versions = {line.split('version="')[1].split('"')[0] for line in _metric_lines(server, name)}
        versions.discard("online-1")
        logistic = {v for v in versions if v.startswith("v1")}
        assert len(logistic) <= len(ALIASES), (name, logistic)
    swapped = _metric_lines(server, "rpsquest_model_swaps_total")
    assert 'rpsquest_model_swaps_total{alias="B",family="logistic"} 200.0' in swapped, swapped


def test_reloads_never_go_back_a_generation(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(QUIET)
    store = LocalStore(server.data_dir / "store")
    manifest = read_manifest(store)
    assert manifest is not None
    families = manifest["families"]
    newer = manifest["generation"] + 10
    swapped = {**families, "mlp": {**families["mlp"], "B": families["mlp"]["shadow1"]}}
    write_manifest(store, swapped, generation=newer)
    assert _reload(server)["generation"] == newer
    write_manifest(store, families, generation=newer - 3)  # a stale copy, as a lagging replica would serve it
    report = _reload(server)
    assert report["generation"] == newer and report["manifest"]["status"] == "stale", report
    assert report["families"]["mlp"]["serving"]["B"] == families["mlp"]["shadow1"]
    status, ready = _call(server.http_url + "/readyz")
    assert status == 200 and ready["status"] == "degraded" and ready["manifest"]["status"] == "stale"
