"""`make bench`: run the benchmarks and write bench/RESULTS.md (machine, date, command, figures).

`python -m bench [SECTION ...]` runs some sections only; the others keep their last figures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import hotpath, load, ml, people, promotion, returning, rounds, serving, slow
from bench.common import machine

RESULTS = Path(__file__).with_name("RESULTS.md")
RAW = Path(__file__).with_name("results.json")
# sections that need no trained models
STANDALONE = ("training_100k", "people_splits", "promotion", "openings", "adaptive", "returning", "storage_rounds")


def main(argv: list[str]) -> int:
    previous: dict[str, Any] = json.loads(RAW.read_text()) if RAW.exists() else {}
    with tempfile.TemporaryDirectory(prefix="rpsq-bench-") as tmp:
        root = Path(tmp)
        trained = root / "trained"
        sections: dict[str, Callable[[], Any]] = {
            "cold_start": lambda: ml.cold_start(trained),
            "inference": lambda: ml.inference(trained / "store"),
            "people": lambda: ml.people(trained),
            "people_splits": ml.people_splits,
            "play_strength": lambda: ml.play_strength(root / "strength", trained / "store"),
            "people_yardstick": lambda: people.people_yardstick(root / "yardstick", trained / "store"),
            "openings": people.openings,
            "adaptive": people.adaptive,
            "returning": returning.returning,
            "training_100k": lambda: ml.training(),
            "roundtrip": lambda: load.roundtrip(root, trained / "store"),
            "memory_at_rest": lambda: load.memory_at_rest(root, trained / "store"),
            "game_memory": lambda: load.game_memory(root, trained / "store"),
            "saturation": lambda: load.saturation(root, trained / "store"),
            "human_1000": lambda: load.paced(root, trained / "store", "human", 1000, 60, 10),
            "human_during_training": lambda: load.during_training(root, trained / "store"),
            "capacity": lambda: load.capacity(root, trained / "store"),
            "hot_swap": lambda: load.hot_swap(root, trained / "store"),
            "wal_bound": lambda: load.wal_bound(root, trained / "store"),
            "profile": lambda: load.profile(root, trained / "store"),
            "profile_human": lambda: load.profile_human(root, trained / "store"),
            "profile_roundtrip": lambda: load.profile_roundtrip(root, trained / "store"),
            "hot_path": lambda: hotpath.hot_path(trained / "store"),
            "models_api": lambda: serving.models_api(root, trained / "store"),
            "swaps": lambda: serving.swaps(root, trained / "store"),
            "replicas": lambda: load.replicas(root, trained / "store"),
            "processes": lambda: load.processes(root, trained / "store"),
            "promotion": promotion.run,
            "slow_sockets": lambda: slow.slow_sockets(root, trained / "store"),
            "storage_rounds": lambda: rounds.storage_rounds(root),
        }
        wanted = argv or list(sections)
        unknown = [w for w in wanted if w not in sections]
        if unknown:
            print(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(sections)}", file=sys.stderr)
            return 2
        if any(w not in STANDALONE for w in wanted) and "cold_start" not in wanted:
            wanted.insert(0, "cold_start")  # the other sections need trained models
        for name in wanted:
            print(f"bench: {name} …", flush=True)
            started = time.perf_counter()
            result = sections[name]()
            previous[name] = {
                "result": result,
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": f"python -m bench {name}",
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(result, indent=1), flush=True)
            RAW.write_text(json.dumps(previous, indent=1))
    RESULTS.write_text(render(previous))
    print(f"bench: wrote {RESULTS}")
    return 0


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(what, target, measured, met) for every target of the issues, from the last figures."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(what: str, target: str, value: Any, fmt: str, ok: Callable[[Any], bool] | None) -> None:
        shown = "not measured" if value is None else fmt.format(value)
        rows.append((what, target, shown, None if value is None or ok is None else ok(value)))

    people = _get(results, "people", "result") or {}
    best = max(people.items(), key=lambda kv: kv[1]["accuracy_4_30"], default=(None, None))
    top = None if best[1] is None else (best[1]["accuracy_4_30"] * 100, best[0])
    add(
        "top-1 on unseen wxz2014 players, rounds 4-30, fixed split: groups 07-12 (best predictor)",
        "≥ 46 %",
        top,
        "{0[0]:.1f} % ({0[1]})",
        lambda v: v[0] >= 46,
    )
    splits = _get(results, "people_splits", "result") or {}
    ours = max((splits.get("families") or {}).items(), key=lambda kv: kv[1]["mean"], default=None)
    baseline = _get(splits, "baselines", "stay/up/down given outcome", "mean")
    measured = None
    if ours is not None:
        measured = (ours[1]["mean"] * 100, ours[1]["se"] * 100, splits["splits"], ours[0], baseline * 100)
    add(
        "top-1 on unseen wxz2014 players, rounds 4-30, mean of random half splits"
        " (datasets/README.md protocol; best of families and blends)",
        "≥ 46 %, above the baseline",
        measured,
        "{0[0]:.1f} % ± {0[1]:.1f} over {0[2]} splits ({0[3]}); stay/up/down baseline on the same splits {0[4]:.1f} %",
        lambda v: v[0] >= 46 and v[0] > v[4],
    )
    wins = _get(results, "play_strength", "result", "bot_win_rate")
    worst = None if wins is None else min(wins.values()) * 100
    add("bot win rate vs simulated players (worst opponent)", "≥ 70 %", worst, "{:.1f} %", lambda v: v >= 70)
    yardstick = _get(results, "people_yardstick", "result") or {}
    gain = yardstick.get("bot_minus_plain")
    add(
        "people-like players (unseen wxz2014 people, through the protocol): bot − plain population-table bot,"
        " game-win rate",
        "≥ +8 points",
        None
        if gain is None
        else (
            gain["diff"] * 100,
            gain["se"] * 100,
            *(yardstick["win_rate"][k]["rate"] * 100 for k in ("bot", "plain", "oracle")),
        ),
        "{0[0]:+.1f} ± {0[1]:.1f} points (bot {0[2]:.1f} %, plain {0[3]:.1f} %, oracle {0[4]:.1f} %)",
        lambda v: v[0] >= 8,
    )
    band_gain = yardstick.get("band_bot_minus_plain")
    add(
        "people-like players: bot − plain bot, net points per round in rounds 1-3, 4-10, 11+",
        "≥ 0 in every band",
        None if band_gain is None else tuple(band_gain.values()),
        "{0[0]:+.3f}, {0[1]:+.3f}, {0[2]:+.3f}",
        lambda v: min(v) >= 0,
    )
    opened = _get(results, "openings", "result") or {}
    add(
        "named openings (drawn by weight) − the bot's own policy in rounds 1-3, game-win rate (people-like; personas)",
        "keep them only if ≥ 0",
        None
        if not opened
        else tuple(
            opened[k]["named openings, drawn by weight"]["minus_policy"]["diff"] * 100 for k in ("people", "personas")
        ),
        "{0[0]:+.1f} points; {0[1]:+.1f} points",
        None,
    )
    inference = _get(results, "inference", "result") or {}
    slowest = max((v["p50"] for k, v in inference.items() if k.endswith("_all_aliases_us")), default=None)
    add("all four aliases of a round, median (slowest family)", "≤ 60 µs", slowest, "{:.1f} µs", lambda v: v <= 60)
    training = _get(results, "training_100k", "result") or {}
    add("training every family on 100,000 rounds", "≤ 300 s", training.get("train_seconds"), "{} s", lambda v: v <= 300)
    add("training peak memory", "≤ 2048 MiB", training.get("peak_rss_mib"), "{} MiB", lambda v: v <= 2048)
    add(
        "cold start (simulate, train 12 models, register)",
        "≤ 180 s",
        _get(results, "cold_start", "result", "seconds"),
        "{} s",
        lambda v: v <= 180,
    )
    trips: tuple[tuple[str, str, str, Callable[[Any], bool] | None], ...] = (
        ("back_to_back", "back to back", "≤ 3", lambda v: v[0] <= 3),
        ("paced", "20 ms between messages", "–", None),
    )
    for name, label, target, ok in trips:
        trip = _get(results, "roundtrip", "result", name) or {}
        add(
            f"move round trip p50 ÷ bare echo p50 (one session, {label})",
            target,
            None
            if not trip
            else (trip["ratio_p50"], trip["move_us"]["p50"], trip["echo_us"]["p50"], trip["server_cpu_us_per_move"]),
            "{0[0]} ({0[1]} vs {0[2]} µs; the server's CPU per lone move: {0[3]} µs)",
            ok,
        )
    saturation = _get(results, "saturation", "result") or {}
    rate = saturation.get("rounds_per_second")
    floor = saturation.get("echo_floor_messages_per_second")
    add(
        "1,000 max-pace sessions: rounds/s",
        "≥ 5,000",
        None if rate is None else (rate, floor),
        "{0[0]} (bare echo, same sessions and workers: {0[1]} messages/s)",
        lambda v: v[0] >= 5000,
    )
    add("1,000 max-pace sessions: errors", "0", saturation.get("errors"), "{}", lambda v: not v)
    add(
        "1,000 human-paced sessions: move p99",
        "≤ 10 ms",
        _get(results, "human_1000", "result", "move_latency_ms", "p99"),
        "{} ms",
        lambda v: v <= 10,
    )
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        stored = _get(results, "storage_rounds", "result", backend, "ordered_ids_n64") or {}
        cpu = stored.get("cpu_us_per_round", 0.0) + stored.get("db_cpu_us_per_round", 0.0)  # PostgreSQL's own too
        add(
            f"storage per round at max pace, {name} (64 rounds a commit): CPU (server and database); WAL",
            "≤ 60 µs; ≤ 2 KiB",
            None if not stored else (round(cpu, 1), stored["wal_bytes_per_round"] / 1024),
            "{0[0]} µs; {0[1]:.1f} KiB",
            lambda v: v[0] <= 60 and v[1] <= 2,
        )
    add(
        "1,000 human-paced sessions while a training cycle runs: move p99",
        "–",
        _get(results, "human_during_training", "result", "move_latency_ms", "p99"),
        "{} ms",
        None,
    )
    add(
        "human-paced sessions held with p99 ≤ 100 ms",
        "≥ 10,000",
        _get(results, "capacity", "result", "held_with_p99_under_100ms"),
        "{}",
        lambda v: v >= 10000,
    )
    add(
        "server RSS at rest, 12 model versions loaded",
        "≤ 300 MiB",
        _get(results, "memory_at_rest", "result", "rss_mib"),
        "{} MiB",
        lambda v: v <= 300,
    )
    add("hot swap under load: failed rounds", "0", _get(results, "hot_swap", "result", "errors"), "{}", lambda v: not v)
    for scenario, label in (("aa", "split 50/50"), ("aa_split_20", "split 80/20"), ("aa_rate_50", "win rate 50 %")):
        found = _get(results, "promotion", "result", scenario, "false_promotions")
        add(
            f"promotion: false-promotion rate, simulated A/A tests checked after every game ({label})",
            "≤ 5 % (alpha)",
            None if found is None else (found["rate"] * 100, found["ci95"][0] * 100, found["ci95"][1] * 100),
            "{0[0]:.1f} % (95 % CI {0[1]:.1f}-{0[2]:.1f})",
            lambda v: v[0] <= 5,
        )
    plus5 = _get(results, "promotion", "result", "plus_5_points") or {}
    add(
        "promotion: games per arm until 80 % of tests promote a B 5 points better (75 → 80 %)",
        "–",
        None if not plus5 else (plus5["games_per_arm_for_80pct_promoted"], plus5["fixed_sample_per_arm_one_look"]),
        "{0[0]} (a one-look test: {0[1]})",
        None,
    )
    hot = _get(results, "hot_path", "result") or {}
    add(
        "a round's CPU, mypyc-compiled engine vs pure Python: the engine alone, one game at a time and 10,000 in"
        " turn; the whole GameService (no sockets)",
        "–",
        None
        if not hot
        else tuple(hot[k][loop]["us_per_round"] for loop in hotpath.LOOPS for k in ("compiled", "pure")),
        "{0[0]} vs {0[1]} µs, {0[2]} vs {0[3]} µs; {0[4]} vs {0[5]} µs",
        None,
    )
    slow = _get(results, "slow_sockets", "result") or {}
    health = slow.get("healthz_during_ms")
    add(
        "/healthz while 20,000 slow-header sockets are held: p99 (failed probes)",
        "≤ 100 ms, none failed",
        None if not health else (health["p99"], slow["healthz_failed_during"]),
        "{0[0]} ms ({0[1]} failed)",
        lambda v: v[0] <= 100 and v[1] == 0,
    )
    wal = _get(results, "wal_bound", "result") or {}
    add(
        "WAL size under full-pace load (200 sessions, no rate limit), largest sample",
        "≤ 64 MiB",
        None if not wal else (wal["wal_mib"]["max"], wal["seconds"], wal["rounds_per_second"], wal["errors"]),
        "{0[0]} MiB over {0[1]:.0f} s at {0[2]} rounds/s, errors {0[3]}",
        lambda v: v[0] <= 64,
    )
    add("full-pace load: answered rounds missing from the database", "0", wal.get("answered_rounds_lost"), "{}",
        lambda v: not v)  # fmt: skip
    return rows


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); raw figures in `results.json`. The load generator runs on",
        "the same 2-core machine as the server, so its cost is inside every load figure.",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for what, target, measured, met in _targets(results):
        lines.append(f"| {what} | {target} | {measured} | {'–' if met is None else 'yes' if met else 'no'} |")
    lines.append("")
    for name, entry in results.items():
        lines += [
            f"## {name}",
            "",
            f"- machine: {entry['machine']}",
            f"- date: {entry['date']}",
            f"- command: `{entry['command']}` ({entry['seconds']} s)",
            "",
            "```json",
            json.dumps(entry["result"], indent=1),
            "```",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
