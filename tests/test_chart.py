"""The Helm chart charts/rps-quest, rendered and linted by Helm's own engine (helm-python-sdk) for several
values scenarios, every manifest validated against the Kubernetes that k3s' stable channel ships, scanned with
checkov, and what matters asserted: probes and drain, hardening, secrets, the CronJob, the WebSocket Ingress and
the refusal of several replicas on SQLite."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "rps-quest"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
KUBERNETES = "1.36.0"  # k3s' stable channel: v1.36.3+k3s1 (August 2026)
CRDS = {"monitoring.coreos.com/v1"}  # prometheus-operator kinds: no schema in kubernetes-validate
POD_OWNERS = {"Deployment", "StatefulSet", "Job", "CronJob"}

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external": {
        "server": {"replicas": 3},
        "adminToken": {"existingSecret": "rps-admin"},
        "database": {"kind": "external", "external": {"host": "pg.example.internal", "existingSecret": "rps-db"}},
        "objectStore": {
            "kind": "external",
            "existingSecret": "rps-s3",
            "external": {"endpoint": "https://s3.example.internal"},
        },
    },
    "everything": {
        "server": {
            "replicas": 3,
            "autoscaling": {"enabled": True},
            "podDisruptionBudget": {"enabled": True},
            "ingress": {"tls": {"enabled": True, "secretName": "rps-tls"}},
        },
        "database": {"kind": "postgresql"},
        "mlflow": {"enabled": True, "backendStore": "postgresql"},
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True},
        },
        "networkPolicy": {"enabled": True},
    },
    "minimal": {
        "server": {"ingress": {"enabled": False}},
        "trainer": {"enabled": False},
        "objectStore": {
            "kind": "external",
            "existingSecret": "rps-s3",
            "external": {"endpoint": "http://s3.local:9000"},
        },
    },
    "minio": {
        "objectStore": {
            "kind": "minio",
            "minio": {"image": {"repository": "registry.example/minio", "tag": "2025-09"}},
        },
        "mlflow": {"enabled": True},
        "networkPolicy": {"enabled": True},
    },
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's manifests for `values`, as Helm installs them (release `rps` in namespace `games`)."""
    rendered = helm.Chart.load(CHART).render(values, name="rps", namespace="games", is_install=True)
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values) for name, values in SCENARIOS.items()}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(doc["spec"]["template"]["spec"])


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in POD_OWNERS:
            yield doc["metadata"]["name"], pod_spec(doc)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_is_clean(scenario: str) -> None:
    report = helm.lint(CHART, SCENARIOS[scenario], strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_is_valid_kubernetes(scenario: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    for doc in manifests[scenario]:
        if doc["apiVersion"] in CRDS:
            assert doc["kind"] in ("ServiceMonitor", "PrometheusRule")
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_scenarios_render_what_they_say(manifests: dict[str, list[dict[str, Any]]]) -> None:
    def kinds(name: str) -> set[str]:
        return {f"{d['kind']}/{d['metadata']['name'].removeprefix('rps-rps-quest-')}" for d in manifests[name]}

    assert {"StatefulSet/seaweedfs", "CronJob/trainer", "Ingress/server", "PersistentVolumeClaim/data"} <= kinds(
        "defaults"
    )
    assert not {k for k in kinds("external") if k.startswith("StatefulSet/")}
    assert "Secret/rps-rps-quest" not in kinds("external")  # every secret is the operator's
    assert {
        "StatefulSet/postgresql",
        "Deployment/mlflow",
        "HorizontalPodAutoscaler/server",
        "PodDisruptionBudget/server",
        "NetworkPolicy/postgresql",
        "NetworkPolicy/seaweedfs",
        "ServiceMonitor/server",
    } <= kinds("everything")
    dashboards = {p.name for p in (CHART / "dashboards").glob("*.json")}
    shipped = {
        key
        for d in of_kind(manifests["everything"], "ConfigMap")
        if d["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key in d["data"]
    }
    assert shipped == dashboards and len(dashboards) == 7
    assert {"StatefulSet/minio", "NetworkPolicy/minio"} <= kinds("minio")
    assert not {k for k in kinds("minimal") if k.split("/")[0] in ("Ingress", "CronJob", "StatefulSet")}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_is_hardened(scenario: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    specs = dict(pod_specs(manifests[scenario]))
    assert specs
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert sc.get("privileged", False) is False, (name, c["name"])
            assert c["resources"]["limits"]["memory"], (name, c["name"])
            assert not c["image"].endswith(":latest"), (name, c["name"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_server_probes_and_drain(scenario: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    spec = pod_spec(named(manifests[scenario], "Deployment", "-server"))
    [server] = spec["containers"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    pause = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(env_of(server)["RPSQUEST_DRAIN_TIMEOUT"]["value"])
    assert pause > 0 and drain > 0
    assert spec["terminationGracePeriodSeconds"] == pause + drain + 5


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_in_a_configmap_or_an_env_literal(scenario: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    docs = manifests[scenario]
    generated = [base64.b64decode(v).decode() for s in of_kind(docs, "Secret") for v in s["data"].values()]
    assert all(len(v) >= 20 for v in generated)
    literals = [str(v) for cm in of_kind(docs, "ConfigMap") for v in cm["data"].values()]
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if re.search("TOKEN|SECRET|PASSWORD|ACCESS_KEY", env["name"]):
                    assert "secretKeyRef" in env["valueFrom"], env
                if "value" in env:
                    literals.append(env["value"])
                    assert not re.match(r"\w+://[^/@]*:[^/@]*@", env["value"]), env  # no password in a URL
            literals += [str(a) for a in c.get("args", [])]
    for secret in generated:
        assert not [text for text in literals if secret in text]


def test_the_generated_secret_holds_what_the_pods_read(manifests: dict[str, list[dict[str, Any]]]) -> None:
    docs = manifests["everything"]
    [secret] = of_kind(docs, "Secret")
    keys = set(secret["data"])
    assert keys == {"admin-token", "access-key", "secret-key", "postgres-password"}
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys, env


@pytest.mark.parametrize("scenario", ["defaults", "everything"])
def test_the_trainer_cronjob(scenario: str, manifests: dict[str, list[dict[str, Any]]]) -> None:
    cron = named(manifests[scenario], "CronJob", "-trainer")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    [trainer] = job["template"]["spec"]["containers"]
    assert trainer["args"] == ["train", "--min-rounds", "2000"]  # the data gate; promotion runs every time
    assert trainer["resources"]["requests"]["cpu"] and trainer["resources"]["limits"]["memory"] == "4Gi"
    assert int(env_of(trainer)["RPSQUEST_TRAINER_MEMORY_MB"]["value"]) < 4096
    first = [j for j in of_kind(manifests[scenario], "Job") if "-first-train-" in j["metadata"]["name"]]
    assert [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in first] == [trainer["args"]]
    env = env_of(trainer)
    if scenario == "everything":
        assert env["RPSQUEST_MLFLOW_URI"]["value"] == "http://rps-rps-quest-mlflow:5000"
        assert env["RPSQUEST_DATABASE_URL"]["value"] == "postgresql://rpsquest@rps-rps-quest-postgresql:5432/rpsquest"
    else:  # SQLite: the trainer mounts the server's volume, on the server's node
        volume = next(v for v in job["template"]["spec"]["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"]["claimName"] == "rps-rps-quest-data"
        assert "podAffinity" in job["template"]["spec"]["affinity"]


def test_the_websocket_ingress_is_traefik_and_sticky_free(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for scenario in ("defaults", "everything"):
        docs = manifests[scenario]
        ingress = named(docs, "Ingress", "-server")
        assert ingress["spec"]["ingressClassName"] == "traefik"
        paths = {p["path"]: p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
        assert paths["/ws"]["backend"]["service"] == {"name": "rps-rps-quest-server", "port": {"name": "http"}}
        assert not [a for a in ingress["metadata"].get("annotations", {}) if "sticky" in a or "affinity" in a]
        service = named(docs, "Service", "-server")
        assert service["spec"]["sessionAffinity"] == "None"
    tls = named(manifests["everything"], "Ingress", "-server")
    assert tls["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
    assert tls["spec"]["tls"] == [{"hosts": ["rpsquest.local"], "secretName": "rps-tls"}]


def test_several_replicas_run_on_postgresql(manifests: dict[str, list[dict[str, Any]]]) -> None:
    deployment = named(manifests["external"], "Deployment", "-server")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["RPSQUEST_DATABASE_URL"]["value"] == (
        "postgresql://rpsquest@pg.example.internal:5432/rpsquest?sslmode=prefer"
    )
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rps-db", "key": "password"}
    single = named(manifests["defaults"], "Deployment", "-server")
    assert single["spec"]["replicas"] == 1 and single["spec"]["strategy"] == {"type": "Recreate"}
    assert "RPSQUEST_DATABASE_URL" not in env_of(single["spec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"server": {"replicas": 2}}, "server.replicas > 1 (or server.autoscaling) needs PostgreSQL"),
        ({"server": {"autoscaling": {"enabled": True}}}, "needs PostgreSQL"),
        ({"objectStore": {"kind": "minio"}}, "needs objectStore.minio.image.repository"),
        ({"objectStore": {"kind": "external", "external": {"endpoint": "https://s3"}}}, "objectStore.existingSecret"),
        ({"database": {"kind": "external", "external": {"host": "pg"}}}, "database.external.existingSecret"),
        ({"mlflow": {"enabled": True, "backendStore": "postgresql"}}, "needs database.kind postgresql or external"),
    ],
)
def test_the_chart_refuses_what_cannot_work(values: dict[str, Any], refusal: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(refusal)):
        render(values)


@pytest.mark.parametrize(
    "values",
    [{"database": {"kind": "mysql"}}, {"objectStore": {"kind": "s3"}}, {"server": {"replicas": 0}}, {"servre": {}}],
)
def test_the_schema_refuses_values_it_does_not_know(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).validate_schema(values)


# checkov findings accepted, each for a reason (docs/operations.md repeats them for operators):
ACCEPTED = {
    "CKV_K8S_43": "image tags, not digests, by default: images are built locally; *.image.digest pins them",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: k3s imports the locally built images into containerd",
    "CKV_K8S_21": "no namespace in the manifests: Helm installs them into the release's namespace",
    "CKV_K8S_35": "secrets as environment variables: the server reads its settings from RPSQUEST_* variables",
    "CKV_K8S_40": "the bundled PostgreSQL runs as the image's own postgres user (999), which owns its files",
    "CKV_K8S_11": "no CPU limit: CPU is shared by requests; a limit only throttles a game server's latency",
    "CKV2_K8S_6": "NetworkPolicy is opt-in (networkPolicy.enabled): k3s' default flannel enforces it",
}


def test_checkov_finds_nothing_unaccepted(manifests: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make test` installs it into .venv-checkov")
    for name, docs in manifests.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
    run = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(run.stdout)
    failed = [
        (check["check_id"], check["resource"], check["check_name"])
        for part in (report if isinstance(report, list) else [report])
        for check in part["results"]["failed_checks"]
        if check["check_id"] not in ACCEPTED
    ]
    assert failed == []
