"""trainer.datasets and trainer.evaluate against mlops.md and protocol.md: recorded-play CSV files, labelled
examples, group and chronological splits, offline evaluation and `python -m trainer evaluate`."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.features import features
from engine.opponents import ALIASES, FAMILIES
from engine.predictor import Priors
from engine.rules import Round, points, round_values
from inference.store import LocalStore, model_key
from storage.lifecycle import Lifecycle
from trainer.cycle import RECORDED_HOLDOUT, recorded_histories, train_cycle
from trainer.datasets import (
    DataError,
    History,
    chronological_split,
    examples,
    fit_priors,
    histories_from_csv,
    split_groups,
)
from trainer.evaluate import evaluate, format_report

ROOT = Path(__file__).resolve().parent.parent
ROCK, PAPER, SCISSORS = 0, 1, 2
CHANCE = 0.36
EVAL_PLAYERS = 8
EVAL_LAST_ROUND = 120  # the first 120 rounds of each player keep the evaluation quick
QUALITY = ("accuracy", "accuracy_4_30", "log_loss", "log_loss_4_30")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- recorded play (CSV) -------------------------------------------------------------------------


def test_csv_without_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "plays.csv",
        "player_id,game_id,round,move,opp_move\n"
        "p1,g1,3,rock,paper\n"
        "p2,g1,1,scissors,scissors\n"
        "p1,g1,1,rock,scissors\n"
        "p1,g1,2,paper,paper\n"
        "p1,g2,1,paper,rock\n",
    )
    histories = {h.key: h for h in histories_from_csv(path)}
    assert set(histories) == {"p1/g1", "p2/g1", "p1/g2"}
    first = histories["p1/g1"]
    assert (first.source, first.player) == ("recorded", "p1")
    # ordered by round; every value 1.0; scores by the rules: win 1.0, draw 0.5 each, loss
    assert first.rounds == [
        Round(1, (10, 10, 10), ROCK, SCISSORS, 10, 0),
        Round(2, (10, 10, 10), PAPER, PAPER, 15, 5),
        Round(3, (10, 10, 10), ROCK, PAPER, 15, 15),
    ]
    assert histories["p2/g1"].rounds == [Round(1, (10, 10, 10), SCISSORS, SCISSORS, 5, 5)]
    assert histories["p1/g2"].rounds == [Round(1, (10, 10, 10), PAPER, ROCK, 10, 0)]


def test_csv_with_values_and_extra_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "plays.csv",
        "dataset,round,player_id,game_id,session,move,opp_move,outcome,rock_value,paper_value,scissors_value\n"
        "demo,1,p1,g1,s1,rock,scissors,win,1.6,1.0,1.1\n"
        "demo,2,p1,g1,s1,paper,paper,draw,1.5,2.0,1.0\n"
        "demo,3,p1,g1,s1,rock,paper,lose,1.0,1.5,2.0\n",
    )
    [history] = histories_from_csv(path)
    assert history.rounds == [
        Round(1, (16, 10, 11), ROCK, SCISSORS, 16, 0),
        Round(2, (15, 20, 10), PAPER, PAPER, 21, 5),
        Round(3, (10, 15, 20), ROCK, PAPER, 21, 20),
    ]


def test_csv_scores_keep_adding_up_past_the_end_of_a_game(tmp_path: Path) -> None:
    rows = "".join(f"p1,g1,{n},paper,rock\n" for n in range(1, 31))
    [history] = histories_from_csv(_write(tmp_path / "long.csv", "player_id,game_id,round,move,opp_move\n" + rows))
    assert len(history.rounds) == 30
    assert (history.rounds[-1].score_player, history.rounds[-1].score_bot) == (300, 0)


def test_csv_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", "player_id,game_id,round,move\np1,g1,1,rock\n")
    with pytest.raises(DataError) as error:
        histories_from_csv(path)
    assert str(path) in str(error.value) and "opp_move" in str(error.value)


@pytest.mark.parametrize(
    "row",
    ["p1,g1,3,lizard,rock", "p1,g1,three,rock,rock", "p1,g1,3,rock,"],
    ids=["bad move", "bad round", "empty move"],
)
def test_csv_bad_row_names_file_and_line(row: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.csv", f"player_id,game_id,round,move,opp_move\np1,g1,1,rock,rock\np1,g1,2,paper,rock\n{row}\n"
    )
    with pytest.raises(DataError, match="cannot read this row") as error:
        histories_from_csv(path)
    assert f"{path}:4:" in str(error.value)


def test_csv_bad_value_names_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.csv",
        "player_id,game_id,round,move,opp_move,rock_value,paper_value,scissors_value\n"
        "p1,g1,1,rock,rock,1.0,1.5,1.1\n"
        "p1,g1,2,rock,rock,1.0,high,1.1\n",
    )
    with pytest.raises(DataError) as error:
        histories_from_csv(path)
    assert f"{path}:3:" in str(error.value)


@pytest.mark.parametrize("row", ["p1,g1,2,rock,paper", "p1,g1,2,rock,paper,inf,1.5,1.1"], ids=["short row", "inf"])
def test_csv_unreadable_value_is_a_data_error(row: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "short.csv",
        "player_id,game_id,round,move,opp_move,rock_value,paper_value,scissors_value\n"
        f"p1,g1,1,rock,rock,1.0,1.5,1.1\n{row}\n",
    )
    with pytest.raises(DataError) as error:
        histories_from_csv(path)
    assert f"{path}:3:" in str(error.value)


def test_csv_missing_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataError) as error:
        histories_from_csv(path)
    assert str(path) in str(error.value)


# -- labelled examples ---------------------------------------------------------------------------


def _history(key: str, source: str, moves: list[tuple[int, int]], start: float = 0.0) -> History:
    rounds: list[Round] = []
    sp = sb = 0
    for n, (player, bot) in enumerate(moves, start=1):
        values = round_values(key, n)
        gained_player, gained_bot = points(values, player, bot)
        sp, sb = sp + gained_player, sb + gained_bot
        rounds.append(Round(n, values, player, bot, sp, sb))
    return History(key, source, rounds, times=[start + i for i in range(len(moves))] if start else [])


MOVES = [(ROCK, PAPER), (PAPER, PAPER), (SCISSORS, ROCK), (ROCK, ROCK), (PAPER, SCISSORS), (SCISSORS, PAPER)]


def test_examples_label_rounds_from_four_on() -> None:
    history = _history("human-1", "human", MOVES, start=1000.0)
    data = examples([history, _history("short", "human", MOVES[:3])])
    assert len(data) == 3  # rounds 4, 5, 6; a three-round game has no label
    assert data.round.tolist() == [4, 5, 6]
    assert data.y.tolist() == [ROCK, PAPER, SCISSORS]
    assert data.group.tolist() == ["human-1"] * 3
    assert data.time.tolist() == [1003.0, 1004.0, 1005.0]
    for row, i in enumerate(range(3, 6)):
        # the same function the server calls, on the rounds before this one
        assert np.array_equal(data.x[row], features(history.rounds[:i], history.rounds[i].values))
    assert data.x.dtype == np.float32
    everything = examples([history], first_round=1)
    assert everything.round.tolist() == [1, 2, 3, 4, 5, 6]


def test_examples_weight_by_source() -> None:
    data = examples(
        [
            _history("h", "human", MOVES),
            _history("s", "sim", MOVES),
            _history("r", "recorded", MOVES),
            _history("l", "loadtest", MOVES),
        ]
    )
    weights = {g: set(data.weight[data.group == g].tolist()) for g in set(data.group)}
    assert weights == {"h": {1.0}, "s": {float(np.float32(0.3))}, "r": {1.0}}
    assert "l" not in set(data.group)  # load-test games never train
    assert len(examples([_history("l", "loadtest", MOVES)])) == 0


def test_split_groups_keeps_each_group_on_one_side() -> None:
    rng = np.random.default_rng(5)
    groups = np.array([f"g{i}" for i in rng.integers(0, 40, size=2000)], dtype=object)
    train, held = split_groups(groups, 0.25, seed=3)
    assert train.dtype == held.dtype == np.bool_
    assert np.array_equal(train, ~held)
    assert not set(groups[train]) & set(groups[held])
    assert len(set(groups[held])) == round(len(set(groups)) * 0.25)
    again, _ = split_groups(groups, 0.25, seed=3)
    assert np.array_equal(train, again)
    other, _ = split_groups(groups, 0.25, seed=4)
    assert not np.array_equal(train, other)
    _, tiny = split_groups(groups, 0.001, seed=3)
    assert len(set(groups[tiny])) == 1  # never an empty hold-out


def test_fit_priors_counts_shifts_after_each_outcome_and_moves(tmp_path: Path) -> None:
    # p1: rock (wins), rock (stays after the win; loses), scissors (down after the loss; draw), rock (up after the draw)
    # p2: paper (wins), scissors (up; loses), rock (up; draw), rock (stays); p1's last round is not followed by p2's.
    path = _write(
        tmp_path / "plays.csv",
        "player_id,game_id,round,move,opp_move\n"
        "p1,g1,1,rock,scissors\np1,g1,2,rock,paper\np1,g1,3,scissors,scissors\np1,g1,4,rock,paper\n"
        "p2,g1,1,paper,rock\np2,g1,2,scissors,rock\np2,g1,3,rock,rock\np2,g1,4,rock,rock\n",
    )
    priors = fit_priors(histories_from_csv(path))
    # (stay, up, down) after a win, a loss, a draw
    assert priors.shift == ((0.5, 0.5, 0.0), (0.0, 0.5, 0.5), (0.5, 0.5, 0.0))
    assert priors.move == (5 / 8, 1 / 8, 2 / 8)


def test_fit_priors_needs_a_move_after_every_outcome(tmp_path: Path) -> None:
    path = _write(tmp_path / "plays.csv", "player_id,game_id,round,move,opp_move\np1,g1,1,rock,scissors\n"
                  "p1,g1,2,rock,scissors\np1,g1,3,paper,paper\n")  # fmt: skip
    with pytest.raises(DataError, match="priors"):
        fit_priors(histories_from_csv(path))  # no move ever follows a loss or a draw


def test_shipped_priors_are_the_ones_fitted_on_the_training_players() -> None:
    """The online predictor's population priors come from the recorded players the trainer may use (groups 01-06)."""
    fitted, shipped = fit_priors(recorded_histories()), Priors()
    assert np.allclose(fitted.shift, shipped.shift, atol=5e-4)
    assert np.allclose(fitted.move, shipped.move, atol=5e-4)
    assert np.allclose(fitted.context, shipped.context, atol=5e-4)
    every_player = fit_priors(histories_from_csv(ROOT / "datasets" / "wxz2014.csv"))
    assert not np.allclose(every_player.shift, shipped.shift, atol=5e-4)  # the held-out players would change them


def test_chronological_split_holds_out_the_latest_games() -> None:
    starts = [5000.0, 1000.0, 3000.0, 9000.0, 2000.0, 7000.0, 4000.0, 8000.0, 6000.0, 10000.0]
    data = examples([_history(f"game-{int(t)}", "human", MOVES, start=t) for t in starts])
    early, late = chronological_split(data, 0.3)
    assert np.array_equal(early, ~late)
    assert set(data.group[late]) == {"game-8000", "game-9000", "game-10000"}
    assert data.time[late].min() > data.time[early].max()


def test_training_holds_out_the_latest_database_games(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    played = [_history(f"db-{i:02d}", "human", [(int(rng.integers(3)), int(rng.integers(3))) for _ in range(12)],
                       start=1000.0 * (i + 1)) for i in range(30)]  # fmt: skip
    steps: list[str] = []
    with Lifecycle(tmp_path / "rpsquest.db") as lifecycle:
        report = train_cycle(LocalStore(tmp_path / "store"), played + recorded_histories(), families=["logistic"],
                             lifecycle=lifecycle, progress=steps.append)  # fmt: skip
    assert report.recent_games == ["db-27", "db-28", "db-29"]  # the latest tenth of the 30 timed games
    for alias in ALIASES:
        recent = report.cards["logistic"][alias]["metrics"]["recent_holdout"]
        assert recent["rows"] == 3 * 9  # rounds 4-12 of each held-out game
        assert 0.0 <= recent["accuracy"] <= 1.0
        # and a progress line for each step (no tracker here: nothing is registered in MLflow)
        training = next(i for i, step in enumerate(steps) if step.startswith(f"training logistic {alias} "))
        assert steps[training + 1] == f"exporting logistic {alias} to ONNX and checking it"
    assert steps[0].startswith("features of ")


# -- offline evaluation --------------------------------------------------------------------------


def _subset(source: Path, target: Path, players: int, last_round: int) -> Path:
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    chosen: list[str] = []
    for row in rows:
        if row["player_id"] not in chosen:
            chosen.append(row["player_id"])
    keep = set(chosen[:players])
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["player_id"] in keep and int(r["round"]) <= last_round)
    return target


@pytest.fixture(scope="module")
def holdout_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _subset(RECORDED_HOLDOUT, tmp_path_factory.mktemp("eval") / "holdout8.csv", EVAL_PLAYERS, EVAL_LAST_ROUND)


@pytest.fixture(scope="module")
def report(trained_store: Path, holdout_csv: Path) -> dict[str, Any]:
    return evaluate(LocalStore(trained_store), holdout_csv)


def _check(summary: dict[str, Any], name: str) -> None:
    assert summary["accuracy"] > CHANCE, name
    assert summary["log_loss"] < math.log(3), name
    assert summary["rounds"] == EVAL_PLAYERS * (EVAL_LAST_ROUND - 3), name
    assert summary["rounds_4_30"] == EVAL_PLAYERS * 27, name
    for key in ("accuracy_4_30", "net_score", "net_score_4_30"):
        assert -1.0 <= summary[key] <= 1.0, name
    assert summary["log_loss_4_30"] > 0.0, name


def test_evaluation_players_were_never_trained_on(holdout_csv: Path) -> None:
    evaluated = {h.player for h in histories_from_csv(holdout_csv)}
    assert len(evaluated) == EVAL_PLAYERS
    assert not evaluated & {h.player for h in recorded_histories()}


def test_evaluate_scores_every_predictor_above_chance(report: dict[str, Any], holdout_csv: Path) -> None:
    assert report["data"] == str(holdout_csv)
    assert report["players"] == EVAL_PLAYERS
    _check(report["online"], "online")
    assert set(report["families"]) == set(FAMILIES)
    for family in FAMILIES:
        entries = report["families"][family]
        assert set(entries) == set(ALIASES)
        assert sorted(e["version"] for e in entries.values()) == ["v1", "v2", "v3", "v4"]
        for alias, entry in entries.items():
            assert "error" not in entry, entry
            _check(entry["model"], f"{family} {alias}")
            _check(entry["blend"], f"{family} {alias} + online")
            # the blend listens to the model: its predictions are not the online predictor's
            assert [entry["blend"][k] for k in QUALITY] != [report["online"][k] for k in QUALITY]


def test_format_report_prints_a_line_per_predictor(report: dict[str, Any]) -> None:
    lines = format_report(report).splitlines()
    assert lines[0].startswith(f"{report['data']}: {EVAL_PLAYERS} players, {report['online']['rounds']} rounds")
    assert lines[2].startswith("online predictor")
    assert f"{report['online']['accuracy']:.3f}" in lines[2]
    assert len(lines) == 3 + 2 * len(FAMILIES) * len(ALIASES)
    for family in FAMILIES:
        for alias, entry in report["families"][family].items():
            name = f"{family} {alias} {entry['version']}"
            [model_line] = [line for line in lines if line.startswith(name + " ") and "+ online" not in line]
            assert f"{entry['model']['accuracy']:.3f}" in model_line
            [blend_line] = [line for line in lines if line.startswith(name + " + online")]
            assert f"{entry['blend']['accuracy']:.3f}" in blend_line


def test_evaluate_reports_a_refused_version(tmp_path: Path, trained_store: Path) -> None:
    root = shutil.copytree(trained_store, tmp_path / "store")
    card_path = root / model_key("xgboost", "v2", "card.json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "feature_version": 2}))
    data = _subset(RECORDED_HOLDOUT, tmp_path / "one.csv", 1, 30)
    result = evaluate(LocalStore(root), data)
    assert result["families"]["xgboost"]["B"]["version"] == "v2"
    assert "feature contract 2" in result["families"]["xgboost"]["B"]["error"]
    assert "model" in result["families"]["xgboost"]["Production"]
    assert "xgboost B v2: refused (" in format_report(result)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_evaluate_a_file_without_labelled_rounds(tmp_path: Path, trained_store: Path) -> None:
    path = _write(tmp_path / "short.csv", "player_id,game_id,round,move,opp_move\np1,g1,1,rock,paper\n")
    try:
        result = evaluate(LocalStore(trained_store), path)
    except DataError:
        return
    assert result["online"]["rounds"] == 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPSQUEST_")}
    return subprocess.run(
        [sys.executable, "-m", "trainer", "evaluate", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_cli_evaluate_prints_json(tmp_path: Path, trained_store: Path) -> None:
    shutil.copytree(trained_store, tmp_path / "data" / "store")
    data = _subset(RECORDED_HOLDOUT, tmp_path / "two.csv", 2, 40)
    done = _cli("--data", str(data), "--json", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    expected = json.loads(json.dumps(evaluate(LocalStore(tmp_path / "data" / "store"), data)))
    assert printed == expected
    assert printed["players"] == 2 and printed["online"]["rounds"] == 2 * 37
    assert set(printed["families"]) == set(FAMILIES)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("player_id,game_id,round,move\np1,g1,1,rock\n", "missing column(s) opp_move"),
        ("player_id,game_id,round,move,opp_move\np1,g1,1,rock,paper\np1,g1,2,spock,rock\n", ":3: cannot read"),
    ],
    ids=["missing column", "bad move"],
)
def test_cli_evaluate_refuses_a_bad_csv(content: str, expected: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", content)
    done = _cli("--data", str(path), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rpsquest: ") and str(path) in lines[0] and expected in lines[0]
