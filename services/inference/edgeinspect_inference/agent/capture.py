"""``CaptureData``: hand a prediction's inputs and outputs to the capture flow, tracking each id's status.

A capture is accepted at once (``IN_PROGRESS``) and written on a background thread, then marked
``SUCCESS`` or ``FAILURE``. With Redis configured, an image input (one image, 3 channels, NCHW or
NHWC; uint8, or floating-point raw 0..255 pixels as stock SageMaker Edge clients send) becomes a
:class:`~edgeinspect.core.messages.Capture` on ``ei:capture`` (what the uploader syncs), judged with
the model's manifest when the model is loaded. Every tensor as sent (any names, any dtype) rides
along as ``input-<name>.npy``/``output-<name>.npy`` and the auxiliary data as ``auxiliary.json``
(:mod:`edgeinspect.core.attachments`), stored beside the image. Every capture also leaves a
``capture_data`` event on ``ei:events``. Without Redis a capture fails, saying so.

Waiting captures are bounded (``max_pending`` and ``max_pending_bytes``): while Redis is slow, a
capture beyond the bound is refused with RESOURCE_EXHAUSTED (retry later) instead of growing memory.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from edgeinspect.core import attachments
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.messages import Capture, Event, Prediction, StreamRecord, now_ns
from edgeinspect.core.names import capture_stream, events_stream
from edgeinspect.core.observability import get_logger

from edgeinspect_inference.agent.errors import CaptureExistsError, InvalidInputError, OverloadedError, clip
from edgeinspect_inference.agent.loader import LoadedModel
from edgeinspect_inference.agent.shadow import image_scores

log = get_logger(__name__)
Status = Literal["IN_PROGRESS", "SUCCESS", "FAILURE"]
SERVICE = "edgeinspect-agent"


class RecordSink(Protocol):
    """Where capture records go (``Streams`` satisfies it)."""

    def add(self, stream: str, record: StreamRecord) -> str: ...


@dataclass(frozen=True)
class AuxiliaryData:
    """One ``AuxilaryData`` of the request: kept as sent, stored in ``auxiliary.json``."""

    role: str
    name: str
    encoding: str
    data: bytes

    def to_json(self) -> dict[str, object]:
        """JSON payloads inline (when they parse), anything else base64."""
        body: dict[str, object] = {"role": self.role, "name": self.name, "encoding": self.encoding}
        if self.encoding == "JSON":
            try:
                body["json"] = json.loads(self.data)
                return body
            except (ValueError, UnicodeDecodeError):
                pass
        body["base64"] = base64.b64encode(self.data).decode("ascii")
        return body


@dataclass(frozen=True)
class CaptureRequest:
    """One ``CaptureData`` call, with arrays already copied out of any shared memory."""

    capture_id: str
    model_name: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    auxiliary: list[AuxiliaryData] = field(default_factory=list)
    ts_ns: int = field(default_factory=now_ns)

    @property
    def nbytes(self) -> int:
        arrays = [*self.inputs.values(), *self.outputs.values()]
        return sum(a.nbytes for a in arrays) + sum(len(a.data) for a in self.auxiliary)


def as_hwc_image(array: np.ndarray) -> np.ndarray | None:
    """The single RGB image in ``array`` as HWC uint8, or ``None`` if it is not one.

    Floating-point arrays count when they hold raw pixels (0..255, rounded): what stock clients send.
    """
    image = array[0] if array.ndim == 4 and array.shape[0] == 1 else array
    if image.ndim != 3:
        return None
    if image.shape[0] == 3 and image.shape[2] != 3:
        image = np.transpose(image, (1, 2, 0))
    if image.shape[2] != 3:
        return None
    if image.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 255):
                return None
        return np.ascontiguousarray(np.rint(image).astype(np.uint8))
    return np.ascontiguousarray(image) if image.dtype == np.uint8 else None


def attachment_files(request: CaptureRequest) -> dict[str, bytes]:
    """``input-<name>.npy``/``output-<name>.npy`` per tensor and ``auxiliary.json``, names made safe."""
    files: dict[str, bytes] = {}
    for role, arrays in (("input", request.inputs), ("output", request.outputs)):
        for name, array in arrays.items():
            stem = f"{role}-{attachments.safe_name(name)}"
            unique, suffix = stem, 1
            while f"{unique}.npy" in files:
                suffix += 1
                unique = f"{stem}-{suffix}"
            files[f"{unique}.npy"] = attachments.npy_bytes(array)
    if request.auxiliary:
        body = [aux.to_json() for aux in request.auxiliary]
        files["auxiliary.json"] = json.dumps(body, sort_keys=True).encode("utf-8")
    return files


class CaptureStore:
    """Accepts captures, writes them off the request path, and remembers the last ``max_ids`` statuses."""

    def __init__(
        self,
        sink: RecordSink | None,
        lookup: Callable[[str], LoadedModel | None],
        line: str,
        max_ids: int,
        *,
        max_pending: int = 64,
        max_pending_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._sink = sink
        self._lookup = lookup
        self._line = line
        self._max_ids = max_ids
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._pending = 0
        self._pending_bytes = 0
        self._status: OrderedDict[str, Status] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture")

    def submit(self, request: CaptureRequest) -> None:
        """Accept a capture (``IN_PROGRESS``); ``CaptureExistsError`` if the id was used before."""
        if not request.capture_id:
            raise InvalidInputError("capture_id is empty; give every capture a unique id")
        size = request.nbytes
        with self._lock:
            if request.capture_id in self._status:
                raise CaptureExistsError(f"capture {clip(request.capture_id)!r} was already submitted")
            if self._pending >= self._max_pending or self._pending_bytes + size > self._max_pending_bytes:
                raise OverloadedError(
                    f"capture queue is full ({self._pending} captures, {self._pending_bytes} bytes "
                    "waiting for Redis); this capture was not taken",
                    hint="Redis is slow or down: retry the same capture_id later",
                )
            self._pending += 1
            self._pending_bytes += size
            self._status[request.capture_id] = "IN_PROGRESS"
            while len(self._status) > self._max_ids:
                self._status.popitem(last=False)
        self._executor.submit(self._write, request)

    def status(self, capture_id: str) -> Status | None:
        """The capture's status, or ``None`` if this agent never saw (or already forgot) the id."""
        with self._lock:
            return self._status.get(capture_id)

    def _set(self, capture_id: str, status: Status) -> None:
        with self._lock:
            if capture_id in self._status:
                self._status[capture_id] = status

    def _write(self, request: CaptureRequest) -> None:
        try:
            self._write_once(request)
        finally:
            with self._lock:
                self._pending -= 1
                self._pending_bytes -= request.nbytes

    def _write_once(self, request: CaptureRequest) -> None:
        try:
            if self._sink is None:
                raise EdgeInspectError(
                    "no capture destination", hint="set EI_REDIS_URL to enable CaptureData"
                )
            stored = self._write_capture(self._sink, request)
            detail = self._detail(request, stored)
            self._sink.add(events_stream(), Event.new("capture_data", SERVICE, line=self._line, **detail))
        except Exception as exc:  # a capture must never crash the agent; its status says it failed
            log.warning(
                "capture_failed", capture_id=request.capture_id, model=request.model_name, error=str(exc)
            )
            self._set(request.capture_id, "FAILURE")
            return
        self._set(request.capture_id, "SUCCESS")

    def _write_capture(self, sink: RecordSink, request: CaptureRequest) -> bool:
        """Write the image capture if the first input is an image; return whether one was written."""
        image = next((as_hwc_image(a) for a in request.inputs.values()), None)
        if image is None:
            return False
        verdict, score, predictions, error = self._judge(request)
        height, width, channels = image.shape
        record = Capture(
            frame_id=request.capture_id,
            line=self._line,
            ts_ns=request.ts_ns,
            encoding="raw",
            height=height,
            width=width,
            channels=channels,
            data=image.tobytes(),
            verdict=verdict,
            score=score,
            predictions=predictions,
            reasons=["capture_data"],
            error=error,
            source=clip(f"agent:{request.model_name}", 200),
            attachments=attachments.pack(attachment_files(request)),
        )
        sink.add(capture_stream(), record)
        return True

    def _judge(
        self, request: CaptureRequest
    ) -> tuple[Literal["ok", "defect", "error"], float, list[Prediction], str]:
        """Score the outputs with the loaded model's manifest (the same rule the shadow comparison uses)."""
        model = self._lookup(request.model_name)
        if model is None:
            missing = f"model {clip(request.model_name)!r} is not loaded; outputs not interpreted"
            return "error", 0.0, [], missing
        outputs = dict(request.outputs)
        expected = model.manifest.outputs[0].name
        if expected not in outputs and len(outputs) == 1:  # stock clients name tensors as they like
            outputs = {expected: next(iter(outputs.values()))}
        try:
            score = float(image_scores(model.manifest, outputs)[0])
        except (KeyError, ValueError, IndexError) as exc:
            return "error", 0.0, [], f"outputs do not match model {model.ref}: {exc}"
        threshold = model.manifest.thresholds.image
        label: Literal["ok", "defect"] = "defect" if score >= threshold else "ok"
        # A multi-task model's first output is its image score (the manifest says so): a classification.
        # An anomaly model's is too, but the worker labels its verdict a segmentation (it has a mask).
        task: Literal["classification", "segmentation"] = (
            "segmentation" if model.manifest.task in ("segmentation", "anomaly") else "classification"
        )
        prediction = Prediction(model.name, model.version, task, label, score, threshold, 0.0)
        return label, score, [prediction], ""

    def _detail(self, request: CaptureRequest, stored: bool) -> dict[str, Any]:
        def describe(arrays: Mapping[str, np.ndarray]) -> list[dict[str, object]]:
            return [
                {"name": clip(n), "dtype": str(a.dtype), "shape": list(a.shape)} for n, a in arrays.items()
            ]

        return {
            "capture_id": clip(request.capture_id),
            "model": clip(request.model_name),
            "inputs": describe(request.inputs),
            "outputs": describe(request.outputs),
            "auxiliary": [
                {"role": a.role, "name": clip(a.name), "encoding": a.encoding, "bytes": len(a.data)}
                for a in request.auxiliary
            ],
            "stream": capture_stream() if stored else "",
        }

    def close(self) -> None:
        """Finish pending writes."""
        self._executor.shutdown(wait=True)
