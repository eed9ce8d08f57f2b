"""The quality engineer's threshold policy, from ``pipeline run`` to the signed manifest to
``registry compare``: two versions of one tiny classifier, one trained for a recall target, one for no
false rejects; the comparison shows precision, recall and false rejects at each one's shipped threshold.

Quick mode, classifier only, 48x128 frames and two epochs: the figures are not the point, the
plumbing is (the policy chosen on validation is the one recorded and the one evaluated on test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core.package import load_public_keys, unpack_package, write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.registry import ModelRegistry

pytestmark = pytest.mark.slow

POLICIES = {1: "target-recall:0.99", 2: "max-false-reject:0"}


def test_the_policy_is_recorded_in_the_manifest_and_compare_shows_figures_at_the_shipped_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "line"
    write_dataset(dataset, count=40, defect_ratio=0.4, seed=3, height=128, width=48, test_fraction=0.25)
    private_key, public_key = write_keypair(tmp_path / "keys")
    registry_url = f"file://{tmp_path / 'registry'}"
    common = ["--dataset", str(dataset), "--task", "classification", "--quick", "--epochs", "2", "--no-int8",
              "--no-progress", "--gate-min-ap", "0", "--gate-min-recall", "0", "--registry", registry_url,
              "--key", str(private_key), "--by", "ci"]  # fmt: skip

    assert main(["pipeline", "run", *common, "--out", str(tmp_path / "bad"), "--threshold-policy", "f2"]) == 1
    assert "unknown threshold policy 'f2'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists(), "a typo costs no training"

    for version, policy in POLICIES.items():
        out = tmp_path / f"v{version}"
        assert main(["pipeline", "run", *common, "--out", str(out), "--threshold-policy", policy]) == 0
    capsys.readouterr()

    registry = ModelRegistry.open(registry_url)
    keys = load_public_keys(public_key)
    shipped: dict[int, float] = {}
    defaults: dict[int, str] = {}
    for version, policy in POLICIES.items():
        registration = registry.get("defect-cls", version).registration
        package = tmp_path / f"v{version}.tar.gz"
        registry.store.download(
            registration.package.key, package, expected_sha256=registration.package.sha256
        )
        _, manifest = unpack_package(package, tmp_path / f"v{version}-unpacked", keys)
        point = manifest.operating_point
        assert point is not None and point.policy == policy and point.split == "validation"
        assert point.threshold == manifest.thresholds.image
        assert point.defective > 0 and point.images > point.defective
        if version == 1:
            assert point.met and point.recall is not None and point.recall >= 0.99
        elif point.met:
            assert point.false_rejects == 0 and point.false_reject_rate == 0.0
        shipped[version] = manifest.thresholds.image
        defaults[version] = manifest.default_variant
        assert manifest.precision is not None and [g.set for g in manifest.precision.gates] in (
            ["validation", "shifted"],
            [],  # no int8 built
        )
        trained = json.loads(
            (tmp_path / f"v{version}" / "train" / "classification" / "result.json").read_text()
        )
        assert trained["operating_point"]["policy"] == policy
        assert trained["config"]["threshold_policy"] == policy

    compare = ["registry", "compare", "defect-cls", "1", "2", "--dataset", str(dataset),
               "--registry", registry_url, "--trusted-keys", str(public_key)]  # fmt: skip
    assert main([*compare, "--json"]) == 0
    (on_test,) = json.loads(capsys.readouterr().out)["datasets"]
    assert on_test["split"] == "test"
    assert on_test["variants"] == {str(v): d for v, d in defaults.items()}  # what a device runs by default
    for version in POLICIES:
        figures = on_test["metrics"][str(version)]
        assert figures["operating_threshold"] == pytest.approx(shipped[version])
        for name in ("operating_precision", "operating_recall", "operating_false_reject_rate"):
            assert 0.0 <= figures[name] <= 1.0, name
        good = figures["images"] - figures["defective"]
        assert figures["operating_false_rejects"] == pytest.approx(
            figures["operating_false_reject_rate"] * good
        )

    assert main(compare) == 0
    table = capsys.readouterr().out
    for label in ("image_ap", "image_auroc", "threshold@shipped", "precision@shipped", "recall@shipped",
                  "false_reject_rate@shipped", "false_rejects@shipped", "escapes@shipped"):  # fmt: skip
        assert f"  {label} " in table, label
