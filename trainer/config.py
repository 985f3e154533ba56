"""The versioned hyper-parameter file: one configuration per family and alias."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine.opponents import ALIASES, FAMILIES

CONFIG_PATH = Path(__file__).with_name("config.toml")


def load_config(path: Path = CONFIG_PATH) -> tuple[int, dict[str, dict[str, dict[str, Any]]]]:
    """(version, {family: {alias: params}}); every family must configure every alias."""
    raw = tomllib.loads(path.read_text())
    version = int(raw.pop("version"))
    for family in FAMILIES:
        missing = [a for a in ALIASES if a not in raw.get(family, {})]
        if missing:
            raise ValueError(f"{path}: {family} has no configuration for {', '.join(missing)}")
    return version, {f: raw[f] for f in FAMILIES}
