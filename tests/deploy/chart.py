"""Render the Helm chart offline (helm-python-sdk: Helm's Go SDK in-process) and look inside it.

Each values file is rendered once per test session; the tests read the manifests as plain dicts.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from helm_python import Chart

from tests.deploy.importscan import ROOT

CHART = ROOT / "helm" / "edgeinspect"
RELEASE = "factory"
NAMESPACE = "edgeinspect"
DEFAULTS = "values.yaml"
VALUES_FILES = (DEFAULTS, *sorted(p.name for p in (CHART / "ci").glob("*.yaml")))

Manifest = dict[str, Any]


def values_path(name: str) -> Path:
    return CHART / name if name == DEFAULTS else CHART / "ci" / name


def load_values(name: str) -> dict[str, Any] | None:
    """The values a test passes for ``name`` (None: the chart's own defaults)."""
    if name == DEFAULTS:
        return None
    loaded = yaml.safe_load(values_path(name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def render_values(values: dict[str, Any] | None) -> list[Manifest]:
    with Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    docs: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


@cache
def _rendered(name: str) -> tuple[Manifest, ...]:
    return tuple(render_values(load_values(name)))


def render(name: str) -> list[Manifest]:
    """The manifests for a values file (a fresh list; the cached render is never handed out)."""
    return copy.deepcopy(list(_rendered(name)))


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def component(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def line_of(doc: Manifest) -> str | None:
    line = doc["metadata"].get("labels", {}).get("edgeinspect.io/line")
    return None if line is None else str(line)


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def workloads(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if d["kind"] in {"Deployment", "DaemonSet", "StatefulSet"}]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    """mountPath -> volume name."""
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def volumes_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in spec.get("volumes", [])}
