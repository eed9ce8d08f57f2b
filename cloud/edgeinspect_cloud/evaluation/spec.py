"""The part of a manifest that evaluation needs, so a bare ONNX file can be evaluated before packaging.

A :class:`ModelSpec` is the task, the ``input`` (preprocessing), the ``outputs`` and, once chosen, the
``thresholds``, all as the core manifest types (:mod:`edgeinspect.core.package`), never redefined. A
training run writes one as ``model_spec.json`` beside ``model.onnx``; a package's ``manifest.json``
parses as one too (its other fields are ignored), so ``evaluate`` treats both the same.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeinspect.core.package import InputSpec, Manifest, OperatingPoint, OutputSpec, Thresholds
from edgeinspect.core.postprocess import CLASSIFICATION_MEANINGS, SEGMENTATION_MEANINGS
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeinspect_cloud.errors import EvaluationError


class ModelSpec(BaseModel):
    """Task, input, outputs and (optional) thresholds of one model, as its manifest will say."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task: str = Field(pattern="^(classification|segmentation|multitask|anomaly)$")
    input: InputSpec
    outputs: list[OutputSpec] = Field(min_length=1)
    thresholds: Thresholds | None = None
    operating_point: OperatingPoint | None = None
    """How ``thresholds.image`` was chosen and its validation figures (training writes it)."""

    @property
    def answer(self) -> OutputSpec:
        """The output that carries the task's answer (the first with a meaning the task understands).

        A multi-task model's answer is its image score (the classification output); its mask is
        :attr:`mask_output`.
        """
        wanted = SEGMENTATION_MEANINGS if self.task == "segmentation" else CLASSIFICATION_MEANINGS
        return self._first(wanted)

    @property
    def mask_output(self) -> OutputSpec | None:
        """The output holding the mask (a segmenter's answer, a multi-task model's second output)."""
        if self.task == "classification":
            return None
        return self._first(SEGMENTATION_MEANINGS)

    def _first(self, wanted: tuple[str, ...]) -> OutputSpec:
        for output in self.outputs:
            if output.meaning in wanted:
                return output
        raise EvaluationError(
            f"a {self.task} model needs an output meaning one of {list(wanted)}, "
            f"got {[o.meaning for o in self.outputs]}",
            hint="fix the outputs in the spec or manifest",
        )

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ModelSpec:
        """The evaluation-relevant part of a package manifest."""
        return cls(
            task=manifest.task,
            input=manifest.input,
            outputs=manifest.outputs,
            thresholds=manifest.thresholds,
            operating_point=manifest.operating_point,
        )

    @classmethod
    def read(cls, path: str | Path) -> ModelSpec:
        """Parse a ``model_spec.json`` or a ``manifest.json``; ``EvaluationError`` names the bad field."""
        source = Path(path)
        try:
            raw = json.loads(source.read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except OSError as exc:
            raise EvaluationError(
                f"cannot read spec {source}: {exc.strerror or exc}", hint="check the path"
            ) from exc
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"spec {source} is not valid JSON: {exc}", hint="check the file") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            raise EvaluationError(
                f"spec {source} is invalid: {problems}", hint="write it with ModelSpec.write"
            ) from exc

    def write(self, path: str | Path) -> Path:
        """Write the spec as sorted, indented JSON and return the path."""
        target = Path(path)
        target.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        return target
