"""Build the engine's hot modules with mypyc into engine/_compiled/ (`make install` runs it).

The build goes to a temporary folder and replaces engine/_compiled/ only when it succeeded, with the
digest of the sources it was built from: engine/__init__.py uses it only while the sources match.
Exit status 1 when the build failed: the pure-Python engine then runs, and the server says so once at start.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's engine, whatever the venv's editable install points at
os.environ["RPSQUEST_PURE_ENGINE"] = "1"  # the build reads the sources only: leave the current build unloaded

import engine  # noqa: E402


def build(out: Path) -> None:
    """Compile engine.COMPILED into `out` (the package layout: out/engine/*.so) with the digest of their sources."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    with tempfile.TemporaryDirectory(prefix="rpsq-mypyc-") as tmp:
        sources = [f"engine/{name}.py" for name in engine.COMPILED]
        # the shared library is then engine.native__mypyc (engine.SHARED_LIB), found on the package's path
        extensions = mypycify(sources, opt_level="3", group_name="engine.native", target_dir=f"{tmp}/c")
        dist = Distribution({"name": "rpsquest-engine", "ext_modules": extensions})  # reads no pyproject.toml
        dist.verbose = False
        command = dist.get_command_obj("build_ext")
        command.build_lib, command.build_temp = str(out), tmp
        dist.run_command("build_ext")
    (out / "engine" / "SOURCES").write_text(engine.sources_digest() + "\n")


def main() -> int:
    os.chdir(ROOT)  # mypyc names the modules by their paths from here
    target = ROOT / "engine" / "_compiled"
    with tempfile.TemporaryDirectory(prefix="rpsq-engine-", dir=ROOT / "engine") as tmp:
        try:
            build(Path(tmp))
        except (Exception, SystemExit) as exc:  # setuptools reports a compiler failure as SystemExit
            print(f"engine: the mypyc build failed ({exc}); the pure-Python engine runs", file=sys.stderr)
            return 1
        shutil.rmtree(target, ignore_errors=True)
        (Path(tmp) / "engine").rename(target)
    print(f"engine: compiled {', '.join(engine.COMPILED)} into {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
