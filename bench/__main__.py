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

from bench import load, ml
from bench.common import machine

RESULTS = Path(__file__).with_name("RESULTS.md")
RAW = Path(__file__).with_name("results.json")


def main(argv: list[str]) -> int:
    previous: dict[str, Any] = json.loads(RAW.read_text()) if RAW.exists() else {}
    with tempfile.TemporaryDirectory(prefix="rpsq-bench-") as tmp:
        root = Path(tmp)
        trained = root / "trained"
        sections: dict[str, Callable[[], Any]] = {
            "cold_start": lambda: ml.cold_start(trained),
            "inference": lambda: ml.inference(trained / "store"),
            "people": lambda: ml.people(trained),
            "play_strength": lambda: ml.play_strength(root / "strength", trained / "store"),
            "training_100k": lambda: ml.training(),
            "roundtrip": lambda: load.roundtrip(root, trained / "store"),
            "memory_at_rest": lambda: load.memory_at_rest(root, trained / "store"),
            "saturation": lambda: load.saturation(root, trained / "store"),
            "human_1000": lambda: load.human(root, trained / "store"),
            "capacity": lambda: load.capacity(root, trained / "store"),
            "hot_swap": lambda: load.hot_swap(root, trained / "store"),
        }
        wanted = argv or list(sections)
        unknown = [w for w in wanted if w not in sections]
        if unknown:
            print(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(sections)}", file=sys.stderr)
            return 2
        if any(w != "training_100k" for w in wanted) and "cold_start" not in wanted:
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


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); raw figures in `results.json`.",
        "",
    ]
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
