"""Judging one frame: parse, decode, preprocess per manifest, both models concurrently, postprocess.

:class:`FrameJudge` turns a stream entry into a :class:`Judged` (its result without the final
``e2e_ms``, which the committer stamps at write time). Everything that is wrong with *the frame* or
*a model* becomes a result with the reason, never silence; only an unreachable agent escapes as
:class:`AgentUnavailable`, so the frame stays pending and is judged again once the agent is back
(turning an agent restart into error results would lose the frames). A missing model escapes as
:class:`~.waiting.ModelPending` for at most the wait bound (:mod:`.waiting`), then becomes the
outcome ``no_model``: not an error, the frame was simply not inspected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt
from edgeinspect.core import images
from edgeinspect.core.errors import AgentError, EdgeInspectError, ImageError, MessageError
from edgeinspect.core.messages import Frame, Prediction, Result
from edgeinspect.core.preprocess import Preprocessed, preprocess
from edgeinspect.core.streams import Entry
from edgeinspect.core.telemetry import ImageFeatures, image_features
from edgeinspect.core.tiling import TilePlan

from edgeinspect_inference.worker.catalog import ModelCatalog, Target
from edgeinspect_inference.worker.frame_shape import ShapeCheck
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.postprocess import ModelVerdict
from edgeinspect_inference.worker.verdict import VerdictRule, decide
from edgeinspect_inference.worker.waiting import ModelPending, ModelWait


class AgentUnavailable(EdgeInspectError):
    """The agent cannot be reached (or timed out): the frame is retried later, not judged as an error."""


class ModelProblem(EdgeInspectError):
    """One model could not judge this frame (bad response, inference error); ``reason`` labels metrics."""

    def __init__(self, message: str, *, reason: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class ModelMissing(EdgeInspectError):
    """The alias vanished between the catalog's last read and the call: judged as if never loaded."""


class StaleTarget(EdgeInspectError):
    """The alias moved to a version that needs other preprocessing: preprocess again and retry once."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one model (and its shadow, when the agent ran one) said about a frame.

    ``more``: the further verdicts of the same call (a multi-task model's segmentation verdict).
    """

    alias: str
    primary: ModelVerdict
    shadow: ModelVerdict | None = None
    more: tuple[ModelVerdict, ...] = ()

    @property
    def primaries(self) -> tuple[ModelVerdict, ...]:
        """Every primary verdict of this call, in order."""
        return (self.primary, *self.more)


class ModelCaller(Protocol):
    """Runs one alias on a frame; implemented over the agent client in :mod:`.agentcalls`."""

    def __call__(self, target: Target, pre: Preprocessed, frame_id: str) -> Answer: ...


class TileCaller(Protocol):
    """Runs one alias on a large frame as tiles; implemented in :mod:`.tiles`."""

    def plan(self, target: Target, image: npt.NDArray[np.uint8]) -> TilePlan | None: ...

    def __call__(
        self, target: Target, image: npt.NDArray[np.uint8], plan: TilePlan, frame_id: str
    ) -> Answer: ...


@dataclass(frozen=True, slots=True)
class Judged:
    """A frame's outcome before commit: the frame (None if unparseable), its result and error reasons."""

    entry_id: str
    frame: Frame | None
    result: Result
    reasons: tuple[str, ...] = field(default_factory=tuple)
    features: ImageFeatures | None = None
    """Image features for telemetry (only when the judge computes them and the frame decoded)."""


class FrameJudge:
    """Judges frames of one line with the models behind ``aliases`` (in result order).

    ``multitask_alias``: while the agent serves a model under it, that one model judges every frame
    in one call (both verdicts) and ``aliases`` are neither called nor missed; without it, the
    two-model layout judges as before.
    """

    def __init__(
        self,
        line: str,
        aliases: tuple[str, ...],
        catalog: ModelCatalog,
        call_model: ModelCaller,
        executor: Executor,
        metrics: WorkerMetrics,
        rule: VerdictRule = "any",
        clock_ns: Callable[[], int] = time.time_ns,
        features: bool = False,
        wait: ModelWait | None = None,
        multitask_alias: str | None = None,
        tiler: TileCaller | None = None,
    ) -> None:
        self.line = line
        self.aliases = aliases
        self.multitask_alias = multitask_alias
        self._tiler = tiler
        self._catalog = catalog
        self._call_model = call_model
        self._executor = executor
        self._metrics = metrics
        self._rule = rule
        self._clock_ns = clock_ns
        self._features = features
        self.wait = wait or ModelWait(line, 0.0, metrics.registry)
        self._shapes = ShapeCheck(line, metrics)

    def judge(self, entry: Entry) -> Judged:
        """The outcome for one entry; raises only :class:`AgentUnavailable` and :class:`ModelPending`."""
        try:
            return self._judge(entry)
        except AgentError as exc:  # the catalog could not reach the agent: judge the frame later
            raise AgentUnavailable(f"cannot read the agent's models: {exc}", hint=exc.hint) from exc

    def _judge(self, entry: Entry) -> Judged:
        try:
            frame = entry.parse(Frame)
        except MessageError as exc:
            return self._error(entry, None, "message", f"malformed frame entry: {exc}")
        try:
            image = images.decode(
                frame.data, frame.encoding, height=frame.height, width=frame.width, channels=frame.channels
            )
        except ImageError as exc:
            return self._error(entry, frame, "decode", f"cannot decode frame: {exc}")
        targets = self._targets()
        present = [(alias, t) for alias, t in targets.items() if t is not None]
        missing = [alias for alias, t in targets.items() if t is None]
        self._maybe_hold(missing, everything_missing=not present)
        if not present:
            return self._no_model(entry, frame)
        judged = self._judge_with(entry, frame, image, present, missing)
        if self._features and judged.result.verdict in ("ok", "defect"):
            judged = replace(judged, features=self._image_features(image))
        return judged

    def _targets(self) -> dict[str, Target | None]:
        """The aliases to call for this frame: the multi-task model alone when one is served.

        The alias list the catalog read last decides (no extra agent call per frame); a newly
        deployed multi-task model takes over within the catalog's refresh interval.
        """
        alias = self.multitask_alias
        if alias is not None and self._catalog.serves(alias):
            target = self._catalog.target(alias)
            if target is not None:
                return {alias: target}
        return {alias: self._catalog.target(alias) for alias in self.aliases}

    def _image_features(self, image: npt.NDArray[np.uint8]) -> ImageFeatures | None:
        """Telemetry's image features; a frame too small for them simply has none."""
        try:
            return image_features(image)
        except MessageError:
            return None

    def _judge_with(
        self,
        entry: Entry,
        frame: Frame,
        image: npt.NDArray[np.uint8],
        present: list[tuple[str, Target]],
        missing: list[str],
    ) -> Judged:
        notes = [f"no model loaded for alias {alias}" for alias in missing]
        futures = {alias: self._executor.submit(self._run, t, image, frame.frame_id) for alias, t in present}
        answers: list[Answer] = []
        problems: list[ModelProblem] = []
        unavailable: AgentUnavailable | None = None
        gone: list[str] = []
        for alias, future in futures.items():
            try:
                answer = future.result()
                if answer is None:
                    gone.append(alias)
                    notes.append(f"no model loaded for alias {alias}")
                else:
                    answers.append(answer)
            except AgentUnavailable as exc:
                unavailable = exc
            except ModelProblem as exc:
                problems.append(exc)
                self._metrics.errors.labels(self.line, exc.reason).inc()
        if unavailable is not None:
            raise unavailable
        if gone:  # the agent lost the alias since the catalog's last read (a restart, a removal)
            self._maybe_hold(gone, everything_missing=not answers, force=True)
        if problems:  # a loaded model failed on this frame: the inspection is incomplete
            message = "; ".join([p.message for p in problems] + notes)
            return self._error(entry, frame, problems[0].reason, message, count=False)
        if not answers:
            return self._no_model(entry, frame)
        self.wait.seen(a.alias for a in answers)
        if not gone and not self.wait.returning(missing):
            self.wait.clear()  # every model the line needs answered
        return self._result(entry, frame, answers, notes)

    def _maybe_hold(self, missing: list[str], *, everything_missing: bool, force: bool = False) -> None:
        """Raise :class:`ModelPending` while a needed model may still come back (within the bound).

        Needed: every alias when none is loaded, else the ones that judged frames before (a line that
        was never given a segmenter is not waiting for one). ``force``: the agent just said the alias
        is gone, so it was loaded a moment ago.
        """
        if not missing:
            return
        if not (everything_missing or force or self.wait.returning(missing)):
            return
        if self.wait.hold(missing):
            raise ModelPending(f"waiting for a model for alias {' or '.join(missing)}")

    def _run(self, target: Target, image: npt.NDArray[np.uint8], frame_id: str) -> Answer | None:
        """One alias's answer, or None when the alias turned out to be gone (a note, not an error)."""
        for attempt in (1, 2):
            try:
                return self._answer(target, image, frame_id)
            except ModelMissing:
                return None
            except StaleTarget as exc:
                fresh = self._catalog.target(target.alias)
                if fresh is None:
                    return None
                if attempt == 2:
                    raise ModelProblem(f"{target.alias}: {exc.message}", reason="swap") from exc
                target = fresh
        return None  # pragma: no cover - the loop always returns or raises

    def _answer(self, target: Target, image: npt.NDArray[np.uint8], frame_id: str) -> Answer:
        """The alias's answer: as tiles when the tiler plans some (a large frame), else on the whole
        frame preprocessed per its manifest."""
        plan = None if self._tiler is None else self._tiler.plan(target, image)
        self._shapes.check(target, image.shape[0], image.shape[1], plan, frame_id)
        if self._tiler is not None and plan is not None:
            return self._tiler(target, image, plan, frame_id)
        try:
            pre = preprocess(image, target.manifest.input)
        except ImageError as exc:
            raise ModelProblem(f"{target.alias}: cannot preprocess: {exc}", reason="preprocess") from exc
        return self._call_model(target, pre, frame_id)

    def _result(self, entry: Entry, frame: Frame, answers: list[Answer], notes: list[str]) -> Judged:
        primaries = [verdict for a in answers for verdict in a.primaries]
        predictions: list[Prediction] = [v.prediction for v in primaries]
        predictions += [a.shadow.prediction for a in answers if a.shadow is not None]
        verdict, score = decide(predictions, self._rule)
        # A good part's empty mask says nothing the prediction does not (area 0): skip its PNG.
        masks = [v.mask for v in primaries if v.mask is not None and v.mask.any()]
        result = Result(
            frame_id=frame.frame_id,
            line=self.line,
            ts_ns=frame.ts_ns,
            verdict=verdict,
            score=score,
            predictions=predictions,
            e2e_ms=0.0,
            mask=images.encode_mask(masks[0]) if masks else None,
            error="; ".join(notes),
            source=frame.source,
            part_id=frame.part_id,
        )
        return Judged(entry.id, frame, result)

    def internal_error(self, entry: Entry, exc: Exception) -> Judged:
        """The result of a frame whose judging crashed (a bug): an error saying so, never silence."""
        try:
            frame: Frame | None = entry.parse(Frame)
        except MessageError:
            frame = None
        return self._error(entry, frame, "internal", f"internal error while judging: {exc!r}")

    def _no_model(self, entry: Entry, frame: Frame) -> Judged:
        """Not inspected: no model for any alias, even after the wait bound (a state, not an error)."""
        aliases = " or ".join(self.aliases)
        message = (
            f"waiting for a model: none loaded for alias {aliases} after {self.wait.bound_s:g}s; "
            "deploy one with the model manager"
        )
        result = Result(
            frame_id=frame.frame_id, line=self.line, ts_ns=frame.ts_ns, verdict="no_model", score=0.0,
            predictions=[], e2e_ms=0.0, error=message, source=frame.source,
        )  # fmt: skip
        return Judged(entry.id, frame, result)

    def _error(
        self, entry: Entry, frame: Frame | None, reason: str, message: str, *, count: bool = True
    ) -> Judged:
        if count:
            self._metrics.errors.labels(self.line, reason).inc()
        frame_id = frame.frame_id if frame is not None else _raw_frame_id(entry)
        result = Result(
            frame_id=frame_id,
            line=self.line,
            ts_ns=frame.ts_ns if frame is not None else self._clock_ns(),
            verdict="error",
            score=0.0,
            predictions=[],
            e2e_ms=0.0,
            error=message,
            source=frame.source if frame is not None else "",
            part_id=frame.part_id if frame is not None else "",
        )
        return Judged(entry.id, frame, result, (reason,))


def _raw_frame_id(entry: Entry) -> str:
    """The frame id of an entry too malformed to parse, else its stream entry id (still unique)."""
    raw = entry.fields.get(b"frame_id")
    try:
        return raw.decode("utf-8") if raw else entry.id
    except UnicodeDecodeError:
        return entry.id
