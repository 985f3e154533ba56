"""The whole loop end to end: players play, promotion runs decide, the server swaps under the players, the trainer
trains.

Real parts only: the server as a subprocess on SQLite, the model store in SeaweedFS through the minio client,
MLflow on a SQLite store, the trainer's own `promote` command as a subprocess, and players on the WebSocket
protocol with the checking client.

"Better" and "worse" are made real, and large, by the players and the versions:
- Every player has a strong habit: from round 3 on they play (the bot's move two rounds before + shift) % 3.
  The bot's in-game experts (engine/predictor.py) cannot see it: it is no function of the player's own moves,
  the outcomes or the bot's last move. So the served model decides the games.
- Every version is a model of the logistic family (its network, exported, checked, stored and registered in
  MLflow by the trainer's own code: trainer.publish, trainer.tracking, the lifecycle's version numbers and
  manifest) that puts its mass on one such habit: shift 1, shift 2, or shift 0, confidently wrong for both.
  A version that knows the players' habit wins most games; one that does not wins about half.

The sequence: Production knows habit 1, B is the weak one, a challenger knows habit 2. Players of habit 1:
the weak B is rejected and the challenger becomes B. Then the players change to habit 2: Production is now the
weak one, B is promoted and the old Production is watched as B. Then the players change back: the new
Production is the weak one and is rolled back. Players play through every swap; games started before a swap
finish on the version they started with. Last, the trainer's `train` trains the family on what was played:
its new versions enter as challengers, the promotion rules that follow the cycle make the best one B, and
aliases.json, the ledger, the tenures and MLflow's registry aliases agree.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, WEED, ServerProcess, Weed

from clients.client import Client, ClientGame, ProtocolViolation
from engine.features import FIRST_MODEL_ROUND, N_FEATURES
from engine.rules import Round
from inference.settings import Settings
from inference.store import LocalStore, ModelStore, S3Store, read_manifest, stored_manifest, versions, write_manifest
from storage.database import open_storage
from storage.lifecycle import Families, Lifecycle
from trainer.__main__ import COLD_START_GAMES
from trainer.coldstart import cached_simulation
from trainer.config import load_config
from trainer.cycle import RECORDED_HOLDOUT, gather
from trainer.datasets import examples, histories_from_csv
from trainer.families import FEATURE_NAMES, INPUT_NAME, OUTPUT_NAME

FAMILY, OPPONENT = "logistic", "logan"
BOT_TWO_AGO = 12  # features [12:15]: the bot's move two rounds ago, one-hot (engine/features.py)
CONFIDENCE = 6.0  # logit of the predicted move: P = 0.995
PLAYERS = 4  # connections playing all the time
RATE = 100.0  # messages a second on each
HELD = 6  # games held open across each promotion run
BATCH = 40  # finished games between two promotion runs
MAX_RUNS = 8  # promotion runs per phase before the test gives up
# Ledger decisions that change no alias: collecting, and a sample-ratio pause. A fair split still trips the
# pause check (p < 0.001) about once in a thousand looks; the next run looks again, so the test goes on.
NO_CHANGE = ("continue", "pause")
SETTINGS = {
    "RPSQUEST_STATS_TAGS": "human,sim",
    "RPSQUEST_PROMOTION_MIN_GAMES": "20",
    "RPSQUEST_PROMOTION_ALPHA": "0.05",
    "RPSQUEST_RATE_LIMIT": "0",
    "RPSQUEST_RELOAD_INTERVAL": "0.2",
}


class Habit:
    """A player who, from round 3 on, plays (the bot's move two rounds before + shift) % 3."""

    def __init__(self, shift: int, rng: random.Random) -> None:
        self.shift = shift
        self.rng = rng

    def move(self, history: list[Round]) -> int:
        return (history[-2].bot + self.shift) % 3 if len(history) >= 2 else self.rng.randrange(3)


Held = tuple[Client, ClientGame, Habit, str, str]  # a game held open: (client, game, habit, alias, version)


@dataclass
class Finished:
    """A finished game as its player saw it: the habit, and the alias, version and winner its last result named."""

    shift: int
    alias: str
    version: str
    bot_won: bool


@dataclass
class Players:
    """Players who keep playing whole games against `OPPONENT`, each game with the habit of its start."""

    url: str
    shift: int = 1
    finished: list[Finished] = field(default_factory=list)
    moves: int = 0
    failures: list[str] = field(default_factory=list)  # every move without a checked result, and why
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, client: Client) -> tuple[ClientGame, Habit]:
        return await client.start(OPPONENT, tag="sim"), Habit(self.shift, random.Random(len(self.finished)))

    async def play(self, client: Client, game: ClientGame, habit: Habit, rounds: int = 99) -> Finished | None:
        """Play up to `rounds` rounds of `game`; a finished game is recorded (and returned) with the alias and
        version its last result names."""
        while game.open_round is not None and rounds > 0:
            rounds -= 1
            self.moves += 1
            try:
                played, answer, _ = await client.move(game, habit.move(game.rounds))
            except ProtocolViolation as exc:
                self.failures.append(f"violation: {exc}")
                return None
            if played is None:
                self.failures.append(f"error: {answer}")
                return None
        if game.open_round is not None:
            return None
        assert game.final is not None
        insight = game.final["insight"]
        done = Finished(habit.shift, insight["alias"], insight["version"], game.winner == "bot")
        self.finished.append(done)
        return done

    async def run(self) -> None:
        client = await Client.open(self.url, RATE)
        try:
            while not self.stop.is_set():
                await self.play(client, *await self.start(client))
        finally:
            await client.close()

    async def more(self, games: int, timeout: float = 120.0) -> None:
        """Wait until `games` more games have finished."""
        target = len(self.finished) + games
        deadline = time.monotonic() + timeout
        while len(self.finished) < target:
            assert time.monotonic() < deadline, f"{len(self.finished)} games finished, waiting for {target}"
            assert not self.failures, self.failures
            await asyncio.sleep(0.1)


@dataclass
class HabitModel:
    """A model of the logistic family (softmax of a linear map of the features, the family's ONNX contract), sure
    that the player plays (the bot's move two rounds before + shift) % 3. Built as ONNX directly: the family's
    PyTorch export costs some 15 s here, for the same function."""

    shift: int
    family: str = FAMILY
    info: dict[str, Any] = field(default_factory=dict)

    def weights(self) -> np.ndarray:
        w = np.zeros((N_FEATURES, 3), dtype=np.float32)
        for bot in range(3):
            w[BOT_TWO_AGO + bot, (bot + self.shift) % 3] = CONFIDENCE
        return w

    def predict(self, x: np.ndarray) -> np.ndarray:
        logits = np.asarray(x, dtype=np.float32) @ self.weights()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out

    def to_onnx(self) -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("MatMul", [INPUT_NAME, "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1)],
            f"habit{self.shift}",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", N_FEATURES])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 3])],
            [numpy_helper.from_array(self.weights(), "w")],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        return bytes(model.SerializeToString())

    def explain(self) -> dict[str, Any]:
        w = self.weights()
        return {
            "kind": "coefficients (per feature, logits of rock, paper, scissors)",
            "coefficients": {name: [float(v) for v in w[i]] for i, name in enumerate(FEATURE_NAMES)},
        }


def _publish_versions(store: ModelStore, settings: Settings, shifts: tuple[int, ...]) -> dict[str, HabitModel]:
    """One version per shift, published as the trainer publishes a trained one: a new version number, the parity
    check, the card with its golden rows, the store, an MLflow run and registered model version. Returns version ->
    model, in the order of `shifts`."""
    from trainer.publish import publish
    from trainer.tracking import Tracker

    tracker = Tracker(settings.mlflow_uri_or_default(), settings.data_dir / "mlflow-artifacts")
    valid = examples(histories_from_csv(RECORDED_HOLDOUT)[:20])  # how it does on people: badly
    config_version, _ = load_config()
    published: dict[str, HabitModel] = {}
    with Lifecycle(settings.database()) as lifecycle:
        for shift in shifts:
            params = {"shift": shift, "confidence": CONFIDENCE}
            model = HabitModel(shift, info={"handmade": f"the bot's move two rounds before + {shift}"})
            run_id = tracker.start(FAMILY, "handmade", params, config_version)
            version, card, onnx = publish(
                store, model, version=lifecycle.allocate_version(FAMILY, versions(store, FAMILY)),
                config="handmade", config_version=config_version, params=params, valid=valid,
                window={"handmade": True}, mlflow_run_id=run_id,
            )  # fmt: skip
            tracker.finish(card, onnx)
            published[version] = model
    return published


def _set_aliases(store: ModelStore, settings: Settings, aliases: dict[str, str]) -> None:
    """The family's aliases, written as the trainer writes a manifest (tenures begin) and mirrored in MLflow."""
    from trainer.tracking import Tracker

    def change(families: Families) -> Families:
        return {**families, FAMILY: aliases}

    with Lifecycle(settings.database()) as lifecycle:
        published = lifecycle.publish(
            lambda: stored_manifest(store), change, lambda g, f: write_manifest(store, f, g), "trained"
        )
    Tracker(settings.mlflow_uri_or_default(), settings.data_dir / "mlflow-artifacts").set_aliases(published.families)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _aliases(store: ModelStore) -> tuple[int, dict[str, str]]:
    manifest = stored_manifest(store)
    assert manifest is not None
    return manifest[0], manifest[1][FAMILY]


async def _promote(server: ServerProcess) -> dict[str, Any]:
    """`rpsquest promote --family logistic` as the CronJob runs it; its ledger row."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trainer", "promote", "--family", FAMILY, "--data-dir", str(server.data_dir),
        cwd=ROOT, env=server.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    ledger = _get(server.http_url + f"/api/promotions?family={FAMILY}")["promotions"]
    entry: dict[str, Any] = ledger[0]
    return entry


async def _hold(players: Players, server: ServerProcess) -> list[Held]:
    """Games started and played to round 4 (the model serves), at least one on each alias, left open: (client,
    game, habit, alias, version) with the alias and version of the game's stored record."""
    storage = await open_storage(server.data_dir / "rpsquest.db")
    held = []
    try:
        for _ in range(10 * HELD):
            client = await Client.open(server.ws_url)
            game, habit = await players.start(client)
            await players.play(client, game, habit, rounds=4)
            record = await storage.load_game(game.game_id)
            assert record is not None and game.open_round is not None
            held.append((client, game, habit, record.alias, record.version))
            if len(held) >= HELD and {h[3] for h in held} == {"Production", "B"}:
                break
    finally:
        await storage.close()
    return held


async def _check_served(server: ServerProcess, held: list[Held], models: dict[str, HabitModel]) -> None:
    """Every round of the held games from round 4 on was predicted by the game's own version, also the rounds
    played after a swap took that version off its alias: the stored prediction is what that version gives for
    the round's stored features."""
    storage = await open_storage(server.data_dir / "rpsquest.db")
    try:
        for _, game, _, alias, version in held:
            record = await storage.load_game(game.game_id)
            assert record is not None and len(record.rounds) > FIRST_MODEL_ROUND
            for played in record.rounds[FIRST_MODEL_ROUND - 1 :]:
                prediction = played.decision.models.get(alias)
                assert prediction is not None and prediction.version == version, (alias, version, prediction)
                x = np.frombuffer(played.decision.features, dtype=np.float32)[None, :]
                assert np.allclose(prediction.probs, models[version].predict(x)[0], atol=1e-5), (version, prediction)
    finally:
        await storage.close()


async def _decide(
    players: Players, server: ServerProcess, store: ModelStore, models: dict[str, HabitModel]
) -> dict[str, Any]:
    """Promotion runs after every BATCH games until one decides; each run with games held open across it that must
    finish on the version they started with, whatever the run swapped."""
    for _ in range(MAX_RUNS):
        await players.more(BATCH)
        held = await _hold(players, server)
        entry = await _promote(server)
        generation, after = _aliases(store)
        deadline = time.monotonic() + 30
        while _get(server.http_url + "/readyz").get("generation") != generation:  # the server has swapped
            assert time.monotonic() < deadline, "the server did not load the new manifest"
            await asyncio.sleep(0.1)
        for client, game, habit, alias, version in held:
            done = await players.play(client, game, habit)
            await client.close()
            assert done is not None and (done.alias, done.version) == (alias, version)
        await _check_served(server, held, models)
        assert not players.failures, players.failures
        if entry["decision"] not in NO_CHANGE:
            assert any(after.get(h[3]) != h[4] for h in held), f"no held game's alias changed version: {entry}"
            return entry
    pytest.fail(f"no decision after {MAX_RUNS} promotion runs: {entry}")


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[Weed]:
    (tmp_path / "weed").mkdir()
    server = Weed(tmp_path / "weed")
    server.start()
    yield server
    server.stop()


def test_players_play_b_is_rejected_then_promoted_then_rolled_back(
    tmp_path: Path, weed: Weed, trained_store: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    assert WEED.exists()
    data_dir = tmp_path / "data"
    env = {
        **SETTINGS,
        "RPSQUEST_S3_ENDPOINT": weed.endpoint,
        "RPSQUEST_S3_BUCKET": "rpsquest-loop",
        "RPSQUEST_MLFLOW_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    settings = Settings(
        data_dir=data_dir, s3_endpoint=weed.endpoint, s3_bucket="rpsquest-loop", mlflow_uri=env["RPSQUEST_MLFLOW_URI"]
    )
    store = S3Store(weed.endpoint, "rpsquest-loop", "", "")
    local = LocalStore(trained_store)
    for key in local.keys("models/"):  # the cold start's versions of every family
        data = local.read(key)
        assert data is not None
        store.write(key, data)
    first = read_manifest(local)
    assert first is not None
    write_manifest(store, first["families"])
    models = _publish_versions(store, settings, (1, 2, 0))
    knows_1, knows_2, weak = models
    _set_aliases(store, settings, {"Production": knows_1, "B": weak, "shadow1": knows_2})
    server = server_factory(env, data_dir=data_dir)

    async def loop() -> list[dict[str, Any]]:
        players = Players(server.ws_url)
        tasks = [asyncio.create_task(players.run()) for _ in range(PLAYERS)]
        try:
            decisions = [await _decide(players, server, store, models)]  # the weak B against a Production that knows
            players.shift = 2  # the players change: Production no longer knows them, B does
            decisions.append(await _decide(players, server, store, models))
            players.shift = 1  # and change back: the promoted version no longer knows them
            decisions.append(await _decide(players, server, store, models))
        finally:
            players.stop.set()
            await asyncio.gather(*tasks)
        assert not players.failures and players.moves > 0
        for shift, knows in ((1, knows_1), (2, knows_2)):  # the version that knows the players wins most
            won: dict[str, list[bool]] = {}
            for game in players.finished:
                if game.shift == shift:
                    won.setdefault(game.version, []).append(game.bot_won)
            rates = {version: sum(w) / len(w) for version, w in won.items()}
            assert len(rates) > 1 and rates[knows] == max(rates.values()), rates
        return decisions

    decisions = asyncio.run(loop())
    assert [(d["decision"], d["alias"], d["from_version"], d["to_version"]) for d in decisions] == [
        ("reject", "B", weak, knows_2),
        ("promote", "Production", knows_1, knows_2),
        ("rollback", "Production", knows_2, knows_1),
    ]
    reject, promote, rollback = (d["details"] for d in decisions)
    for details, better in ((reject, "production"), (promote, "b"), (rollback, "b")):  # as the statistics say
        rates = {arm: details[f"{arm}_wins"] / details[f"{arm}_games"] for arm in ("production", "b")}
        assert rates[better] == max(rates.values()), details
    assert promote["after"] == {"Production": knows_2, "B": knows_1}
    assert rollback["retired"] == [knows_2]
    assert "Traceback" not in server.log.read_text()

    ledger = _get(server.http_url + f"/api/promotions?family={FAMILY}")["promotions"]
    assert [e for e in reversed(ledger) if e["decision"] not in NO_CHANGE] == decisions  # nothing else changed aliases
    _, lineup = _aliases(store)
    assert lineup == rollback["after"] == {"Production": knows_1}

    # The trainer trains on what the players played: two new challengers enter, Production stays.
    trained = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--family", FAMILY, "--data-dir", str(data_dir)],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    with Lifecycle(settings.database()) as lifecycle:
        runs = lifecycle.training_runs("train")
    assert [outcome for outcome, _ in runs] == ["success"]
    _, final = _aliases(store)
    new = sorted(set(versions(store, FAMILY)) - set(models) - set(first["families"][FAMILY].values()))
    assert len(new) == len(load_config()[1][FAMILY])  # one new version per configuration
    # the promotion rules ran after the cycle: with no B, the best-ranked new challenger became B, its test began
    assert final["Production"] == knows_1 and final["B"] in new and set(final.values()) - {knows_1} <= set(new), final
    start = _get(server.http_url + f"/api/promotions?family={FAMILY}")["promotions"][0]
    assert (start["decision"], start["to_version"], start["details"]["after"]) == ("start", final["B"], final)
    rows = re.search(r"trained on (\d+) rounds", trained.stdout)
    without_players = examples(gather(None, cached_simulation(data_dir / "cache", COLD_START_GAMES, 0)))
    assert rows is not None and int(rows[1]) > len(without_players)  # the players' games were trained on

    # aliases.json, the tenures and MLflow's registry aliases agree
    with Lifecycle(settings.database()) as lifecycle:
        assert {t.alias: t.version for t in lifecycle.tenures(FAMILY, current_only=True)} == final
    from trainer.tracking import REGISTERED_PREFIX, Tracker

    client = Tracker(settings.mlflow_uri_or_default(), data_dir / "mlflow-artifacts").client
    registered = client.get_registered_model(REGISTERED_PREFIX + FAMILY)
    by_number = {str(v.version): v.tags["version"] for v in client.search_model_versions(f"name='{registered.name}'")}
    assert {alias: by_number[str(n)] for alias, n in registered.aliases.items()} == {
        alias.lower(): version for alias, version in final.items()
    }
