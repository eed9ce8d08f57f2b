"""Registration, approval, rejection and listing, through the API and the ``edgeinspect registry`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import load_private_key, write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    ModelRegistry,
    RegistryError,
    VersionNotFoundError,
)

from tests.unit.cloud.packaging_helpers import tiny_package


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    private_path, _ = write_keypair(tmp_path / "keys")
    return load_private_key(private_path)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry.open((tmp_path / "registry").as_uri())


def _register(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path, group: str = "defect-cls"
) -> int:
    mv = registry.register(
        group, lambda n: tiny_package(tmp_path / f"{group}-{n}", key, group, n), created_by="ci"
    )
    return mv.version


def test_a_new_version_waits_for_approval_with_its_provenance(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    version = _register(registry, key, tmp_path)
    mv = registry.get("defect-cls", version)
    assert (mv.version, mv.status, mv.decided) == (1, PENDING, None)
    reg = mv.registration
    assert reg.task == "classification" and reg.framework.name == "torch"
    assert reg.metrics == {"image_ap": 0.9, "f1": 0.8}
    assert reg.dataset_fingerprint.startswith("sha256:")
    assert reg.package.filename == "defect-cls-1.tar.gz"
    assert reg.package.url == registry.store.url_for("groups/defect-cls/packages/defect-cls-1.tar.gz")
    assert (
        registry.store.get_bytes(reg.package.key)
        == (tmp_path / "defect-cls-1" / "defect-cls-1.tar.gz").read_bytes()
    )


def test_approve_then_reject_keeps_who_when_and_why(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    _register(registry, key, tmp_path)
    _register(registry, key, tmp_path)
    registry.approve("defect-cls", 1, by="alice", comment="good on line 3")
    assert registry.latest("defect-cls").version == 1  # type: ignore[union-attr]
    registry.approve("defect-cls", 2, by="alice")
    mv = registry.reject("defect-cls", 2, by="bob", comment="drifts on dark parts")
    assert [c.status for c in mv.history] == [PENDING, APPROVED, REJECTED]
    assert (mv.history[-1].by, mv.history[-1].comment) == ("bob", "drifts on dark parts")
    assert mv.history[1].at <= mv.history[2].at
    assert registry.latest("defect-cls").version == 1  # type: ignore[union-attr]
    assert registry.latest("defect-cls", None).version == 2  # type: ignore[union-attr]
    assert registry.latest("defect-seg") is None


def test_approval_is_refused_when_the_package_never_arrived(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    _register(registry, key, tmp_path)
    registry.store.delete("groups/defect-cls/packages/defect-cls-1.tar.gz")
    with pytest.raises(RegistryError, match="is missing"):
        registry.approve("defect-cls", 1)
    assert registry.get("defect-cls", 1).status == PENDING


def test_a_package_built_for_another_name_or_version_is_refused(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError, match="being registered as defect-cls version 1"):
        registry.register("defect-cls", lambda n: tiny_package(tmp_path / "x", key, "defect-cls", n + 4))
    with pytest.raises(RegistryError, match="invalid model group"):
        registry.register("Bad Name", lambda n: tiny_package(tmp_path / "y", key, "defect-cls", n))


def test_unknown_versions_and_bad_statuses_are_clear_errors(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    with pytest.raises(VersionNotFoundError, match="register a model first"):
        registry.get("defect-cls", 1)
    _register(registry, key, tmp_path)
    with pytest.raises(VersionNotFoundError, match=r"known versions: \[1\]"):
        registry.approve("defect-cls", 9)
    with pytest.raises(RegistryError, match="cannot set status"):
        registry.set_status("defect-cls", 1, PENDING)


def test_groups_are_listed_and_numbered_independently(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    assert _register(registry, key, tmp_path, "defect-cls") == 1
    assert _register(registry, key, tmp_path, "defect-seg") == 1
    assert _register(registry, key, tmp_path, "defect-cls") == 2
    assert registry.groups() == ["defect-cls", "defect-seg"]
    assert registry.next_version("defect-cls") == 3


def test_cli_lists_shows_approves_and_rejects(
    registry: ModelRegistry, key: Ed25519PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(registry, key, tmp_path, "defect-cls")
    _register(registry, key, tmp_path, "defect-seg")
    url = ["--registry", registry.url]

    assert main(["registry", "approve", "defect-cls", "1", "--by", "alice", "--comment", "ok", *url]) == 0
    assert "defect-cls version 1 is now Approved (by alice" in capsys.readouterr().out
    assert main(["registry", "reject", "defect-seg", "1", "--by", "bob", *url]) == 0
    capsys.readouterr()

    assert main(["registry", "list", *url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["GROUP", "VERSION", "STATUS", "TASK", "CREATED", "METRICS", "SIZE"]
    assert table[1].split()[:3] == ["defect-cls", "1", "Approved"]
    assert table[2].split()[:3] == ["defect-seg", "1", "Rejected"]

    assert main(["registry", "list", "--status", "Approved", "--json", *url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["group"], v["version"], v["status"]) for v in listed] == [("defect-cls", 1, "Approved")]

    assert main(["registry", "show", "defect-cls", "1", "--json", *url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["status"] for h in shown["history"]] == [PENDING, APPROVED]
    assert shown["package"]["sha256"] == registry.get("defect-cls", 1).registration.package.sha256

    assert main(["registry", "show", "defect-cls", "1", *url]) == 0
    assert "history" in capsys.readouterr().out


def test_cli_reports_a_missing_version_without_a_traceback(
    registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "show", "defect-cls", "3", "--registry", registry.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: defect-cls has no version 3") and "hint:" in err


def test_keys_generate_writes_a_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert Path(last["private_key"]).stat().st_mode & 0o777 == 0o600
    assert Path(last["public_key"]).is_file() and len(last["key_id"]) == 16
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 1  # never overwrites a key
    assert "already exists" in capsys.readouterr().err
