"""Identifiers used as paths: every id that reaches the filesystem is checked by one rule in core, and
every such path is joined by ``safe_join``, which cannot return its base or anything outside it.

Reproduces issue 15 at the unit level: ``staging_for(device, "..")`` used to be the model folder itself,
so the staging cleanup deleted every installed model.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from edgeinspect.core import ids
from edgeinspect.core.errors import MessageError
from edgeinspect_model_manager.install import staging_for
from edgeinspect_uploader.layout import check_ids

HOSTILE = ["..", ".", "", "../x", "a/b", "a\\b", "x\x00", "a" * 65, "a b", "#", "+"]


def _device(tmp_path: Path) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(staging_dir=tmp_path / "models" / ".staging"))


@pytest.mark.parametrize("job_id", HOSTILE)
def test_a_hostile_job_id_has_no_staging_folder(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(ids.IdentifierError, match="invalid job id"):
        staging_for(_device(tmp_path), job_id)


@pytest.mark.parametrize("job_id", ["job-1", "A_b-9", "x" * 64])
def test_a_valid_job_id_stages_strictly_inside_the_staging_root(tmp_path: Path, job_id: str) -> None:
    device = _device(tmp_path)
    assert staging_for(device, job_id).parent == device.settings.staging_dir


@pytest.mark.parametrize("version", ["1", "1.10", "2024-06-01", "2.0-rc1"])
def test_versions_in_use_are_valid(version: str) -> None:
    assert ids.check_model_version(version) == version


@pytest.mark.parametrize(("kind", "value"), [("model name", n) for n in [*HOSTILE, "a_b", "-a"]])
def test_hostile_model_names_and_versions_are_refused(kind: str, value: str) -> None:
    with pytest.raises(ids.IdentifierError):
        ids.check_id(kind, value)
    with pytest.raises(ids.IdentifierError):
        ids.check_model_version(value)


def test_safe_join_refuses_a_link_that_leads_out(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "out").symlink_to(tmp_path)
    with pytest.raises(ids.PathEscapeError, match="outside"):
        ids.safe_join(base, "out")


def test_errors_quote_at_most_about_a_hundred_characters() -> None:
    with pytest.raises(ids.IdentifierError) as caught:
        ids.check_job_id("x" * (1 << 20))
    assert len(str(caught.value)) < 300
    with pytest.raises(MessageError) as refused:
        check_ids("l" * (1 << 20), "f1")
    assert len(str(refused.value)) < 400
