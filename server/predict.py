"""POST /api/predict: what the bot would predict and play after any history (admin)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import numpy as np

from engine.bot import Bot
from engine.features import FIRST_MODEL_ROUND, FeatureTracker
from engine.policy import decide
from engine.rules import MAX_ROUNDS, MOVE_INDEX, MOVES, TARGET, Round, Values, points, possible_values, winner
from inference.pool import ModelPool
from server.entropy import Entropy
from server.games import ONLINE_VERSION

MoveName = Literal["rock", "paper", "scissors"]
MAX_BODY = 16_384  # bytes: a whole game's history (19 rounds with values) takes about 2 KiB
_DEFAULT: Values = (10, 10, 10)
_rng = Entropy()


class BadRequest(Exception):
    """A body /api/predict cannot serve; the message says why (answered as 400 bad_request)."""


def _tenths(value: float) -> int:
    """`value` in tenths; ValueError unless it has at most one decimal."""
    if round(value, 1) != value:
        raise ValueError(f"{value} has more than one decimal")
    return round(value * 10)


class MoveValues(msgspec.Struct, forbid_unknown_fields=True):
    rock: float
    paper: float
    scissors: float

    def __post_init__(self) -> None:
        values = (_tenths(self.rock), _tenths(self.paper), _tenths(self.scissors))
        if values != _DEFAULT and not possible_values(values):
            raise ValueError(
                "values break the rules: the low move is 1.0, the move it beats 0.5 more than the third,"
                " which is 1.1-1.5 (or all three 1.0)"
            )

    def tenths(self) -> Values:
        return (_tenths(self.rock), _tenths(self.paper), _tenths(self.scissors))


class PastRound(msgspec.Struct, forbid_unknown_fields=True):
    player: MoveName
    bot: MoveName
    values: MoveValues | None = None


class ScorePair(msgspec.Struct, forbid_unknown_fields=True):
    player: Annotated[float, msgspec.Meta(ge=0.0, lt=TARGET / 10)]
    bot: Annotated[float, msgspec.Meta(ge=0.0, lt=TARGET / 10)]

    def __post_init__(self) -> None:
        for score in (self.player, self.bot):
            _tenths(score)


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    family: Literal["mlp", "xgboost", "logistic"]
    history: Annotated[list[PastRound], msgspec.Meta(max_length=MAX_ROUNDS - 1)]
    alias: Literal["Production", "B", "shadow1", "shadow2"] = "Production"
    values: MoveValues | None = None
    score: ScorePair | None = None

    def __post_init__(self) -> None:
        _replay(self.history)


_decode = msgspec.json.Decoder(PredictRequest).decode


def _replay(history: list[PastRound]) -> list[Round]:
    """The history as played rounds; ValueError when it goes on after the game has ended."""
    rounds: list[Round] = []
    score_player = score_bot = 0
    for number, past in enumerate(history, start=1):
        if winner(score_player, score_bot) is not None:
            raise ValueError(f"the game ended in round {number - 1}: the history cannot go on after it")
        values = past.values.tenths() if past.values else _DEFAULT
        player, bot = MOVE_INDEX[past.player], MOVE_INDEX[past.bot]
        gained = points(values, player, bot)
        score_player, score_bot = score_player + gained[0], score_bot + gained[1]
        rounds.append(Round(number, values, player, bot, score_player, score_bot))
    if winner(score_player, score_bot) is not None:
        raise ValueError(f"the game ended in round {len(rounds)}: there is no round to predict")
    return rounds


def decode_request(body: bytes) -> PredictRequest:
    """The request in `body`, or BadRequest saying what does not fit."""
    try:
        return _decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(str(exc)) from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None


def predict(pool: ModelPool, request: PredictRequest) -> dict[str, object]:
    """The blended prediction and the bot's move for the round after `request.history`."""
    rounds = _replay(request.history)
    score_player, score_bot = (rounds[-1].score_player, rounds[-1].score_bot) if rounds else (0, 0)
    if request.score is not None:
        score_player, score_bot = _tenths(request.score.player), _tenths(request.score.bot)
    values = request.values.tenths() if request.values else _DEFAULT
    model = pool.routes.get(request.family, {}).get(request.alias)
    tracker = FeatureTracker()
    brain = Bot()
    for played in rounds:
        prediction = None
        if model is not None and played.number >= FIRST_MODEL_ROUND:
            prediction = model.predict(tracker.vector(played.values)[None])[0]
        brain.observe(played, prediction)
        tracker.add(played)
    tracker.score_player, tracker.score_bot = score_player, score_bot  # a given score overrides the rebuilt one
    model_probs = model.predict(tracker.vector(values)[None])[0] if model is not None else None
    probs = brain.predictor.predict(values, model_probs)
    decision = decide(np.asarray(probs), values, score_player, score_bot, _rng, brain.guarded)
    return {
        "probs": {MOVES[m]: round(float(probs[m]), 6) for m in range(3)},
        "model_probs": None if model_probs is None else {MOVES[m]: round(float(model_probs[m]), 6) for m in range(3)},
        "ev": {MOVES[m]: round(decision.expected[m], 6) for m in range(3)},
        "strategy": {MOVES[m]: round(decision.strategy[m], 6) for m in range(3)},
        "bot_move": MOVES[decision.move],
        "version": model.version if model is not None else ONLINE_VERSION,
    }
