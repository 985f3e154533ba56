"""The trained models in play: training-serving parity, every alias predicts, hot swap keeps a game's version."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from typing import Any

import numpy as np
from conftest import ServerProcess

from clients.client import Client, ClientGame
from engine.features import FeatureTracker
from engine.opponents import ALIASES
from inference.store import LocalStore, read_manifest, write_manifest
from storage import GameRecord, SQLiteStorage
from trainer.datasets import histories_from_db

TOKEN = "test-admin-token"


async def _play(url: str, opponents: list[str], rounds: int | None = None, seed: int = 0) -> list[ClientGame]:
    rng = random.Random(seed)
    games = []
    for opponent in opponents:
        client = await Client.open(url, rate=25)
        game = await client.start(opponent, tag="sim")
        while game.open_round is not None and (rounds is None or len(game.rounds) < rounds):
            played, answer, _ = await client.move(game, rng.randrange(3))
            assert played is not None, answer
        await client.close()
        games.append(game)
    return games


def _records(server: ServerProcess, games: list[ClientGame]) -> list[GameRecord]:
    """The games as the server stored them, read through storage."""

    async def load() -> list[GameRecord]:
        storage = SQLiteStorage(server.data_dir / "rpsquest.db")
        try:
            found = [await storage.load_game(g.game_id) for g in games]
        finally:
            await storage.close()
        assert all(found)
        return [r for r in found if r is not None]

    return asyncio.run(load())


def _post(url: str, body: object, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_training_features_equal_serving_features_bit_for_bit(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    games = asyncio.run(_play(server.ws_url, ["brian", "forrest", "logan"] * 2, seed=1))
    decided = [(record.id, r.decision) for record in _records(server, games) for r in record.rounds]
    served = {(g, d.round): d.features for g, d in decided}
    models = {(g, d.round): d.models for g, d in decided}
    sources = {(g, d.round): d.source for g, d in decided}
    rebuilt: dict[tuple[str, int], bytes] = {}
    for history in histories_from_db(server.data_dir / "rpsquest.db"):  # the trainer's own reader
        tracker = FeatureTracker()
        for played in history.rounds:
            rebuilt[(history.key, played.number)] = tracker.vector(played.values).tobytes()
            tracker.add(played)
    assert len(served) == sum(len(g.rounds) for g in games) > 30
    assert rebuilt == served
    for key, predictions in models.items():
        if key[1] <= 3:
            assert predictions == {} and sources[key] == "online"
        else:  # every alias of the family predicted the round, the served one included
            assert set(predictions) == set(ALIASES) and sources[key] == "model"
            for p in predictions.values():
                assert abs(sum(p.probs) - 1.0) < 1e-5


def test_hot_swap_keeps_each_games_version(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_ADMIN_TOKEN": TOKEN, "RPSQUEST_AB_SPLIT": "0"})
    store = LocalStore(server.data_dir / "store")

    async def scenario() -> tuple[ClientGame, ClientGame]:
        client = await Client.open(server.ws_url, rate=25)
        before = await client.start("logan", tag="sim")
        rng = random.Random(2)
        for _ in range(5):
            assert (await client.move(before, rng.randrange(3)))[0] is not None
        manifest = read_manifest(store)
        assert manifest is not None and manifest["families"]["logistic"]["Production"] == "v1"
        families = manifest["families"]
        families["logistic"] = {**families["logistic"], "Production": "v2"}
        write_manifest(store, families)
        status, body = await asyncio.to_thread(_post, server.http_url + "/api/admin/reload", {}, TOKEN)
        assert status == 200 and body["changed"] is True and body["rejected"] == {}
        after = await client.start("logan", tag="sim")
        for game in (before, after):
            while game.open_round is not None:
                assert (await client.move(game, rng.randrange(3)))[0] is not None
        await client.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before.final is not None and after.final is not None
    assert before.final["insight"]["version"] == "v1"
    assert after.final["insight"]["version"] == "v2"
    for record in _records(server, [before, after]):
        expected = "v1" if record.id == before.game_id else "v2"
        assert all(r.decision.models["Production"].version == expected for r in record.rounds[3:])
    assert _get(server.http_url + "/api/models")["families"]["logistic"]["Production"]["version"] == "v2"


def test_admin_endpoints_are_closed_without_a_token(live_server: ServerProcess) -> None:
    history = [{"player": "rock", "bot": "paper"}] * 4
    status, body = _post(live_server.http_url + "/api/predict", {"family": "mlp", "history": history})
    assert status == 403 and body["error"] == "forbidden"
    status, _ = _post(live_server.http_url + "/api/admin/reload", {})
    assert status == 403


def test_predict_answers_for_any_history(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_ADMIN_TOKEN": TOKEN})
    url = server.http_url + "/api/predict"
    assert _post(url, {"family": "mlp", "history": []}, "wrong")[0] == 403
    rocks = [{"player": "rock", "bot": "scissors", "values": {"rock": 1.0, "paper": 1.2, "scissors": 1.7}}] * 8
    status, body = _post(url, {"family": "xgboost", "alias": "B", "history": rocks}, TOKEN)
    assert status == 200, body
    assert body["version"] == "v2" and body["bot_move"] in ("rock", "paper", "scissors")
    probs = np.array([body["probs"][m] for m in ("rock", "paper", "scissors")])
    assert abs(probs.sum() - 1.0) < 1e-5 and probs.argmax() == 0  # eight rocks in a row: rock is expected
    for bad in ({"family": "svm", "history": []}, {"family": "mlp"}, {"family": "mlp", "history": [{"player": "x"}]}):
        status, body = _post(url, bad, TOKEN)
        assert status == 400 and body["error"] == "bad_request" and body["message"]


def test_models_report_live_accuracy_and_win_rate_from_the_database(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_STATS_TAGS": "sim"})
    played = asyncio.run(_play(server.ws_url, ["forrest"] * 6, seed=5))
    played += asyncio.run(_play(server.ws_url, ["forrest"], rounds=6, seed=6))  # unfinished: counts for accuracy only
    records = _records(server, played)
    rounds = [(g.alias, g.version, r.player_move, r.decision) for g in records for r in g.rounds[3:]]
    games = [(g.alias, g.version, game.final["winner"]) for g, game in zip(records, played, strict=True) if game.final]
    expected: dict[tuple[str, str, str], list[int]] = {}  # (alias, version, kind) -> [rounds, correct]

    def tally(key: tuple[str, str, str], probs: tuple[float, float, float], move: int) -> None:
        counts = expected.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += int(int(np.argmax(probs)) == move)

    for alias, version, move, decision in rounds:
        tally((alias, version, "blend"), decision.probs, move)  # what the bot used
        for model_alias, prediction in decision.models.items():
            tally((model_alias, prediction.version, "model"), prediction.probs, move)
    report = _get(server.http_url + "/api/models")["families"]["xgboost"]
    assert set(report) == set(ALIASES)
    for alias, entry in report.items():
        live = entry["live"]
        kind = "blend" if alias in ("Production", "B") else "model"
        n, correct = expected.get((alias, entry["version"], kind), [0, 0])  # B may have had no game
        assert live["accuracy_of"] == kind and live["rounds"] == n and (n > 0 or alias == "B"), alias
        assert live["accuracy"] == (round(correct / n, 4) if n else None), alias
        served = [w for a, v, w in games if (a, v) == (alias, entry["version"])]
        assert live["games"] == len(served)
        if served:
            assert live["bot_win_rate"] == round(served.count("bot") / len(served), 4)
    human_only = server_factory()  # the default counts human games only: none here
    assert _get(human_only.http_url + "/api/models")["families"]["xgboost"]["Production"]["live"]["rounds"] == 0


def test_promotion_ledger_newest_first(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    rows = [(100.0, "mlp", "no change", '{"games": 12}'), (200.0, "xgboost", "promote", "{}"),
            (300.0, "mlp", "rollback", '{"p": 0.01}')]  # fmt: skip
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        db.executemany("INSERT INTO promotions (created, family, decision, details) VALUES (?, ?, ?, ?)", rows)
        db.commit()
    every = _get(server.http_url + "/api/promotions")["promotions"]
    assert [e["decision"] for e in every] == ["rollback", "promote", "no change"]
    mlp = _get(server.http_url + "/api/promotions?family=mlp&limit=1")["promotions"]
    assert len(mlp) == 1 and mlp[0]["decision"] == "rollback" and mlp[0]["details"] == {"p": 0.01}
    for query in ("family=svm", "limit=0", "limit=x"):
        try:
            _get(server.http_url + "/api/promotions?" + query)
            raise AssertionError(f"{query} was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400 and json.loads(exc.read())["error"] == "bad_request"
