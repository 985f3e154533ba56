"""Promotion runs (inference/promotion.py) on a real database (each backend) and a real local model store.

Games are stored through the storage package as the server stores them; what "better" and
"worse" mean is made real by the bot's wins in those games.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess

from clients.simulate import simulate
from engine.features import features
from engine.rules import round_values
from inference import promotion
from inference.settings import Settings
from inference.store import LocalStore, stored_manifest, write_manifest
from storage import Decision, GameRecord, ModelPrediction, RoundRecord
from storage.database import Database, is_postgres, open_storage
from storage.lifecycle import Families, Lifecycle

_ids = itertools.count()
FIRST: Families = {"mlp": {"Production": "v1", "B": "v2", "shadow1": "v3", "shadow2": "v4"}}


def _settings(tmp_path: Path, db: Database) -> Settings:
    url = str(db) if is_postgres(db) else f"sqlite:///{db}"
    return Settings(data_dir=tmp_path, database_url=url, promotion_min_games=50, stats_tags=("human",))


def _decision(game_id: str, player_guess: tuple[float, float, float]) -> Decision:
    return Decision(
        round=1, bot_move=0, nonce="ab" * 16, source="opening", probs=(1 / 3, 1 / 3, 1 / 3), ev=(0.0, 0.0, 0.0),
        features=features([], round_values(game_id, 1)).tobytes(),
        models={"shadow1": ModelPrediction("v3", player_guess), "shadow2": ModelPrediction("v4", (0.2, 0.2, 0.6))},
    )  # fmt: skip


async def _store_games(db: Database, alias: str, version: str, games: int, bot_wins: int, tag: str = "human") -> None:
    """`games` finished one-round games of mlp `version` as `alias`, `bot_wins` of them won by the bot; the player
    always plays rock, which shadow1 (v3) predicts better than shadow2 (v4)."""
    storage = await open_storage(db)
    try:
        for i in range(games):
            game_id = f"g{next(_ids):06d}"
            now = time.time()
            decision = _decision(game_id, (0.7, 0.2, 0.1))
            record = GameRecord(
                id=game_id, opponent="brian", family="mlp", alias=alias, version=version, opening="mirror", tag=tag,
                player=None, token_hash="f" * 64, created=now, updated=now, pending=decision,
            )  # fmt: skip
            await storage.create_game(record)
            played = RoundRecord(decision, round_values(game_id, 1), 0, 0, 0, now)
            await storage.record_round(record, played, "bot" if i < bot_wins else "player")
    finally:
        await storage.close()


def _publish(tmp_path: Path, db: Database, families: Families) -> None:
    store = LocalStore(tmp_path / "store")
    with Lifecycle(db) as lifecycle:
        lifecycle.publish(
            lambda: stored_manifest(store), lambda f: families, lambda g, f: write_manifest(store, f, g), "trained"
        )


def _ledger(db: Database) -> list[tuple[str, str | None, str | None, str | None]]:
    async def read() -> list[tuple[str, str | None, str | None, str | None]]:
        storage = await open_storage(db)
        try:
            return [(e.decision, e.alias, e.from_version, e.to_version) for e in await storage.promotions("mlp", 100)]
        finally:
            await storage.close()

    return asyncio.run(read())


def _aliases(tmp_path: Path) -> dict[str, str]:
    manifest = stored_manifest(LocalStore(tmp_path / "store"))
    assert manifest is not None
    return manifest[1]["mlp"]


def test_too_few_games_keep_collecting_and_the_ledger_says_so(tmp_path: Path, database: Database) -> None:
    db = database
    _publish(tmp_path, db, FIRST)
    asyncio.run(_store_games(db, "Production", "v1", 20, 10))
    asyncio.run(_store_games(db, "B", "v2", 20, 18))
    [run] = promotion.run(_settings(tmp_path, db), LocalStore(tmp_path / "store"), ["mlp"])
    assert run.outcome == "continue" and run.after == run.before == FIRST["mlp"]
    assert run.details["production_games"] == 20 and run.details["b_wins"] == 18
    assert _ledger(db) == [("continue", None, None, None)]


def test_a_better_b_is_promoted_then_a_worse_production_rolled_back(tmp_path: Path, database: Database) -> None:
    db, store = database, LocalStore(tmp_path / "store")
    settings = _settings(tmp_path, db)
    _publish(tmp_path, db, FIRST)
    asyncio.run(_store_games(db, "Production", "v1", 300, 150))  # the bot wins half
    asyncio.run(_store_games(db, "B", "v2", 300, 240))  # four games in five
    asyncio.run(_store_games(db, "B", "v2", 300, 300, tag="loadtest"))  # never counted

    dry = promotion.run(settings, store, ["mlp"], dry_run=True)
    assert dry[0].outcome == "promote" and dry[0].ledger_id is None
    assert _aliases(tmp_path) == FIRST["mlp"] and _ledger(db) == []  # a dry run changes nothing

    [run] = promotion.run(settings, store, ["mlp"])
    assert run.outcome == "promote"
    assert run.details["p_better"] <= settings.promotion_alpha and run.details["b_games"] == 300
    assert _aliases(tmp_path) == {"Production": "v2", "B": "v1", "shadow1": "v3", "shadow2": "v4"}
    assert _ledger(db) == [("promote", "Production", "v1", "v2")]

    # The test goes on with roles swapped, on games from the promotion on: the new Production does worse.
    asyncio.run(_store_games(db, "Production", "v2", 300, 120))
    asyncio.run(_store_games(db, "B", "v1", 300, 240))
    [run] = promotion.run(settings, store, ["mlp"])
    assert run.outcome == "rollback"
    # v1 is back; the best-ranked challenger (shadow1's v3 predicted the player's rock better) is the new B
    assert _aliases(tmp_path) == {"Production": "v1", "B": "v3", "shadow2": "v4"}
    assert run.details["ranking"][0]["version"] == "v3"
    assert _ledger(db)[0] == ("rollback", "Production", "v2", "v1")


def test_a_worse_b_is_rejected_and_the_best_challenger_takes_its_place(tmp_path: Path, database: Database) -> None:
    db, store = database, LocalStore(tmp_path / "store")
    _publish(tmp_path, db, FIRST)
    asyncio.run(_store_games(db, "Production", "v1", 300, 240))
    asyncio.run(_store_games(db, "B", "v2", 300, 150))
    [run] = promotion.run(_settings(tmp_path, db), store, ["mlp"])
    assert run.outcome == "reject"
    assert _aliases(tmp_path) == {"Production": "v1", "B": "v3", "shadow2": "v4"}
    assert _ledger(db) == [("reject", "B", "v2", "v3")]
    with Lifecycle(db) as lifecycle:  # B's new test counts from now: the old games are not v3's
        b = next(t for t in lifecycle.tenures("mlp", current_only=True) if t.alias == "B")
        assert b.version == "v3" and b.why == "reject"


def test_a_sample_ratio_mismatch_pauses_the_family(tmp_path: Path, database: Database) -> None:
    db, store = database, LocalStore(tmp_path / "store")
    _publish(tmp_path, db, FIRST)
    asyncio.run(_store_games(db, "Production", "v1", 400, 200))
    asyncio.run(_store_games(db, "B", "v2", 150, 140))  # a 50/50 split started 400 to 150
    [run] = promotion.run(_settings(tmp_path, db), store, ["mlp"])
    assert run.outcome == "pause" and run.after == FIRST["mlp"]
    assert run.details["srm_p"] < 0.001
    assert _ledger(db) == [("pause", None, None, None)]


@pytest.mark.parametrize("missing", ["no manifest", "no Production"])
def test_a_family_without_production_is_left_alone(tmp_path: Path, database: Database, missing: str) -> None:
    db = database
    if missing == "no Production":
        _publish(tmp_path, db, {"mlp": {"B": "v2"}})
    assert promotion.run(_settings(tmp_path, db), LocalStore(tmp_path / "store"), ["mlp"]) == []


def _post(url: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_admin_promote_runs_the_rules_on_the_live_server(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_ADMIN_TOKEN": "promote-token"})
    url = server.http_url + "/api/admin/promote"
    assert _post(url, None)[0] == 403
    assert _post(url, "wrong")[0] == 403

    status, dry = _post(url + "?dry_run=1", "promote-token")
    assert status == 200 and dry["dry_run"] is True
    assert {f["family"] for f in dry["families"]} == {"mlp", "xgboost", "logistic"}
    assert all(f["ledger_id"] is None and f["after"] == f["before"] for f in dry["families"])
    with urllib.request.urlopen(server.http_url + "/api/promotions") as response:
        assert json.loads(response.read())["promotions"] == []

    status, done = _post(url, "promote-token")  # no game played yet: every family keeps collecting
    assert status == 200 and [f["outcome"] for f in done["families"]] == ["continue"] * 3
    with urllib.request.urlopen(server.http_url + "/api/promotions") as response:
        ledger = json.loads(response.read())["promotions"]
    assert sorted(e["family"] for e in ledger) == ["logistic", "mlp", "xgboost"]
    assert all(e["decision"] == "continue" and e["details"]["production_games"] == 0 for e in ledger)


def test_a_server_restart_in_the_middle_of_a_test_keeps_its_evidence(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """The test's evidence lives in the database: games before a kill -9 and after the restart all count."""
    env = {"RPSQUEST_ADMIN_TOKEN": "promote-token", "RPSQUEST_STATS_TAGS": "human,sim", "RPSQUEST_RATE_LIMIT": "0"}
    server = server_factory(env)
    store = LocalStore(server.data_dir / "store")
    with Lifecycle(server.data_dir / "rpsquest.db") as lifecycle:  # the tenures a cold start would have begun
        lifecycle.publish(lambda: stored_manifest(store), lambda f: f, lambda g, f: None, "trained")
    before = asyncio.run(simulate(server.ws_url, 6, concurrency=3, seed=1, rate=0))
    server.kill()
    server.start()
    after = asyncio.run(simulate(server.ws_url, 6, concurrency=3, seed=2, rate=0))
    assert before.games == after.games == 6 and not before.errors and not after.errors

    status, body = _post(server.http_url + "/api/admin/promote?dry_run=1", "promote-token")
    assert status == 200
    details = [f["details"] for f in body["families"]]
    assert sum(d["production_games"] + d["b_games"] for d in details) == 12  # every finished game, both runs
    assert sum(d["production_started"] + d["b_started"] for d in details) == 12
