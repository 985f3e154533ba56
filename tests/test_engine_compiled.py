"""The mypyc-compiled engine (engine/_compiled/, built by `make install`) plays bit for bit as the pure-Python one.

Each engine runs in a subprocess of its own (the choice is made when `engine` is imported): this file, run as a
script, plays seeded games and prints every decision, prediction and feature vector, floats in hex.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GAMES = 60


def trace() -> dict[str, object]:
    """Seeded games of varied players through the bot, the features and the policy, every figure exact."""
    import numpy as np

    import engine
    from engine import rules
    from engine.bot import Bot
    from engine.features import FIRST_MODEL_ROUND, FeatureTracker, features
    from engine.policy import decide, equilibrium, mixed_strategy, payoff_matrix
    from engine.predictor import OnlinePredictor
    from engine.rules import Game, Round

    def exact(xs: object) -> list[str]:
        return [float(x).hex() for x in np.asarray(xs, dtype=np.float64).ravel()]

    rng = random.Random(2026)
    rows: list[object] = []
    finished: list[list[Round]] = []
    for g in range(GAMES):
        habit = g % 4  # 0 random, 1 cycles, 2 stays after a win, 3 favours paper
        memory = finished[-3:] if g % 3 == 0 else []
        game, bot, tracker = Game(f"trace-{g}"), Bot(memory=memory), FeatureTracker()
        models: list[tuple[float, float, float] | None] = []
        while (number := game.next_round) is not None:
            values = game.values(number)
            vector, raw = tracker.vector(values), tracker.raw(values)
            model = None
            if number >= FIRST_MODEL_ROUND and g % 5:
                w = [rng.random() + 0.01 for _ in range(3)]
                model = (w[0] / sum(w), w[1] / sum(w), w[2] / sum(w))
            predicted = bot.predictor.predict(values, model)
            choice = bot.choose(game, rng, model)
            last = game.rounds[-1] if game.rounds else None
            if habit == 1 and last is not None:
                move = (last.player + 1) % 3
            elif habit == 2 and last is not None and last.outcome == rules.WIN:
                move = last.player
            elif habit == 3 and rng.random() < 0.5:
                move = 1
            else:
                move = rng.randrange(3)
            played = game.play(move, choice.move)
            bot.observe(played, model)
            tracker.add(played)
            models.append(model)
            rows.append(
                [
                    choice.move,
                    choice.source,
                    exact(choice.probs),
                    exact(choice.expected),
                    exact(predicted),
                    vector.tobytes().hex(),
                    raw.hex(),
                    [played.score_player, played.score_bot, played.outcome, *played.points],
                ]
            )
        # A game rebuilt from its history (as after a restart) predicts as the one that played it.
        replayed = Bot(game.rounds[:-1], models[:-1], memory)
        rows.append(exact(replayed.predictor.predict(game.rounds[-1].values, models[-1])))
        rows.append(features(game.rounds[:-1], game.rounds[-1].values).tobytes().hex())
        rows.append(exact(OnlinePredictor(game.rounds).predict(game.values(1))))
        finished.append(game.rounds)
    for values in sorted({rules.round_values(f"kinds-{i}", 1) for i in range(200)}):
        for score_player, score_bot in ((0, 0), (85, 95), (95, 95), (99, 80), (90, 0)):
            a = payoff_matrix(values, score_player, score_bot)
            guess = np.array([0.5, 0.3, 0.2])
            for guard in (False, True):
                decision = decide(guess, values, score_player, score_bot, random.Random(score_bot), guard)
                rows.append([exact(a), exact(equilibrium(a)), exact(mixed_strategy(a, guess, guard)), decision.move])
                rows.append([exact(decision.expected), exact(decision.strategy)])
    return {"engine": engine.ENGINE, "rules": str(rules.__file__), "rows": rows}


def _run(pythonpath: Path, pure: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "RPSQUEST_PURE_ENGINE": "1" if pure else "0"}
    out = subprocess.run(
        [sys.executable, str(Path(__file__))], cwd=pythonpath, env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _compiled_or_skip() -> None:
    """Skip unless engine/_compiled/ holds a build of these sources (`make test` builds it first)."""
    import engine

    built = engine.COMPILED_DIR / "SOURCES"
    if not built.exists():
        pytest.skip("the engine is not compiled here (make install builds it)")
    if built.read_text().strip() != engine.sources_digest():
        pytest.skip("the compiled engine is of other sources (make install rebuilds it)")


def test_compiled_engine_plays_bit_for_bit_as_the_pure_one() -> None:
    _compiled_or_skip()
    compiled, pure = _run(ROOT, pure=False), _run(ROOT, pure=True)
    assert str(compiled["engine"]).startswith("compiled with mypyc"), compiled["engine"]
    assert str(compiled["rules"]).endswith(".so")
    assert pure["engine"] == "pure Python (RPSQUEST_PURE_ENGINE=1)"
    assert str(pure["rules"]).endswith("rules.py")
    rows, expected = compiled["rows"], pure["rows"]
    assert isinstance(rows, list) and isinstance(expected, list) and len(expected) > GAMES * 10
    for i, (c, p) in enumerate(zip(rows, expected, strict=True)):
        assert c == p, f"row {i} differs"


def test_a_build_of_other_sources_is_not_used(tmp_path: Path) -> None:
    _compiled_or_skip()
    shutil.copytree(ROOT / "engine", tmp_path / "engine")
    policy = tmp_path / "engine" / "policy.py"
    policy.write_text(policy.read_text() + "\nEDITED = True  # a source the build was not made from\n")
    edited = _run(tmp_path, pure=False)
    assert str(edited["engine"]).startswith("pure Python (the compiled build is of other sources"), edited["engine"]
    assert str(edited["rules"]).endswith("rules.py")


if __name__ == "__main__":
    print(json.dumps(trace()))
