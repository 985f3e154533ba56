"""GameService (server/games.py) against an in-memory fake storage that can be made to fail."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Coroutine, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import msgspec
import numpy as np
import pytest

import server.games as games_module
from engine.fairplay import commitment, verify
from engine.predictor import MEMORY_ROUNDS
from engine.rules import MOVE_INDEX, MOVES, Round, points, round_values
from server.games import (
    ABANDON_AFTER,
    ONLINE_VERSION,
    SHADOW_LINGER,
    GameError,
    GameService,
    Predictors,
    Swept,
    key_hash,
)
from server.messages import GameMessage, Result
from storage import Storage, StorageUnavailable
from storage.database import Database, open_storage
from storage.ids import GameIds, millis
from storage.records import (
    GameRecord,
    LeaderboardRow,
    LedgerEntry,
    LifecycleFigures,
    OpponentStats,
    RoundRecord,
    VersionStats,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _copy(record: GameRecord) -> GameRecord:
    """A deep copy, as a database would hand back."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(record), type=GameRecord)


class FakeStorage:
    """The Storage protocol in memory; `failing = True` makes every call raise StorageUnavailable."""

    def __init__(self) -> None:
        self.games: dict[str, GameRecord] = {}
        self.winners: dict[str, str] = {}
        self.failing = False
        self.writes = 0
        self.yield_in_writes = False

    async def _check(self) -> None:
        if self.yield_in_writes:
            await asyncio.sleep(0)  # let other coroutines run, as a real write would
        if self.failing:
            raise StorageUnavailable("the fake database is down")

    async def create_game(self, game: GameRecord) -> None:
        await self._check()
        assert game.id not in self.games
        self.games[game.id] = _copy(game)
        self.writes += 1

    async def record_round(self, game: GameRecord, played: RoundRecord, winner: str | None) -> None:
        await self._check()
        stored = self.games[game.id]
        if played.decision.round != len(stored.rounds) + 1:
            raise StorageUnavailable(f"round {played.decision.round} cannot follow {len(stored.rounds)} rounds")
        stored.rounds.append(msgspec.msgpack.decode(msgspec.msgpack.encode(played), type=RoundRecord))
        stored.pending = _copy(game).pending
        stored.updated = played.created
        if winner is not None:
            self.winners[game.id] = winner
        self.writes += 1

    async def load_game(self, game_id: str) -> GameRecord | None:
        await self._check()
        stored = self.games.get(game_id)
        return None if stored is None else _copy(stored)

    async def mark_abandoned(self, idle_before: float) -> int:
        await self._check()
        marked = 0
        for game in self.games.values():
            if game.id not in self.winners and not game.abandoned and game.updated < idle_before:
                game.abandoned = True
                marked += 1
        return marked

    async def delete_unplayed(self, created_before: float) -> int:
        await self._check()
        gone = [g.id for g in self.games.values() if not g.rounds and not g.abandoned and g.created < created_before]
        for game_id in gone:
            del self.games[game_id]
        return len(gone)

    async def remembered(self, key_hash: str, before: float, games: int) -> list[list[Round]]:
        await self._check()
        done = sorted(
            (g for g in self.games.values() if g.key_hash == key_hash and g.id in self.winners and g.updated < before),
            key=lambda g: g.updated,
        )
        return [[r.as_round() for r in g.rounds] for g in done[len(done) - games :]]

    async def forget(self, key_hash: str) -> int:
        await self._check()
        keyed = [g for g in self.games.values() if g.key_hash == key_hash]
        for g in keyed:
            g.key_hash = None
        return len(keyed)

    async def opponent_stats(self) -> list[OpponentStats]:
        await self._check()
        return []

    async def leaderboard(self, per_opponent: int) -> list[LeaderboardRow]:
        await self._check()
        return []

    async def version_stats(self, tags: tuple[str, ...]) -> list[VersionStats]:
        await self._check()
        return []

    async def promotions(self, family: str | None, limit: int) -> list[LedgerEntry]:
        await self._check()
        return []

    async def lifecycle_figures(self) -> LifecycleFigures:
        await self._check()
        return LifecycleFigures()

    async def close(self) -> None:
        pass


def _is_storage(storage: FakeStorage) -> Storage:
    return storage  # mypy checks here that the fake implements the protocol


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The wall clock the game service sees."""
    fake = Clock(1_000_000.0)
    monkeypatch.setattr(games_module, "time", SimpleNamespace(time=fake.time))
    yield fake


async def play_to_end(service: GameService, game: GameMessage, first: int = 0) -> list[Result]:
    results = []
    next_round = game.next
    move = first
    while next_round is not None:
        result = await service.move(game.game_id, next_round.round, MOVES[move % 3])
        results.append(result)
        next_round = result.next
        move += 1
    return results


async def expect_error(code: str, call: Coroutine[Any, Any, object]) -> GameError:
    with pytest.raises(GameError) as raised:
        await call
    assert raised.value.code == code, raised.value.message
    return raised.value


# -- start, move, resume --------------------------------------------------------------------------


def test_start_opens_round_one_and_stores_the_game(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(games_module, "_ids", GameIds())  # ids already made this session came later than `clock`
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> tuple[GameMessage, GameMessage]:
        return await service.start("forrest", "Ann", None), await service.start("logan", None, "sim")

    game, sim = run(scenario())
    assert game.token and game.opponent == "forrest" and game.target == 10.0
    assert (game.score.player, game.score.bot, game.over, game.winner, game.history) == (0.0, 0.0, False, None, [])
    assert game.next is not None and game.next.round == 1
    values = round_values(game.game_id, 1)
    assert (game.next.values.rock, game.next.values.paper, game.next.values.scissors) == tuple(v / 10 for v in values)

    record = storage.games[game.game_id]
    assert record.token_hash == hashlib.sha256(game.token.encode()).hexdigest()
    assert game.token not in msgspec.json.encode(record).decode()
    assert (record.opponent, record.family, record.tag, record.player) == ("forrest", "xgboost", "human", "Ann")
    assert record.alias in ("Production", "B") and record.version == ONLINE_VERSION
    assert record.created == record.updated == clock.now and record.rounds == []
    pending = record.pending
    assert pending is not None and pending.round == 1 and len(pending.nonce) == 32
    assert game.next.commit == commitment(game.game_id, 1, pending.bot_move, pending.nonce)
    assert game.game_id in service.live

    sim_record = storage.games[sim.game_id]
    assert (sim_record.tag, sim_record.player, sim_record.family) == ("sim", None, "logistic")
    assert sim.game_id != game.game_id and sim.token != game.token
    assert game.game_id < sim.game_id and millis(game.game_id) == millis(sim.game_id) == int(clock.now * 1000)


def test_unknown_opponent_stores_nothing() -> None:
    storage = FakeStorage()
    service = GameService(storage)
    run(expect_error("unknown_opponent", service.start("zed", None, None)))
    assert storage.games == {} and service.live == {}


def test_whole_game_commits_every_round_and_ends(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> tuple[GameMessage, list[Result], list[str]]:
        game = await service.start("brian", None, None)
        commits = [game.next.commit] if game.next else []
        results = []
        next_round = game.next
        while next_round is not None:
            clock.now += 5
            stored_before = len(storage.games[game.game_id].rounds)
            result = await service.move(game.game_id, next_round.round, MOVES[next_round.round % 3])
            # the round is in the database before the result exists
            assert len(storage.games[game.game_id].rounds) == stored_before + 1
            results.append(result)
            next_round = result.next
            if next_round is not None:
                commits.append(next_round.commit)
        return game, results, commits

    game, results, commits = run(scenario())
    record = storage.games[game.game_id]
    assert [r.round for r in results] == list(range(1, len(results) + 1))
    assert len(record.rounds) == len(results) and record.pending is None
    for result, commit, played in zip(results, commits, record.rounds, strict=True):
        assert verify(game.game_id, result.round, MOVE_INDEX[result.bot_move], result.nonce, commit)
        assert result.nonce == played.decision.nonce and MOVES[played.decision.bot_move] == result.bot_move
        assert (result.score.player, result.score.bot) == (played.score_player / 10, played.score_bot / 10)
    last = results[-1]
    assert last.over and last.next is None and last.winner in ("player", "bot", "tie")
    assert all(not r.over and r.winner is None and "alias" not in r.insight for r in results[:-1])
    assert last.insight["alias"] == record.alias and last.insight["version"] == ONLINE_VERSION
    assert storage.winners[game.game_id] == last.winner
    assert record.updated == clock.now
    assert game.game_id not in service.live  # finished games leave memory


def test_retry_wrong_round_and_game_over(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> None:
        game = await service.start("logan", None, None)
        game_id = game.game_id
        await expect_error("wrong_round", service.move(game_id, 2, "rock"))
        await expect_error("wrong_round", service.move(game_id, 7, "rock"))
        assert storage.games[game_id].rounds == [] and storage.writes == 1  # nothing changed
        first = await service.move(game_id, 1, "paper")
        writes = storage.writes
        again = await service.move(game_id, 1, "paper")
        other = await service.move(game_id, 1, "scissors")  # a retry cannot change the move
        assert again == first and other == first
        assert storage.writes == writes and len(storage.games[game_id].rounds) == 1
        error = await expect_error("wrong_round", service.move(game_id, 3, "rock"))
        assert error.game_id == game_id

        rest = await play_to_end(service, await service.resume(game_id, game.token or ""))
        last = rest[-1]
        await expect_error("game_over", service.move(game_id, last.round + 1, "rock"))
        await expect_error("game_over", service.move(game_id, last.round + 5, "rock"))
        assert await service.move(game_id, last.round, "rock") == last
        assert await service.move(game_id, 1, "rock") == first  # also after the end, from storage

    run(scenario())


def test_unknown_game_and_bad_token() -> None:
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> None:
        game = await service.start("brian", None, None)
        await expect_error("unknown_game", service.move("nope", 1, "rock"))
        await expect_error("unknown_game", service.resume("nope", "anything"))
        await expect_error("bad_token", service.resume(game.game_id, "wrong"))
        await expect_error("bad_token", service.resume(game.game_id, ""))
        other = await service.start("brian", None, None)
        await expect_error("bad_token", service.resume(game.game_id, other.token or ""))
        assert await service.exists(game.game_id) and not await service.exists("nope")
        resumed = await service.resume(game.game_id, game.token or "")
        assert resumed.token is None
        assert msgspec.structs.replace(game, token=None) == resumed

    run(scenario())


def test_concurrent_moves_of_one_round_play_it_once(clock: Clock) -> None:
    storage = FakeStorage()
    storage.yield_in_writes = True
    service = GameService(storage)

    async def scenario() -> list[Result]:
        game = await service.start("forrest", None, None)
        return list(await asyncio.gather(*(service.move(game.game_id, 1, m) for m in MOVES)))

    results = run(scenario())
    assert results[0] == results[1] == results[2] and results[0].player_move == "rock"
    (record,) = storage.games.values()
    assert len(record.rounds) == 1


# -- A/B assignment -------------------------------------------------------------------------------


def _aliases(ab_split: float, n: int) -> list[str]:
    storage = FakeStorage()
    service = GameService(storage, ab_split=ab_split)

    async def scenario() -> None:
        for i in range(n):
            await service.start(("brian", "forrest", "logan")[i % 3], None, None)

    run(scenario())
    return [g.alias for g in storage.games.values()]


def test_ab_split_half_assigns_both_aliases_about_equally() -> None:
    n = 400
    aliases = _aliases(0.5, n)
    b = aliases.count("B")
    assert aliases.count("Production") + b == n
    assert abs(b - n / 2) <= 5 * math.sqrt(n * 0.25)  # five standard deviations: fails once in ~3.5 million runs


def test_ab_split_zero_is_all_production_and_one_all_b() -> None:
    assert set(_aliases(0.0, 60)) == {"Production"}
    assert set(_aliases(1.0, 60)) == {"B"}


def test_alias_is_kept_for_the_whole_game_also_after_a_rebuild(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage, ab_split=0.5)

    async def scenario() -> list[tuple[str, str]]:
        seen = []
        for _ in range(6):
            game = await service.start("brian", None, None)
            assert game.next is not None
            await service.move(game.game_id, 1, "rock")
            service.live.clear()
            results = await play_to_end(service, await service.resume(game.game_id, game.token or ""))
            seen.append((storage.games[game.game_id].alias, str(results[-1].insight["alias"])))
        return seen

    assert all(stored == revealed for stored, revealed in run(scenario()))


# -- storage failures ---------------------------------------------------------------------------


def test_failed_write_loses_nothing_and_keeps_the_commitment(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> None:
        game = await service.start("brian", None, None)
        token = game.token or ""
        first = await service.move(game.game_id, 1, "rock")
        assert first.next is not None
        commit = first.next.commit
        pending = storage.games[game.game_id].pending
        assert pending is not None and pending.round == 2

        storage.failing = True
        with pytest.raises(StorageUnavailable):
            await service.move(game.game_id, 2, "paper")
        with pytest.raises(StorageUnavailable):  # the game cannot be served while the database is down
            await service.resume(game.game_id, token)
        with pytest.raises(StorageUnavailable):
            await service.move(game.game_id, 2, "paper")
        assert len(storage.games[game.game_id].rounds) == 1

        storage.failing = False
        resumed = await service.resume(game.game_id, token)
        assert resumed.next is not None and resumed.next.round == 2
        assert resumed.next.commit == commit  # the same bot move and nonce
        assert resumed.history == [first] and resumed.score == first.score
        second = await service.move(game.game_id, 2, "scissors")  # the player may even change their mind
        assert second.player_move == "scissors"
        assert second.nonce == pending.nonce and second.bot_move == MOVES[pending.bot_move]
        assert verify(game.game_id, 2, MOVE_INDEX[second.bot_move], second.nonce, commit)
        # the engine did not keep the round that failed to save: round 2 is scored on top of round 1 only
        values = round_values(game.game_id, 2)
        gained = points(values, MOVE_INDEX["scissors"], pending.bot_move)
        stored = storage.games[game.game_id].rounds
        assert len(stored) == 2 and stored[1].values == values
        assert (stored[1].score_player, stored[1].score_bot) == (
            stored[0].score_player + gained[0],
            stored[0].score_bot + gained[1],
        )
        assert (second.score.player, second.score.bot) == (stored[1].score_player / 10, stored[1].score_bot / 10)
        assert second.next is not None and second.next.round == 3
        assert await service.move(game.game_id, 1, "rock") == first

    run(scenario())


def test_a_move_queued_behind_a_failed_write_does_not_run_ahead(clock: Clock) -> None:
    storage = FakeStorage()
    storage.yield_in_writes = True
    service = GameService(storage)

    async def scenario() -> tuple[list[object], int]:
        game = await service.start("logan", None, None)
        storage.failing = True
        outcomes = await asyncio.gather(
            service.move(game.game_id, 1, "rock"), service.move(game.game_id, 1, "paper"), return_exceptions=True
        )
        storage.failing = False
        resumed = await service.resume(game.game_id, game.token or "")
        assert resumed.next == game.next and resumed.history == []
        result = await service.move(game.game_id, 1, "paper")
        assert result.next is not None and result.next.round == 2
        return list(outcomes), len(storage.games[game.game_id].rounds)

    outcomes, stored = run(scenario())
    assert isinstance(outcomes[0], StorageUnavailable)
    # The second move waited for the game's lock; it must not play on the engine state the failed write left:
    # it reads the game afresh, which fails while the database is down.
    assert isinstance(outcomes[1], StorageUnavailable)
    assert stored == 1


def test_failed_start_leaves_no_game() -> None:
    storage = FakeStorage()
    storage.failing = True
    service = GameService(storage)
    with pytest.raises(StorageUnavailable):
        run(service.start("brian", "Ann", None))
    assert service.live == {} and storage.games == {}


# -- memory: sweep and rebuild ------------------------------------------------------------------


def test_sweep_drops_idle_games_deletes_unplayed_ones_and_marks_abandoned_ones(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage, idle=300.0)
    start = clock.now

    async def scenario() -> list[Swept]:
        played = await service.start("brian", None, None)
        await service.move(played.game_id, 1, "rock")
        unplayed = await service.start("forrest", None, None)
        busy = await service.start("logan", None, None)
        done = await service.start("logan", None, None)
        await play_to_end(service, done)
        assert set(service.live) == {played.game_id, unplayed.game_id, busy.game_id}  # finished games leave memory
        clock.now = start + 200
        await service.move(busy.game_id, 1, "rock")

        swept = [await service.sweep(start + 299)]  # nobody is idle long enough yet
        assert set(service.live) == {played.game_id, unplayed.game_id, busy.game_id}

        swept.append(await service.sweep(start + 301))
        assert set(service.live) == {busy.game_id}
        assert set(storage.games) == {played.game_id, busy.game_id, done.game_id}  # the unplayed game is gone
        await expect_error("unknown_game", service.resume(unplayed.game_id, unplayed.token or ""))
        await expect_error("unknown_game", service.move(unplayed.game_id, 1, "rock"))

        resumed = await service.resume(played.game_id, played.token or "")  # evicted: reloaded whole
        first = resumed.history[0]
        assert resumed.next is not None and first.next is not None and resumed.next.commit == first.next.commit
        clock.now = start + 400
        await service.move(played.game_id, 2, "paper")

        swept.append(await service.sweep(start + 200 + ABANDON_AFTER + 1))
        assert service.live == {}
        flags = {game_id: g.abandoned for game_id, g in storage.games.items()}
        assert flags == {played.game_id: False, busy.game_id: True, done.game_id: False}
        again = await service.resume(busy.game_id, busy.token or "")  # an abandoned game can still be resumed
        assert len(again.history) == 1
        return swept

    assert run(scenario()) == [Swept(0, 0, 0), Swept(1, 1, 0), Swept(2, 0, 1)]


def test_sweep_with_storage_down_raises_unavailable(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage)
    run(service.start("brian", None, None))
    storage.failing = True
    with pytest.raises(StorageUnavailable):
        run(service.sweep(clock.now + ABANDON_AFTER + 1))


def test_game_is_rebuilt_identically_from_its_record(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage)

    async def scenario() -> tuple[GameMessage, GameMessage, GameMessage, list[Result], list[Result]]:
        game = await service.start("brian", "Ann", None)
        token = game.token or ""
        played = []
        for n, move in enumerate(("rock", "rock", "paper", "scissors", "rock"), start=1):
            clock.now += 1
            result = await service.move(game.game_id, n, move)
            played.append(result)
            if result.over:
                break
        before = await service.resume(game.game_id, token)
        held = service.live[game.game_id]
        service.live.clear()
        rebuilt = await service.resume(game.game_id, token)
        assert service.live[game.game_id] is not held
        assert service.live[game.game_id].game.rounds == held.game.rounds
        assert service.live[game.game_id].record == held.record

        restarted = GameService(storage)  # another process on the same database
        again = await restarted.resume(game.game_id, token)
        retries = [await restarted.move(game.game_id, r.round, r.player_move) for r in played]
        return before, rebuilt, again, played, retries

    before, rebuilt, again, played, retries = run(scenario())
    assert rebuilt == before and again == before
    assert before.history == played
    assert retries == played


VERSIONS = {"Production": "v1", "B": "v2", "shadow1": "v3", "shadow2": "v4"}


class FakePredictors:
    """The Predictors protocol with fixed answers; records every call (family, version or alias, rows)."""

    def __init__(self, failing_shadows: bool = False, nan_versions: frozenset[str] = frozenset()) -> None:
        self.shadow_calls: list[tuple[str, str, int]] = []
        self.predict_calls: list[tuple[str, str, int]] = []
        self.failing_shadows = failing_shadows
        self.nan_versions = nan_versions  # versions that answer NaN

    def serving(self, family: str, alias: str) -> str | None:
        return VERSIONS[alias]

    def pin(self, family: str, version: str) -> object | None:
        return version

    def preload(self, family: str, version: str) -> object | None:
        return version

    def predict(self, family: str, version: str, x: np.ndarray) -> np.ndarray | None:
        self.predict_calls.append((family, version, len(x)))
        return np.tile(self._row(version, [0.5, 0.3, 0.2]), (len(x), 1))

    def shadows(self, family: str, alias: str, x: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        self.shadow_calls.append((family, alias, len(x)))
        if self.failing_shadows:
            raise RuntimeError("the shadow model crashed")
        return {a: (v, np.tile(self._row(v, [0.2, 0.3, 0.5]), (len(x), 1))) for a, v in VERSIONS.items() if a != alias}

    def _row(self, version: str, probs: list[float]) -> np.ndarray:
        return np.array([np.nan, 0.5, 0.5] if version in self.nan_versions else probs, dtype=np.float32)


def _is_predictors(predictors: FakePredictors) -> Predictors:
    return predictors  # mypy checks here that the fake implements the protocol


def test_rounds_decided_in_one_turn_are_predicted_in_one_batch_and_stored_with_their_shadows(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=0.0)  # every game on Production

    async def scenario() -> list[str]:
        ids = [(await service.start("brian", None, None)).game_id for _ in range(3)]
        for n in range(1, 5):
            # the three games' moves of round n arrive together, as from three connections in one turn
            await asyncio.gather(*(service.move(g, n, "rock") for g in ids))
            await asyncio.sleep(0)  # the turn ends: the batch runs
        await asyncio.sleep(2 * SHADOW_LINGER)  # round 5's shadows, which no move asked for yet
        return ids

    ids = run(scenario())
    # round 3's moves decide round 4 (the first with a model): one batch of 3 rows; round 4's decide round 5
    assert predictors.predict_calls == [("mlp", "v1", 3), ("mlp", "v1", 3)]
    assert predictors.shadow_calls == [("mlp", "Production", 3), ("mlp", "Production", 3)]
    for g in ids:
        fourth = storage.games[g].rounds[3].decision
        assert set(fourth.models) == set(VERSIONS)
        assert fourth.models["Production"].probs == pytest.approx((0.5, 0.3, 0.2))
        assert fourth.models["shadow2"].version == "v4"
        assert fourth.models["shadow2"].probs == pytest.approx((0.2, 0.3, 0.5))
        assert all(not r.decision.models for r in storage.games[g].rounds[:3])


def test_while_model_calls_gather_several_rounds_the_next_waits_for_more(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(games_module, "SERVE_GAP", 0.2)
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=0.0)

    async def scenario() -> None:
        ids = [(await service.start("brian", None, None)).game_id for _ in range(3)]
        for n in range(1, 4):  # round 3's moves decide round 4 in one call of three rows
            await asyncio.gather(*(service.move(g, n, "rock") for g in ids))
        moves = []
        for g in ids:  # round 4's moves come one a turn: they wait for one another
            moves.append(asyncio.ensure_future(service.move(g, 4, "rock")))
            await asyncio.sleep(0.01)
        await asyncio.gather(*moves)

    run(scenario())
    assert predictors.predict_calls == [("mlp", "v1", 3), ("mlp", "v1", 3)]


def test_shadows_of_rounds_decided_in_separate_turns_wait_to_be_predicted_together(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=0.0)

    async def scenario() -> list[str]:
        ids = [(await service.start("brian", None, None)).game_id for _ in range(3)]
        for n in range(1, 4):
            clock.now += 2.5  # a person's pace: seconds between rounds
            for g in ids:  # one move a turn
                await service.move(g, n, "rock")
                await asyncio.sleep(0)
        assert predictors.shadow_calls == []  # round 4's shadows linger: no player waits for them
        await asyncio.sleep(2 * SHADOW_LINGER)
        for g in ids:  # round 4 is stored with its shadows (round 5's linger when the scenario ends)
            clock.now += 2.5
            await service.move(g, 4, "rock")
        return ids

    ids = run(scenario())
    assert predictors.predict_calls == [("mlp", "v1", 1)] * 6  # each move's own prediction was not delayed
    assert predictors.shadow_calls == [("mlp", "Production", 3)]
    assert all(set(storage.games[g].rounds[3].decision.models) == set(VERSIONS) for g in ids)


def test_a_quick_players_shadows_are_predicted_after_the_answer_not_before_the_next_move(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=0.0)

    async def scenario() -> None:
        game = await service.start("brian", None, None)
        for n in range(1, 4):  # moves in quick succession
            await service.move(game.game_id, n, "rock")
        await asyncio.sleep(0)  # the turn that answered round 3 ends
        assert predictors.shadow_calls == [("mlp", "Production", 1)]  # round 4's, without waiting SHADOW_LINGER

    run(scenario())


def test_a_move_right_after_the_previous_one_still_stores_its_shadows(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=1.0)  # every game on B

    async def scenario() -> str:
        game = await service.start("forrest", None, None)
        for n in range(1, 6):  # no turn ends between these moves
            await service.move(game.game_id, n, "paper")
        return game.game_id

    game_id = run(scenario())
    for r in storage.games[game_id].rounds[3:5]:
        assert set(r.decision.models) == set(VERSIONS) and r.decision.models["B"].version == "v2"


async def _six_rounds(service: GameService, opponent: str, move: str) -> list[Result]:
    """Start a game against `opponent` and play `move` in its first six rounds, a loop turn after each."""
    game = await service.start(opponent, None, None)
    results = []
    for n in range(1, 7):
        results.append(await service.move(game.game_id, n, move))
        await asyncio.sleep(0)
    return results


def test_failing_shadows_lose_only_the_shadows(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors(failing_shadows=True)
    service = GameService(storage, predictors, ab_split=0.0)

    async def scenario() -> list[Result]:
        results = await _six_rounds(service, "logan", "scissors")
        await asyncio.sleep(2 * SHADOW_LINGER)
        return results

    results = run(scenario())
    assert [r.round for r in results] == [1, 2, 3, 4, 5, 6] and len(predictors.shadow_calls) == 4
    stored = next(iter(storage.games.values())).rounds
    assert [set(r.decision.models) for r in stored[3:]] == [{"Production"}] * 3


def test_a_model_answering_nan_leaves_its_rounds_to_the_online_predictor_and_play_goes_on(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors(nan_versions=frozenset({"v1", "v3"}))
    service = GameService(storage, predictors, ab_split=0.0)  # Production (v1) answers NaN, and so does shadow1

    results = run(_six_rounds(service, "brian", "rock"))
    assert [r.round for r in results] == [1, 2, 3, 4, 5, 6]
    stored = next(iter(storage.games.values())).rounds
    for r in stored[3:]:  # from round 4: no NaN anywhere, the two sound shadows kept
        assert r.decision.source != "model" and set(r.decision.models) == {"B", "shadow2"}
        assert all(np.isfinite(r.decision.probs)) and all(np.isfinite(r.decision.ev))


def test_two_processes_on_one_database_never_fork_a_game(database: Database) -> None:
    """Two game services (two worker processes, or two replicas) share one database; the player's connections go
    to either."""

    async def scenario() -> None:
        a_storage, b_storage = await open_storage(database), await open_storage(database)
        a, b = GameService(a_storage), GameService(b_storage)
        try:
            game = await a.start("brian", None, None)
            token = game.token or ""
            for n in (1, 2, 3):
                await a.move(game.game_id, n, "rock")
            # the player reconnects, lands on b and plays on
            assert len((await b.resume(game.game_id, token)).history) == 3
            fourth = await b.move(game.game_id, 4, "paper")
            fifth = await b.move(game.game_id, 5, "paper")
            # a still holds its own copy, from before round 4: resuming there reads the game afresh
            resumed = await a.resume(game.game_id, token)
            assert len(resumed.history) == 5 and resumed.history[3:] == [fourth, fifth] and resumed.next is not None
            sixth = await a.move(game.game_id, 6, "rock")
            assert resumed.next.commit == commitment(game.game_id, 6, MOVE_INDEX[sixth.bot_move], sixth.nonce)
            # b's copy is the stale one now: a move there (a retry from another tab) gets what a stored
            assert await b.move(game.game_id, 6, "paper") == sixth
            stored = await a_storage.load_game(game.game_id)
            assert stored is not None and [r.decision.round for r in stored.rounds] == [1, 2, 3, 4, 5, 6]
            assert MOVES[stored.rounds[5].player_move] == "rock"
        finally:
            await a_storage.close()
            await b_storage.close()

    run(scenario())


# -- a returning player -----------------------------------------------------------------------------


def test_a_returning_player_meets_a_bot_that_remembers_their_games(clock: Clock, tmp_path: Any) -> None:
    """The key's finished games seed the bot (also after a rebuild); another key, or none, starts afresh;
    forgetting unlinks them. On a real SQLite database: the memory is read with the storage's own query."""
    key = "returning-player-key-0123"

    async def scenario() -> dict[str, Any]:
        storage = await open_storage(tmp_path / "rpsquest.db")
        service = GameService(storage, ab_split=0.0)
        rounds = 0
        for _ in range(3):
            game = await service.start("brian", None, None, key)
            rounds += len(await play_to_end(service, game))
            clock.now += 60.0
        unfinished = await service.start("brian", None, None, key)  # not finished: not remembered
        await service.move(unfinished.game_id, 1, "rock")
        clock.now += 60.0
        back = await service.start("brian", None, None, key)
        counts = service.live[back.game_id].bot.predictor.frequency.table[None]
        resumed = await service.resume(back.game_id, back.token or "")
        stranger = await service.start("brian", None, None, "another-player-key-4567")
        anonymous = await service.start("brian", None, None)
        forgotten = await storage.forget(key_hash(key))
        clock.now += 60.0
        after = await service.start("brian", None, None, key)
        await storage.close()
        return {
            "rounds": rounds, "back": back, "counts": counts, "resumed": resumed, "stranger": stranger,
            "anonymous": anonymous, "forgotten": forgotten, "after": after,
        }  # fmt: skip

    seen = run(scenario())
    assert seen["back"].remembered == 3 and seen["resumed"].remembered == 3
    assert sum(seen["counts"]) == pytest.approx(min(MEMORY_ROUNDS, seen["rounds"]))
    assert seen["stranger"].remembered == 0 and seen["anonymous"].remembered is None
    assert seen["forgotten"] == 5 and seen["after"].remembered == 0  # 3 finished, 1 unfinished and `back`
    assert "remembered" not in msgspec.json.decode(msgspec.json.encode(seen["anonymous"]))
