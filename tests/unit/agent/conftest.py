"""A fresh :class:`ModelTable` per test (no gRPC), over packages built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from edgeinspect_inference.agent.loader import LoadOptions, PackageLoader
from edgeinspect_inference.agent.providers import resolve
from edgeinspect_inference.agent.session import available_providers
from edgeinspect_inference.agent.shadow import ShadowRunner
from edgeinspect_inference.agent.stats import AgentMetrics
from edgeinspect_inference.agent.table import ModelTable
from prometheus_client import CollectorRegistry

from tests.helpers.models import TestKeys, make_keys, make_package, make_package_dir


@dataclass(frozen=True)
class Kit:
    """Keys and packages shared by the agent unit tests (read-only: tests must not modify them)."""

    keys: TestKeys
    root: Path

    def tar(self, name: str, version: str) -> Path:
        return self.root / f"{name}-{version}.tar.gz"

    def folder(self, name: str, version: str) -> Path:
        return self.root / f"{name}-{version}"


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("agent-packages")
    keys = make_keys(root / "keys")
    make_package_dir(root, "cls", "1", "classification", keys)
    make_package_dir(root, "cls", "2", "classification", keys, knob=2, with_int8=True)
    make_package(root, "cls", "10", "classification", keys, knob=4)
    make_package(root, "cls", "9", "classification", keys, knob=3)
    make_package_dir(root, "seg", "1", "segmentation", keys, height=32, width=96)
    return Kit(keys, root)


def make_table(keys_dir: Path, model_dir: Path, max_pending: int = 8) -> ModelTable:
    metrics = AgentMetrics(CollectorRegistry())
    options = LoadOptions(
        providers=tuple(resolve(["cpu"], available_providers)),
        model_dir=model_dir,
        trusted_keys_dir=keys_dir,
        intra_op_threads=1,
        warmup_runs=1,
    )
    return ModelTable(PackageLoader(options, metrics), metrics, ShadowRunner(metrics, 1, max_pending))


@pytest.fixture
def table(kit: Kit, tmp_path: Path) -> Iterator[ModelTable]:
    table = make_table(kit.keys.public_dir, tmp_path / "models")
    yield table
    table.close()
