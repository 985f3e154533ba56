"""The pure core of RPS Quest: rules, features, policies and simulated players (no I/O).

The modules of a round's hot path (COMPILED) may also be built with mypyc into `_compiled/`
(`make install` runs tools/compile_engine.py). Those builds are used instead of the sources when they
were built from exactly these sources (their digest is in `_compiled/SOURCES`) and
RPSQUEST_PURE_ENGINE is not 1; otherwise every module runs from its .py file. The .py files stay the
source of truth: tests/test_engine_compiled.py checks that both play the same games bit for bit.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

COMPILED = ("rules", "features", "predictor", "policy", "bot")
COMPILED_DIR = Path(__file__).with_name("_compiled")
SHARED_LIB = "native__mypyc"  # mypyc's runtime and the compiled code, shared by the modules of the group


def sources_digest() -> str:
    """SHA-256 of the sources of the COMPILED modules, in order."""
    digest = hashlib.sha256()
    for name in COMPILED:
        digest.update(Path(__file__).with_name(f"{name}.py").read_bytes())
    return digest.hexdigest()


def _use_compiled() -> str:
    """Put the compiled modules first on the package's path when they may be used; say which engine runs."""
    if os.environ.get("RPSQUEST_PURE_ENGINE") == "1":
        return "pure Python (RPSQUEST_PURE_ENGINE=1)"
    try:
        built = (COMPILED_DIR / "SOURCES").read_text().strip()
    except OSError:
        return "pure Python (no compiled build: make install builds one)"
    if built != sources_digest():
        return "pure Python (the compiled build is of other sources: make install rebuilds it)"
    __path__.insert(0, str(COMPILED_DIR))
    try:
        importlib.import_module(f"{__name__}.{SHARED_LIB}")
    except ImportError as exc:
        __path__.remove(str(COMPILED_DIR))
        return f"pure Python (the compiled build does not load: {exc})"
    return f"compiled with mypyc ({', '.join(COMPILED)})"


ENGINE = _use_compiled()
