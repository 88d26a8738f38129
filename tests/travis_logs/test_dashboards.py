"""The Grafana dashboard and the alert rules query only metrics the project exports."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from workflows.lifecycle_metrics import HISTOGRAMS, METRICS, SDK_METRICS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Every module that defines prometheus-client metrics of a process.
METRIC_MODULES = (
    "activities.reconcile",
    "api.metrics",
    "ingest.backlog",
    "ingest.consumer",
    "ingest.intake",
    "ingest.outbox",
    "travis_logs.pusher.metrics",
)
_NAME = re.compile(r"\b((?:travis_logs|temporal)_[a-z0-9_]+)")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    """Series names this project's processes expose."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    sdk_side = METRICS | SDK_METRICS  # the Temporal SDK's exporter: no _total on counters
    histograms = HISTOGRAMS | {m for m in SDK_METRICS if m.endswith("_latency")}
    names |= sdk_side
    names |= {h + s for h in histograms for s in _SUFFIXES["histogram"]}
    return names


def _dashboard_exprs() -> list[str]:
    dash: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/travis-logs.json").read_text())
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def _alert_exprs() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_dashboard_queries_name_exported_metrics() -> None:
    """Every panel query names at least one metric, and only metrics that exist."""
    known = exported()
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        names = set(_NAME.findall(expr))
        assert names, expr
        assert names <= known, (expr, names - known)


def test_alert_rules_name_exported_metrics() -> None:
    """The alerts the issue asks for exist and watch exported metrics."""
    known = exported()
    for expr in _alert_exprs():
        assert set(_NAME.findall(expr)) <= known, expr
    text = " ".join(_alert_exprs())
    for watched in ("verify_failures", "broker_queue_messages", "unfinished_oldest_seconds"):
        assert watched in text


def test_compose_mounts_the_monitoring_files() -> None:
    """Prometheus and Grafana in docker-compose read the files shipped under deploy/."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in (
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/provisioning",
        "grafana/dashboards",
    ):
        assert f"./deploy/{path}:" in mounts, path
        assert (DEPLOY / path).exists(), path
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
