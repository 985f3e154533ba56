"""The Grafana dashboards and Prometheus alert rules of charts/rps-quest: every query names a metric the server
exports, with labels it really has, and docs/metrics.md lists every metric."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from server import metrics

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "rps-quest"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
RULES = CHART / "alerts" / "rpsquest-rules.yaml"

# Metrics agreed between the engineers (metrics_plan) that server/metrics.py may not register yet: the catalogue
# takes server/metrics.py's own definition of a name whenever it has one.
PLANNED: dict[str, tuple[str, frozenset[str]]] = {
    name: (kind, frozenset(labels))
    for name, kind, labels in [
        ("rpsquest_model_predictions_total", "counter", ("family", "alias", "version", "kind")),
        ("rpsquest_model_correct_predictions_total", "counter", ("family", "alias", "version", "kind")),
        ("rpsquest_arm_games_total", "counter", ("family", "alias", "version", "winner")),
        ("rpsquest_model_swaps_total", "counter", ("family", "alias")),
        ("rpsquest_model_load_failures_total", "counter", ("family", "reason")),
        ("rpsquest_promotion_decisions_total", "counter", ("family", "outcome")),
        ("rpsquest_promotion_e_value", "gauge", ("family", "test")),
        ("rpsquest_promotion_threshold", "gauge", ("family",)),
        ("rpsquest_promotion_srm_p_value", "gauge", ("family",)),
        ("rpsquest_training_runs_total", "counter", ("outcome",)),
        ("rpsquest_training_last_success_timestamp_seconds", "gauge", ()),
        ("rpsquest_training_last_duration_seconds", "gauge", ()),
    ]
}
# Not the server's: Prometheus' own `up` and the kubelet's cAdvisor container metrics (server-health dashboard).
INFRASTRUCTURE: dict[str, frozenset[str]] = {
    "up": frozenset(),
    "container_cpu_usage_seconds_total": frozenset({"cpu"}),
    "container_memory_working_set_bytes": frozenset(),
}
# Labels Prometheus (and the prometheus-operator's ServiceMonitor) attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container", "endpoint"})
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
LITERALS = {"inf", "nan"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}
AGGREGATIONS |= {"count_values", "limitk", "limit_ratio"}


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    """server/metrics.py's metrics: name (counters with _total) -> (type, label names)."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for collector in list(metrics.registry._collector_to_names):  # label names are not public API
        kind, name = getattr(collector, "_type", None), getattr(collector, "_name", None)
        if kind and name:
            full = f"{name}_total" if kind == "counter" else name
            found[full] = (kind, frozenset(getattr(collector, "_labelnames", ())))
    return found


def catalogue() -> dict[str, frozenset[str]]:
    """Every series name a query may use -> the labels it has (histograms give _bucket with le, _sum, _count)."""
    series: dict[str, frozenset[str]] = dict(INFRASTRUCTURE)
    for name, (kind, labels) in {**PLANNED, **registered()}.items():
        if kind == "histogram":
            series |= {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels}
        else:
            series[name] = labels
    return {name: labels | TARGET_LABELS for name, labels in series.items()}


@dataclass
class Query:
    """What a PromQL expression refers to: selectors (metric, matcher labels) and grouping labels."""

    selectors: list[tuple[str, set[str]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


TOKEN = re.compile(
    r'\s+|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`|\[[^\]]*\]|[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?'
    r"|[A-Za-z_:][A-Za-z0-9_:]*|=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>@]"
)


def parse(expr: str) -> Query:
    """Metric names, matcher labels and grouping labels of a PromQL expression (a tokenizer, not a full parser:
    enough to find every name and label a query refers to)."""
    text = re.sub(r"\$__\w+", "5m", expr)
    tokens = [t for t in TOKEN.findall(text) if t.strip()]
    assert "".join(tokens) == re.sub(r"\s+", "", text), f"cannot tokenize {expr!r}"
    query, i = Query(), 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING and following == "(":
            end = tokens.index(")", i)
            query.grouping |= {t for t in tokens[i + 2 : end] if t != ","}
            i = end + 1
            continue
        if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token) and token.lower() not in KEYWORDS | LITERALS:
            if following == "(" or token in AGGREGATIONS:  # a function or an aggregation (sum by (x) (...))
                i += 1
                continue
            labels: set[str] = set()
            i += 1
            if i < len(tokens) and tokens[i] == "{":
                end = tokens.index("}", i)
                matchers = tokens[i + 1 : end]
                labels = {matchers[j] for j in range(0, len(matchers), 4)}  # label, operator, value, comma
                i = end + 1
            query.selectors.append((token, labels))
            continue
        i += 1
    return query


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    dashboard = json.loads(path.read_text())
    found = [(f"{path.name}: {p['title']}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    found += [
        (f"{path.name}: annotation {a['name']}", a["expr"]) for a in dashboard["annotations"]["list"] if "expr" in a
    ]
    found += [
        (f"{path.name}: variable {v['name']}", v["definition"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


def rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(f"alert {r['alert']}", r["expr"]) for group in rules["groups"] for r in group["rules"]]


def queries() -> list[tuple[str, str]]:
    return [q for path in DASHBOARDS for q in dashboard_queries(path)] + rule_queries()


def test_the_parser_finds_names_matchers_and_grouping() -> None:
    query = parse(
        'sum by (family, alias) (increase(a_total{kind="blend", x=~"a|b"}[1h])) / on (family) group_left () '
        'max(b{namespace=~"$namespace"}) > 0.5 or absent(up == 1) - time()'
    )
    assert query.selectors == [("a_total", {"kind", "x"}), ("b", {"namespace"}), ("up", set())]
    assert query.grouping == {"family", "alias"}
    assert parse("label_values(rpsquest_model_generation, namespace)").selectors == [
        ("rpsquest_model_generation", set()),
        ("namespace", set()),
    ]


def check(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """What is wrong with `expr`: unknown metrics, labels a metric does not have, grouping by a label none has."""
    if expr.startswith("label_values("):  # label_values(metric, label)
        metric, label = (part.strip() for part in expr[len("label_values(") : -1].split(","))
        return [] if metric in known and label in known[metric] else [f"{metric} has no label {label}"]
    query = parse(expr)
    problems = [f"unknown metric {name}" for name, _ in query.selectors if name not in known]
    problems += [
        f"{name} has no label {label}"
        for name, labels in query.selectors
        if name in known
        for label in sorted(labels - known[name])
    ]
    have = frozenset().union(*(known.get(name, frozenset()) for name, _ in query.selectors))
    problems += [f"no metric of the query has the label {label} it groups by" for label in query.grouping - have]
    return problems


def test_check_catches_a_wrong_name_and_a_wrong_label() -> None:
    known = catalogue()
    assert check('sum by (opponent) (rate(rpsquest_rounds_total{tag="human"}[5m]))', known) == []
    assert check("rate(rpsquest_round_total[5m])", known) == ["unknown metric rpsquest_round_total"]
    assert check('rpsquest_move_seconds_bucket{opponent="brian"}', known) == [
        "rpsquest_move_seconds_bucket has no label opponent"
    ]
    assert check("sum by (family) (rpsquest_live_games)", known) == [
        "no metric of the query has the label family it groups by"
    ]


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[q[0] for q in queries()])
def test_every_query_names_real_metrics_and_labels(where: str, expr: str) -> None:
    assert check(expr, catalogue()) == []


def test_there_is_a_dashboard_for_each_concern() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {
        "RPS Quest / Gameplay",
        "RPS Quest / Latency and errors",
        "RPS Quest / Models and A/B",
        "RPS Quest / Shadows",
        "RPS Quest / Promotions and the ledger",
        "RPS Quest / Training",
        "RPS Quest / Server health",
    }
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_every_alert_is_complete_and_the_required_ones_exist() -> None:
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    names = {r["alert"] for r in rules}
    assert {
        "RPSQuestNoProductionModel",
        "RPSQuestSampleRatioMismatch",
        "RPSQuestServerErrors",
        "RPSQuestMoveLatencyHigh",
        "RPSQuestTrainingFailing",
        "RPSQuestModelStoreUnreachable",
    } <= names
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert not [name for name in names if name not in operations], "docs/operations.md explains every alert"


def test_docs_metrics_lists_every_metric() -> None:
    documented = (ROOT / "docs" / "metrics.md").read_text()
    names = {*PLANNED, *registered()}
    assert not [name for name in sorted(names) if f"`{name}" not in documented]
