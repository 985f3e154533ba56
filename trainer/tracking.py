"""MLflow: every new version is a run (params, metrics, the ONNX model and its card) and a registered
model version; registry aliases mirror aliases.json."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

REGISTERED_PREFIX = "rpsquest-"


class Tracker:
    """Logs runs and registers versions in one MLflow tracking/registry store."""

    def __init__(self, uri: str, artifacts: Path) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        import mlflow

        for name in ("mlflow", "alembic"):  # after the import: mlflow sets up its loggers when imported
            logging.getLogger(name).setLevel(logging.WARNING)

        self.mlflow = mlflow
        self.client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.uri = uri
        name = "rpsquest"
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(name, artifact_location=artifacts.resolve().as_uri())
        )
        self._run_id: str | None = None

    def start(self, family: str, alias: str, params: dict[str, Any], config_version: int) -> str:
        run = self.client.create_run(self.experiment_id, run_name=f"{family}-{alias}",
                                     tags={"family": family, "config": alias})  # fmt: skip
        self._run_id = run.info.run_id
        for key, value in {**params, "config_version": config_version}.items():
            self.client.log_param(self._run_id, key, json.dumps(value) if isinstance(value, list) else value)
        return self._run_id

    def finish(self, card: dict[str, Any], onnx_bytes: bytes) -> None:
        run_id = self._run_id
        assert run_id is not None
        for split, values in card["metrics"].items():
            if isinstance(values, dict):
                for key, value in values.items():
                    self.client.log_metric(run_id, f"{split}.{key}", float(value))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            (folder / "model.onnx").write_bytes(onnx_bytes)
            (folder / "card.json").write_text(json.dumps(card, indent=1))
            self.client.log_artifacts(run_id, str(folder), "model")
        name = REGISTERED_PREFIX + card["family"]
        try:
            self.client.get_registered_model(name)
        except self.mlflow.exceptions.MlflowException:
            self.client.create_registered_model(name)
        registered = self.client.create_model_version(
            name, f"runs:/{run_id}/model", run_id=run_id, tags={"version": card["version"], "sha256": card["sha256"]}
        )
        self.client.set_model_version_tag(name, registered.version, "config", card["config"])
        self.client.set_terminated(run_id)
        self._run_id = None

    def set_aliases(self, families: dict[str, dict[str, str]]) -> None:
        """Mirror aliases.json in the registry (aliases are lower-case there): each alias points at its
        version, and an alias the manifest no longer has is removed."""
        for family, aliases in families.items():
            name = REGISTERED_PREFIX + family
            try:
                registered = self.client.get_registered_model(name)
            except self.mlflow.exceptions.MlflowException:
                continue
            wanted: dict[str, str] = {}
            for alias, version in aliases.items():
                found = self.client.search_model_versions(f"name='{name}' and tag.version='{version}'")
                if found:
                    wanted[alias.lower()] = str(found[0].version)
            present = {alias: str(v) for alias, v in (registered.aliases or {}).items()}
            for alias, number in wanted.items():
                if present.get(alias) != number:
                    self.client.set_registered_model_alias(name, alias, number)
            for alias in present.keys() - wanted.keys():
                self.client.delete_registered_model_alias(name, alias)
