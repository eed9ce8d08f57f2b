"""Run ONNX models the way the edge does (ONNX Runtime, CPU provider), in batches, and time them."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgeinspect_cloud.compile.errors import CompileError

PROVIDERS = ["CPUExecutionProvider"]


def open_session(path: str | Path, *, threads: int | None = None) -> ort.InferenceSession:
    """A CPU session with every ORT optimisation on (as the edge agent runs it); ``threads`` caps intra-op."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise CompileError(
            f"ONNX Runtime cannot load {path}: {exc}", hint="check the exported model"
        ) from exc


def predict(
    session: ort.InferenceSession, images: npt.NDArray[np.uint8], *, batch: int = 8
) -> npt.NDArray[np.float32]:
    """Run ``images`` (uint8 NCHW) through the single-input, single-output session, ``batch`` at a time."""
    name = session.get_inputs()[0].name
    outputs = [
        np.asarray(session.run(None, {name: images[start : start + batch]})[0], dtype=np.float32)
        for start in range(0, len(images), batch)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def predict_all(
    session: ort.InferenceSession, images: npt.NDArray[np.uint8], *, batch: int = 8
) -> list[npt.NDArray[np.float32]]:
    """Every output of a single-input session for ``images``, ``batch`` at a time, in output order."""
    name = session.get_inputs()[0].name
    parts = [
        session.run(None, {name: images[start : start + batch]}) for start in range(0, len(images), batch)
    ]
    count = len(session.get_outputs())
    return [np.concatenate([np.asarray(p[i], dtype=np.float32) for p in parts]) for i in range(count)]


def latency_ms(
    session: ort.InferenceSession, image: npt.NDArray[np.uint8], *, runs: int, warmup: int = 3
) -> float:
    """Median wall time of one batch-1 inference, in milliseconds (a figure to report, never to assert)."""
    name = session.get_inputs()[0].name
    feed = {name: image[:1]}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def cpu_int8_features() -> dict[str, Any]:
    """The CPU's int8 dot-product support, recorded beside int8 figures (they depend on it, see optimize)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    return {"machine": platform.machine(), **{flag: flag in flags for flag in wanted}}


def ort_version() -> str:
    """The ONNX Runtime version that produced a figure."""
    return str(ort.__version__)
