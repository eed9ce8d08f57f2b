"""Registered versions side by side on several datasets, so approving a retrained model is informed.

Each version's package is downloaded from the registry (its sha256 checked, and its signature too
when trusted keys are given) and evaluated the edge's way (:func:`evaluate_package`) on every
dataset: its ``test`` split when it has one, else ``train``, flagged, since a version may have been
trained on it (a reviewed dataset holds only ``train/``). Beside AP, AUROC and best F1 the table shows
what the line will see at each version's *shipped* threshold: precision, recall, the false-reject rate
and the counts of false rejects and escapes, so a reviewer sees new false rejects before approving.
Each version is evaluated with the model file a device runs by default (``manifest.precision``: int8
when it passed compile's int8 gates, else fp32), named in the column header.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeinspect_cloud.evaluation.package import evaluate_package
from edgeinspect_cloud.registry import ModelRegistry, manifest_from_tar

HEADLINE = (
    "image_ap",
    "image_auroc",
    "f1",
    "operating_threshold",
    "operating_precision",
    "operating_recall",
    "operating_false_reject_rate",
    "operating_false_rejects",
    "operating_escapes",
    "dice",
    "iou",
)
COUNTS = frozenset({"operating_false_rejects", "operating_escapes"})
"""Figures that are counts of images, shown without decimals."""
SHOWN_AS = {name: name.removeprefix("operating_") + "@shipped" for name in HEADLINE if "operating_" in name}
"""Table labels: ``recall@shipped`` is the recall at the version's own shipped threshold."""


@dataclass
class DatasetScores:
    """Every version's metrics on one dataset split."""

    dataset: str
    split: str
    images: int
    seen_in_training: bool
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    variants: dict[int, str] = field(default_factory=dict)
    """The model file each version was evaluated with: its package's default precision."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "images": self.images,
            "may_be_training_data": self.seen_in_training,
            "metrics": {str(v): m for v, m in self.metrics.items()},
            "variants": {str(v): variant for v, variant in self.variants.items()},
        }


def pick_split(dataset: Path, split: str | None) -> str:
    """``split`` if given, else ``test`` when the dataset has one, else ``train``."""
    if split:
        return split
    return "test" if (dataset / "test").is_dir() else "train"


def compare_versions(
    registry: ModelRegistry,
    group: str,
    versions: Sequence[int],
    datasets: Sequence[Path],
    *,
    split: str | None = None,
    public_keys: Sequence[Ed25519PublicKey] | None = None,
) -> list[DatasetScores]:
    """Evaluate every version of ``group`` on every dataset; one :class:`DatasetScores` per dataset."""
    results = [
        DatasetScores(str(d), pick_split(d, split), 0, pick_split(d, split) == "train") for d in datasets
    ]
    with tempfile.TemporaryDirectory(prefix="edgeinspect-compare-") as scratch:
        for version in versions:
            mv = registry.get(group, version)
            package = Path(scratch) / mv.registration.package.filename
            registry.store.download(
                mv.registration.package.key, package, expected_sha256=mv.registration.package.sha256
            )
            variant = manifest_from_tar(package).default_variant
            for dataset, result in zip(datasets, results, strict=True):
                _, evaluation = evaluate_package(
                    package, dataset, split=result.split, public_keys=public_keys, int8=variant == "int8"
                )
                result.metrics[version] = {k: float(v) for k, v in evaluation.metrics.items()}
                result.variants[version] = variant
                result.images = len(evaluation.ids)
    return results


def format_comparison(group: str, versions: Sequence[int], results: Sequence[DatasetScores]) -> str:
    """A table per dataset: metric, each version's value, and the change from the first version."""
    lines = []
    for result in results:
        note = "  (train split: a version may have trained on it)" if result.seen_in_training else ""
        lines.append(f"{result.dataset} [{result.split}, {result.images} images]{note}")
        columns = [
            f"{group} v{v}" + (f" ({result.variants[v]})" if v in result.variants else "") for v in versions
        ]
        header = ["metric", *columns, f"change v{versions[0]}->v{versions[-1]}"]
        rows = [header]
        names = [m for m in HEADLINE if all(m in result.metrics[v] for v in versions)]
        for name in names:
            values = [result.metrics[v][name] for v in versions]
            shape = ".0f" if name in COUNTS else ".3f"
            change = f"{values[-1] - values[0]:+{shape}}"
            rows.append([SHOWN_AS.get(name, name), *(f"{x:{shape}}" for x in values), change])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines += [
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
