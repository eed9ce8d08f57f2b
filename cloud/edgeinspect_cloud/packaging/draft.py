"""A package draft: everything a signed package holds except its version number.

The registry hands out version numbers at registration, and the number is inside the signed manifest
(and the file name), so the package is built *for* a number, possibly more than once when another
registration takes the number first. A draft folder keeps what is needed to build it again for any
number, and can travel between pipeline steps (or containers)::

    draft/draft.json        the manifest with version "0" (files and golden filled at build time)
    draft/model.onnx        fp32 model (contract, optimised)
    draft/model.int8.onnx   optional static int8 model (only one that passed compile's int8 gates)
    draft/golden-input.npy  the smoke-test input (one preprocessed validation image, uint8 NCHW)

Golden outputs are computed when the package is built, by ONNX Runtime on ``model.onnx`` exactly as
the device's smoke test will run it, so what the device compares against is what this runtime says.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    Framework,
    InputSpec,
    Manifest,
    OperatingPoint,
    OutputSpec,
    Precision,
    Thresholds,
    TilingHint,
    build_package,
    utc_now,
)
from pydantic import JsonValue

from edgeinspect_cloud.compile.runtime import open_session

DRAFT_FILE = "draft.json"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
GOLDEN_FILE = "golden-input.npy"
PLACEHOLDER_VERSION = "0"


def precision_from_report(compiled: Mapping[str, Any]) -> Precision | None:
    """The package's precision record from a ``compile.json`` (``None`` when compile predates it)."""
    record = compiled.get("precision")
    if record is None:
        return None
    try:
        return Precision.model_validate(record)
    except ValueError as exc:
        raise PackageError(
            f"compile.json has an invalid precision record: {exc}", hint="re-run compile"
        ) from exc


@dataclass(frozen=True)
class PackageDraft:
    """A draft folder (see the module docstring); build signed packages from it with :meth:`build`."""

    folder: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def int8_model_path(self) -> Path | None:
        path = self.folder / INT8_MODEL_FILE
        return path if path.is_file() else None

    @property
    def golden_input(self) -> npt.NDArray[np.uint8]:
        golden: npt.NDArray[np.uint8] = np.load(self.folder / GOLDEN_FILE, allow_pickle=False)
        return golden

    @classmethod
    def create(
        cls,
        folder: str | Path,
        *,
        name: str,
        task: str,
        framework: Framework,
        input_spec: InputSpec,
        outputs: list[OutputSpec],
        thresholds: Thresholds,
        metrics: Mapping[str, float],
        dataset_fingerprint: str,
        model_path: str | Path,
        golden_input: npt.NDArray[np.uint8],
        int8_model_path: str | Path | None = None,
        baseline: dict[str, JsonValue] | None = None,
        operating_point: OperatingPoint | None = None,
        precision: Precision | None = None,
        tiling: TilingHint | None = None,
    ) -> PackageDraft:
        """Write a draft folder (replacing any draft there) and return it; validates the manifest now.

        ``precision`` (compile's decision, ``compile.json``'s ``precision``) says which file a device
        loads by default; int8 is refused as the default when no int8 model is given. ``tiling``
        tells devices how to tile frames larger than the model's input (``docs/model-contract.md``).
        """
        if precision is not None and precision.default == "int8" and int8_model_path is None:
            raise PackageError(
                "precision.default is int8 but no int8 model was given",
                hint="package the compile step's model.int8.onnx, or record precision default fp32",
            )
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        for stale in (MODEL_FILE, INT8_MODEL_FILE, GOLDEN_FILE, DRAFT_FILE):
            (target / stale).unlink(missing_ok=True)
        manifest = Manifest.model_validate(
            {
                "name": name,
                "version": PLACEHOLDER_VERSION,
                "task": task,
                "framework": framework,
                "created_at": utc_now(),
                "input": input_spec,
                "outputs": outputs,
                "thresholds": thresholds,
                "metrics": {k: float(v) for k, v in metrics.items() if np.isfinite(v)},
                "dataset_fingerprint": dataset_fingerprint,
                "baseline": baseline,
                "operating_point": operating_point,
                "precision": precision,
                "tiling": tiling,
            }
        )
        shutil.copyfile(model_path, target / MODEL_FILE)
        if int8_model_path is not None:
            shutil.copyfile(int8_model_path, target / INT8_MODEL_FILE)
        np.save(target / GOLDEN_FILE, np.ascontiguousarray(golden_input), allow_pickle=False)
        (target / DRAFT_FILE).write_bytes(manifest.to_json_bytes())
        return cls(folder=target, manifest=manifest)

    @classmethod
    def load(cls, folder: str | Path) -> PackageDraft:
        """Open a draft folder written by :meth:`create`."""
        target = Path(folder)
        path = target / DRAFT_FILE
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PackageError(
                f"cannot read package draft {path}: {exc.strerror or exc}",
                hint="run the package step (edgeinspect pipeline run --steps package) first",
            ) from exc
        draft = cls(folder=target, manifest=Manifest.from_json_bytes(data, source=str(path)))
        for needed in (draft.model_path, target / GOLDEN_FILE):
            if not needed.is_file():
                raise PackageError(
                    f"package draft {target} lacks {needed.name}", hint="re-run the package step"
                )
        return draft

    def golden_outputs(self) -> dict[str, npt.NDArray[np.float32]]:
        """What ONNX Runtime's CPU provider answers for the golden input, per model output name."""
        session = open_session(self.model_path)
        names = [output.name for output in session.get_outputs()]
        values = session.run(names, {session.get_inputs()[0].name: self.golden_input})
        declared = {spec.name for spec in self.manifest.outputs}
        return {n: np.asarray(v, np.float32) for n, v in zip(names, values, strict=True) if n in declared}

    def build(self, version: int | str, private_key: Ed25519PrivateKey, out_dir: str | Path) -> Path:
        """Build and sign ``{name}-{version}.tar.gz`` in ``out_dir`` and return its path."""
        data: dict[str, Any] = json.loads(self.manifest.to_json_bytes())
        data |= {"version": str(version), "created_at": utc_now().isoformat()}
        manifest = Manifest.model_validate(data)
        golden = self.golden_outputs()
        if not golden:
            raise PackageError(
                f"the model's outputs do not include any declared in the manifest {self.manifest.outputs}",
                hint="the model and its spec disagree; re-run compile",
            )
        return build_package(
            out_dir,
            manifest,
            self.model_path,
            self.golden_input,
            golden,
            private_key,
            int8_model_path=self.int8_model_path,
        )
