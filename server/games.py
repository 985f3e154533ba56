"""The game service: starts, resumes and plays games, writing every round before answering.

Live games are kept in memory (engine state plus the bot's brain) and rebuilt from
storage on demand, so a game resumes after a restart with the same history and the
same commitment for its open round. Memory holds open games only, at most `max_live` of
them: a game leaves it when it ends or has had no move for `idle` seconds (nothing is
lost: the next resume or move reloads it), and a game in which no round was played by
then is deleted. A live game holds its model version, so the pool keeps it loaded while
the game is live and can release it afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec
import numpy as np

from engine.bot import Bot
from engine.fairplay import NONCE_BYTES, commitment
from engine.features import FIRST_MODEL_ROUND, N_FEATURES, FeatureTracker
from engine.opponents import OPPONENT_BY_ID, SERVING_ALIASES
from engine.policy import Triple
from engine.rules import MOVES, OUTCOMES, TARGET, Game, Round, outcome, points, round_values, winner
from server import metrics
from server.entropy import Entropy
from server.messages import GameMessage, OpenRound, Result, Score, Values
from storage import (
    Decision,
    GameRecord,
    ModelPrediction,
    RoundRecord,
    Storage,
    StorageConflict,
    prediction_counts,
)
from storage.ids import GameIds
from storage.pace import Pace

T = TypeVar("T")
log = logging.getLogger("rpsquest")
ONLINE_VERSION = "online-1"
POLICY_OPENING = "policy"  # how rounds 1-3 are played (games before it name a scripted opening: docs/bot.md)
ABANDON_AFTER = 30 * 60.0
MEMORY_GAMES = 10  # a returning player's last finished games the bot starts from
TOO_MANY_GAMES = "too_many_games"
SHADOW_LINGER = 0.05  # seconds the shadows' predictions wait to be batched with more
SERVE_GAP = 0.002  # seconds from one call of the served models to the next while calls gather several rounds
_rng = Entropy()
_ids = GameIds()  # time-ordered game ids (storage/ids.py)


class GameError(Exception):
    """A request the protocol refuses; `code` is one of protocol.md's error codes."""

    def __init__(self, code: str, message: str, game_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.game_id = game_id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_hash(key: str) -> str:
    """What is stored of a returning player's key: its SHA-256 (the key is random, so unguessable)."""
    return hashlib.sha256(b"rpsquest-player-key:" + key.encode()).hexdigest()


def _tenths(value: int) -> float:
    return value / 10.0


def _values(values: tuple[int, int, int]) -> Values:
    return Values(_tenths(values[0]), _tenths(values[1]), _tenths(values[2]))


class Predictors(Protocol):
    """The trained models, by family and alias (the inference pool, or a fake in unit tests)."""

    def serving(self, family: str, alias: str) -> str | None:
        """The version `alias` of `family` serves now, or None when it has none."""
        ...

    def pin(self, family: str, version: str) -> object | None:
        """A handle on a loaded version that keeps it loaded while held; None when it is not loaded (never loads)."""
        ...

    def preload(self, family: str, version: str) -> object | None:
        """Load a version ahead of its use (blocking: call it off the event loop) and return its handle, as
        `pin`; None when it cannot serve (then it is not tried again before the models are next reloaded)."""
        ...

    def predict(self, family: str, version: str, x: np.ndarray) -> np.ndarray | None:
        """A version's probabilities (n, 3) for the feature rows `x` (n, 50), or None when it cannot serve."""
        ...

    def shadows(self, family: str, alias: str, x: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        """(version, probabilities (n, 3)) of every other alias of `family` for the rows `x` (n, 50)."""
        ...


@dataclass(frozen=True)
class Swept:
    """What one sweep did: played games dropped from memory, unplayed games deleted, games marked abandoned."""

    evicted: int
    expired: int
    abandoned: int


@dataclass
class LiveGame:
    """A game in play: its record, the engine's view of it, its features and the bot's brain."""

    record: GameRecord
    game: Game
    bot: Bot
    tracker: FeatureTracker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stale: bool = False  # set when a write failed after the engine moved on: reload before use
    model: object | None = None  # the game's model version, held so that it stays loaded while the game is live
    shadows_due: bool = False  # the open round waits in the shadow batch
    remembered: int = 0  # the returning player's past games the bot started from

    @classmethod
    def from_record(cls, record: GameRecord, memory: Sequence[Sequence[Round]] = ()) -> LiveGame:
        """The game of `record`; `memory` is its player's past games (oldest first) when they have a key."""
        game = Game(record.id)
        for r in record.rounds:
            game.play(r.player_move, r.decision.bot_move)
        served = [r.decision.models.get(record.alias) for r in record.rounds]
        models = [None if m is None else m.probs for m in served]
        bot = Bot(game.rounds, models, memory)
        return cls(record, game, bot, FeatureTracker(game.rounds), remembered=len(memory))

    def message(self, token: str | None = None) -> GameMessage:
        """The `game` message, with how many past games the bot remembers when the player has a key."""
        message = game_message(self.record, token)
        if self.record.key_hash is not None:
            message.remembered = self.remembered
        return message

    def play(self, move: int, decision: Decision) -> Round:
        """Play the open round on the engine, the bot and the features."""
        played = self.game.play(move, decision.bot_move)
        served = decision.models.get(self.record.alias)
        self.bot.observe(played, None if served is None else served.probs)
        self.tracker.add(played)
        return played


class PredictionBatch:
    """Model predictions, batched: what every game asks for is predicted with one ONNX Runtime call per
    version (a batch costs little more than one row).

    The served versions, for the rounds being decided, are predicted at the end of the event-loop turn that asked
    (their moves wait for it), at once when nothing else waits to run in that turn, or SERVE_GAP after the last
    call while calls gather several rounds (storage/pace.py). The shadows, the family's other aliases, for the
    rounds just decided, wait SHADOW_LINGER seconds for more (less when a move of their game comes first): they
    add no latency to a player's round and never change play, and at human pace one call then serves many rounds.
    A game whose last move came sooner than that has its shadows predicted at the end of the turn instead, after
    the answers were sent, so that its next move does not wait for them. They join the open round's decision
    (`record.pending`) in memory and are stored with the played round; a game loaded without them (after a
    restart, or from another process) has them predicted again from the decision's stored features. A failure
    leaves that round to the online predictor, or loses its shadows: play goes on.
    """

    def __init__(self, predictors: Predictors) -> None:
        self.predictors = predictors
        self._served: list[tuple[str, str, bytes, asyncio.Future[Triple | None]]] = []
        self._shadows: list[tuple[LiveGame, int, bytes]] = []
        self._linger: asyncio.TimerHandle | None = None  # the shadows' flush, when only shadows wait
        self._soon = False  # a flush at the end of this turn is scheduled
        self._pace = Pace(SERVE_GAP)  # when the served rounds' call runs (storage/pace.py)

    async def serve(self, family: str, version: str, features: bytes) -> Triple | None:
        """`version`'s prediction for one feature vector (its float32 bytes), or None when it cannot serve."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Triple | None] = loop.create_future()
        self._served.append((family, version, features, future))
        if len(self._served) == 1:  # the first request since the last call schedules the next
            self._pace.schedule(loop, self._flush_served)
        return await future

    def add_shadows(self, live: LiveGame, decision: Decision, soon: bool = False) -> None:
        """Have the other aliases predict the round `decision` (the game's open round) opens; `soon`: at the
        end of this turn, for a player whose next move may come before SHADOW_LINGER is over."""
        live.shadows_due = True
        loop = asyncio.get_running_loop()
        if soon and not self._soon:
            self._soon = True
            loop.call_soon(self.flush)
        elif self._linger is None:
            self._linger = loop.call_later(SHADOW_LINGER, self.flush)
        self._shadows.append((live, decision.round, decision.features))

    def flush(self) -> None:
        """Predict everything that waits: the served rounds, then the shadows."""
        self._soon = False
        self._flush_served()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._flush_shadows()

    def _flush_served(self) -> None:
        served, self._served = self._served, []
        if not served:  # flushed earlier, with the shadows
            return
        self._pace.ran(asyncio.get_running_loop().time(), len(served))
        for (family, version), asked in _grouped(served, lambda s: (s[0], s[1])).items():
            try:
                probs = self.predictors.predict(family, version, _rows([s[2] for s in asked]))
            except Exception:
                log.exception("%s %s failed to predict; the online predictor plays these rounds", family, version)
                probs = None
            answers = [None] * len(asked) if probs is None else _finite(family, version, probs)
            for answer, (_, _, _, future) in zip(answers, asked, strict=True):
                if not future.done():  # a move whose connection went away is cancelled
                    future.set_result(answer)

    def _flush_shadows(self) -> None:
        shadows, self._shadows = self._shadows, []
        for (family, alias), items in _grouped(shadows, lambda s: (s[0].record.family, s[0].record.alias)).items():
            for live, _, _ in items:
                live.shadows_due = False
            try:
                out = self.predictors.shadows(family, alias, _rows([x for _, _, x in items]))
            except Exception:
                log.exception("shadow predictions failed for %s; play goes on without them", family)
                continue
            rows = {a: (v, _finite(family, v, p)) for a, (v, p) in out.items()}
            for row, (live, number, _) in enumerate(items):
                pending = live.record.pending
                if out and pending is not None and pending.round == number:
                    models = {a: ModelPrediction(v, r) for a, (v, p) in rows.items() if (r := p[row]) is not None}
                    live.record.pending = msgspec.structs.replace(pending, models={**models, **pending.models})


def _rows(features: list[bytes]) -> np.ndarray:
    """Feature vectors' float32 bytes as the rows of one (n, 50) array, for one model call."""
    return np.frombuffer(b"".join(features), dtype=np.float32).reshape(len(features), N_FEATURES)


def _finite(family: str, version: str, probs: np.ndarray) -> list[Triple | None]:
    """The rows of a batch's `probs` (n, 3) as Python floats, checked in one call for the batch: a row holding
    NaN or infinity is logged and None, as a model that answers so for some input does not predict that round
    (the online predictor plays it, or it has one shadow fewer)."""
    rows: list[Triple | None] = [(a, b, c) for a, b, c in probs.tolist()]
    if not np.isfinite(probs).all():
        for row, ok in enumerate(np.isfinite(probs).all(axis=1).tolist()):
            if not ok:
                log.warning("%s %s predicted %s: not used", family, version, rows[row])
                rows[row] = None
    return rows


def _shadows_missing(record: GameRecord, decision: Decision) -> bool:
    """True when the open round is one the other aliases predict and no other alias's prediction is stored."""
    return decision.round >= FIRST_MODEL_ROUND and not set(decision.models) - {record.alias}


def _grouped(items: list[T], key: Callable[[T], tuple[str, str]]) -> dict[tuple[str, str], list[T]]:
    """`items` by `key`, in order: the requests one ONNX Runtime call answers together."""
    groups: dict[tuple[str, str], list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _decision(live: LiveGame, features: bytes, served: Triple | None) -> Decision:
    """The bot's committed choice for the open round of `live` (its `features`' bytes), with the
    prediction of the game's own model version when it served one."""
    game, record = live.game, live.record
    number = game.next_round
    assert number is not None
    models = {} if served is None else {record.alias: ModelPrediction(record.version, served)}
    choice = live.bot.choose(game, _rng, served)
    return Decision(
        round=number,
        bot_move=choice.move,
        nonce=_rng.token_hex(NONCE_BYTES),
        source=choice.source,
        probs=choice.probs,
        ev=choice.expected,
        features=features,
        models=models,
    )


def open_round(record: GameRecord, decision: Decision) -> OpenRound:
    game_round = decision.round
    return OpenRound(
        round=game_round,
        values=_values(round_values(record.id, game_round)),
        commit=commitment(record.id, game_round, decision.bot_move, decision.nonce),
    )


def result_message(record: GameRecord, index: int) -> Result:
    """The `result` of round index+1, rebuilt exactly from the record."""
    played = record.rounds[index]
    d = played.decision
    gained = points(played.values, played.player_move, d.bot_move)
    won = winner(played.score_player, played.score_bot)
    insight: dict[str, object] = {
        "family": record.family,
        "source": d.source,
        "probs": {MOVES[m]: round(d.probs[m], 4) for m in range(3)},
        "ev": {MOVES[m]: round(d.ev[m], 4) for m in range(3)},
    }
    if won is not None:
        insight.update(alias=record.alias, version=record.version)
    if index + 1 < len(record.rounds):
        following: Decision | None = record.rounds[index + 1].decision
    else:
        following = record.pending
    return Result(
        game_id=record.id,
        round=d.round,
        player_move=MOVES[played.player_move],
        bot_move=MOVES[d.bot_move],
        outcome=OUTCOMES[outcome(played.player_move, d.bot_move)],
        points=Score(_tenths(gained[0]), _tenths(gained[1])),
        score=Score(_tenths(played.score_player), _tenths(played.score_bot)),
        nonce=d.nonce,
        over=won is not None,
        winner=won,
        insight=insight,
        next=None if following is None or won is not None else open_round(record, following),
    )


def game_message(record: GameRecord, token: str | None = None) -> GameMessage:
    score = (record.rounds[-1].score_player, record.rounds[-1].score_bot) if record.rounds else (0, 0)
    won = winner(*score)
    return GameMessage(
        game_id=record.id,
        opponent=record.opponent,
        target=_tenths(TARGET),
        score=Score(_tenths(score[0]), _tenths(score[1])),
        over=won is not None,
        winner=won,
        history=[result_message(record, i) for i in range(len(record.rounds))],
        next=None if record.pending is None else open_round(record, record.pending),
        token=token,
    )


class GameService:
    """Plays games for every connection of this process."""

    def __init__(
        self,
        storage: Storage,
        predictors: Predictors | None = None,
        ab_split: float = 0.5,
        max_live: int = 20_000,
        idle: float = 300.0,
    ) -> None:
        self.storage = storage
        self.predictors = predictors
        self.ab_split = ab_split
        self.max_live = max_live
        self.idle = idle
        self.live: dict[str, LiveGame] = {}  # open games only
        self._batch = PredictionBatch(predictors) if predictors is not None else None

    async def start(self, opponent_id: str, player: str | None, tag: str | None, key: str | None = None) -> GameMessage:
        """A new game; with a returning player's `key` the bot starts from their last finished games."""
        opponent = OPPONENT_BY_ID.get(opponent_id)
        if opponent is None:
            raise GameError("unknown_opponent", f"no opponent {opponent_id!r}; choose brian, forrest or logan")
        if len(self.live) >= self.max_live:
            metrics.games_refused.labels("server").inc()
            raise GameError(TOO_MANY_GAMES, f"the server holds its limit of {self.max_live} games; try again later")
        now = time.time()
        token = secrets.token_urlsafe(24)
        alias = SERVING_ALIASES[0] if _rng.random() >= self.ab_split else SERVING_ALIASES[1]
        version = self.predictors.serving(opponent.family, alias) if self.predictors else None
        if version is None and alias != SERVING_ALIASES[0] and self.predictors:  # no B between two tests
            alias = SERVING_ALIASES[0]
            version = self.predictors.serving(opponent.family, alias)
        record = GameRecord(
            id=_ids.next(now),
            opponent=opponent.id,
            family=opponent.family,
            alias=alias,
            version=version or ONLINE_VERSION,
            opening=POLICY_OPENING,
            tag=tag or "human",
            player=player,
            token_hash=token_hash(token),
            created=now,
            updated=now,
            key_hash=None if key is None else key_hash(key),
        )
        live = LiveGame.from_record(record, await self._memory(record))
        if self.predictors is not None and version is not None:
            live.model = self.predictors.pin(record.family, version)
        record.pending = await self._decide(live)
        await self.storage.create_game(record)
        self.live[record.id] = live
        return live.message(token)

    async def _memory(self, record: GameRecord) -> list[list[Round]]:
        """The past games of the game's returning player that finished before it started (none without a key)."""
        if record.key_hash is None:
            return []
        return await self.storage.remembered(record.key_hash, record.created, MEMORY_GAMES)

    async def get(self, game_id: str) -> LiveGame | None:
        """The live game, loaded from storage when this process does not hold it.

        A loaded game is kept in memory while it is open and memory holds fewer than `max_live`
        games; otherwise it serves this one request and is read afresh for the next.
        """
        live = self.live.get(game_id)
        if live is None:
            record = await self.storage.load_game(game_id)
            if record is None:
                return None
            model = None
            if self.predictors is not None and record.version != ONLINE_VERSION:
                # A game from before a swap or a restart may need a version the pool has not loaded:
                # load (and check) it off the event loop now; predicting never loads.
                model = await asyncio.to_thread(self.predictors.preload, record.family, record.version)
            live = self.live.get(game_id) or LiveGame.from_record(record, await self._memory(record))
            if record.pending is not None and game_id not in self.live:
                live.model = model
                if len(self.live) < self.max_live:
                    self.live[game_id] = live
                pending = record.pending
                if self._batch is not None and _shadows_missing(record, pending):
                    self._batch.add_shadows(live, pending)  # decided here before a restart, or by another process
        return live

    async def resume(self, game_id: str, token: str) -> GameMessage:
        held = self.live.get(game_id)
        if held is not None and not held.lock.locked():
            del self.live[game_id]  # another worker process may have played it since: read it afresh
        live = await self.get(game_id)
        if live is None:
            raise GameError("unknown_game", "no such game", game_id)
        if not hmac.compare_digest(token_hash(token), live.record.token_hash):
            raise GameError("bad_token", "the token does not open this game", game_id)
        return live.message()

    async def move(self, game_id: str, round_number: int, move: str) -> Result:
        live = await self.get(game_id)
        if live is None:
            raise GameError("unknown_game", "no such game", game_id)
        async with live.lock:
            if live.stale:  # the move before this one left the game changed elsewhere or unsaved: read it afresh
                return await self.move(game_id, round_number, move)
            record = live.record
            if round_number <= len(record.rounds):
                return result_message(record, round_number - 1)
            if record.pending is None:
                raise GameError("game_over", "the game is over", game_id)
            if round_number != record.pending.round:
                raise GameError("wrong_round", f"round {record.pending.round} is open", game_id)
            if live.shadows_due and self._batch is not None:
                self._batch.flush()  # its shadows still linger in the batch: predict them first
            decision = record.pending  # with its shadows' predictions
            played_round = live.play(MOVES.index(move), decision)
            now = time.time()
            played = RoundRecord(
                decision=decision,
                values=played_round.values,
                player_move=played_round.player,
                score_player=played_round.score_player,
                score_bot=played_round.score_bot,
                created=now,
            )
            won = live.game.winner
            next_decision = None if won is not None else await self._decide(live)
            try:
                await self.storage.record_round(msgspec.structs.replace(record, pending=next_decision), played, won)
            except BaseException as exc:
                live.stale = True  # the engine ran ahead of storage: the next access reloads the game
                self.live.pop(game_id, None)
                if isinstance(exc, StorageConflict):  # another process played this round: answer with its result
                    return await self._stored_result(game_id, round_number)
                raise
            record.rounds.append(played)
            record.pending = next_decision
            fast = now - record.updated < SHADOW_LINGER  # this move came quickly: so may the next one
            record.updated = now
            if self._batch is not None and next_decision is not None and next_decision.round >= FIRST_MODEL_ROUND:
                self._batch.add_shadows(live, next_decision, soon=fast)  # also when the game's own model failed
            metrics.tally.add(metrics.rounds, record.opponent, record.tag)
            for family, alias, version, kind, _, correct in prediction_counts(record, played):
                metrics.count_prediction(family, alias, version, kind, correct)
            if won is not None:
                metrics.games_finished.labels(record.opponent, record.tag, won).inc()
                metrics.count_game(record.family, record.alias, record.version, won)
                self.live.pop(game_id, None)
                live.model = None  # a finished game stops holding its version now, not when it is collected
            return result_message(record, round_number - 1)

    async def _decide(self, live: LiveGame) -> Decision:
        """Decide the open round of `live`; from round 4 the game's own model version predicts it."""
        number = live.game.next_round
        assert number is not None
        features = live.tracker.raw(live.game.values(number))
        served = None
        if self._batch is not None and number >= FIRST_MODEL_ROUND and live.record.version != ONLINE_VERSION:
            served = await self._batch.serve(live.record.family, live.record.version, features)
        return _decision(live, features, served)

    async def _stored_result(self, game_id: str, round_number: int) -> Result:
        fresh = await self.get(game_id)
        if fresh is None:  # deleted unplayed while this first move was on its way
            raise GameError("unknown_game", "no such game", game_id)
        if round_number > len(fresh.record.rounds):
            raise GameError("unavailable", "the game could not be saved; resume it to continue", game_id)
        return result_message(fresh.record, round_number - 1)

    async def exists(self, game_id: str) -> bool:
        return game_id in self.live or await self.storage.load_game(game_id) is not None

    async def sweep(self, now: float) -> Swept:
        """Drop games idle for `idle` seconds from memory, delete those of them with no round played (in
        every process's games: the database decides), and mark games idle for ABANDON_AFTER abandoned."""
        cutoff = now - self.idle
        evicted = 0
        for game_id, live in list(self.live.items()):
            if live.record.updated < cutoff and not live.lock.locked():
                del self.live[game_id]
                evicted += bool(live.record.rounds)
        expired = await self.storage.delete_unplayed(cutoff)
        return Swept(evicted, expired, await self.storage.mark_abandoned(now - ABANDON_AFTER))
