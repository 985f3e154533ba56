"""POST /api/predict: what the bot would predict and play after any history (admin)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import numpy as np

from engine.bot import Bot
from engine.features import FeatureTracker
from engine.openings import OPENING_ROUNDS, OPENINGS
from engine.policy import decide
from engine.rules import MOVE_INDEX, MOVES, Round, Values, points
from inference.pool import ModelPool
from server.entropy import Entropy
from server.games import ONLINE_VERSION

MoveName = Literal["rock", "paper", "scissors"]
_rng = Entropy()


class MoveValues(msgspec.Struct, forbid_unknown_fields=True):
    rock: Annotated[float, msgspec.Meta(ge=1.0, le=2.0)]
    paper: Annotated[float, msgspec.Meta(ge=1.0, le=2.0)]
    scissors: Annotated[float, msgspec.Meta(ge=1.0, le=2.0)]

    def tenths(self) -> Values:
        return (round(self.rock * 10), round(self.paper * 10), round(self.scissors * 10))


class PastRound(msgspec.Struct, forbid_unknown_fields=True):
    player: MoveName
    bot: MoveName
    values: MoveValues | None = None


class ScorePair(msgspec.Struct, forbid_unknown_fields=True):
    player: Annotated[float, msgspec.Meta(ge=0.0, le=30.0)]
    bot: Annotated[float, msgspec.Meta(ge=0.0, le=30.0)]


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    family: Literal["mlp", "xgboost", "logistic"]
    history: Annotated[list[PastRound], msgspec.Meta(max_length=300)]
    alias: Literal["Production", "B", "shadow1", "shadow2"] = "Production"
    values: MoveValues | None = None
    score: ScorePair | None = None


_DEFAULT: Values = (10, 10, 10)
decode_request = msgspec.json.Decoder(PredictRequest).decode


def predict(pool: ModelPool, request: PredictRequest) -> dict[str, object]:
    """The blended prediction and the bot's move for the round after `request.history`."""
    rounds: list[Round] = []
    score_player = score_bot = 0
    for number, past in enumerate(request.history, start=1):
        values = past.values.tenths() if past.values else _DEFAULT
        player, bot = MOVE_INDEX[past.player], MOVE_INDEX[past.bot]
        gained = points(values, player, bot)
        score_player, score_bot = score_player + gained[0], score_bot + gained[1]
        rounds.append(Round(number, values, player, bot, score_player, score_bot))
    if request.score is not None:
        score_player, score_bot = round(request.score.player * 10), round(request.score.bot * 10)
    values = request.values.tenths() if request.values else _DEFAULT
    model = pool.routes.get(request.family, {}).get(request.alias)
    tracker = FeatureTracker()
    brain = Bot(OPENINGS[0])
    for played in rounds:
        prediction = None
        if model is not None and played.number > OPENING_ROUNDS:
            prediction = model.predict(tracker.vector(played.values)[None])[0]
        brain.observe(played, prediction)
        tracker.add(played)
    tracker.score_player, tracker.score_bot = score_player, score_bot  # a given score overrides the rebuilt one
    model_probs = model.predict(tracker.vector(values)[None])[0] if model is not None else None
    probs = brain.predictor.predict(values, model_probs)
    decision = decide(np.asarray(probs), values, score_player, score_bot, _rng)
    return {
        "probs": {MOVES[m]: round(float(probs[m]), 6) for m in range(3)},
        "model_probs": None if model_probs is None else {MOVES[m]: round(float(model_probs[m]), 6) for m in range(3)},
        "ev": {MOVES[m]: round(decision.expected[m], 6) for m in range(3)},
        "strategy": {MOVES[m]: round(decision.strategy[m], 6) for m in range(3)},
        "bot_move": MOVES[decision.move],
        "version": model.version if model is not None else ONLINE_VERSION,
    }
