"""Agent latency: bare ONNX Runtime ``session.run`` vs the same model through the agent's unix socket.

For a ResNet18-class classifier and a 4-pool U-Net segmenter (``bench.models``: the real
architectures with seeded random weights, uint8 input, normalisation in the graph), at 224x224 and
the KolektorSDD2 size (232x640; the U-Net pads to 240x640), fp32 and static int8 (QDQ, per-channel
int8 weights, uint8 activations, calibrated on random images), batch 1, it measures p50/p99 of

  (a) ``session.run`` in this process (same session options as the agent),
  (b) a round trip through a real ``edgeinspect-agent`` subprocess over its unix socket, with the
      compatible ``AWS.SageMaker.Edge.Agent/Predict`` and with the extension ``Predict``
      (``AgentClient.predict``: request built, pixels sent as uint8 bytes, outputs decoded),

  (c) what a stock SageMaker Edge client costs: compat ``Predict`` with the metadata copied from
      ``ListModels`` and float32 raw-pixel bytes (4x the bytes, converted to uint8 in the agent), and
      the same from a System V segment (``shmget``, as their C++ example did), beside our own worker's
      path: extension ``Predict`` from a POSIX segment (``ShmSegment``),

  (d) two **probe** models per size (``probe-cls``: the frame's mean; ``probe-seg``: a 232x640 float
      mask), which cost next to nothing, so their round trip through the agent is nearly all
      transport (the fast path's target: <= 0.5 ms p50),
  (e) the worker's fast path (``edgeinspect.core.fastpath``: unix socket, tiny binary header, the
      input in a sealed memfd the agent runs the model on in place; ``fast_transport`` = its round
      trip - the agent's own model time), and a per-call **transport breakdown** (where gRPC's
      transport goes: request encoding, response decoding, shared-memory copies, the empty gRPC
      round trip; and the same pieces of the fast path),

and prints ``agent_overhead_ratio`` = (b) p50 / (a) p50 per row, and ``stock_cost_ratio`` = stock
float32 bytes p50 / extension uint8 bytes p50 (the price of compatibility).

  (d) a row per execution provider this ONNX Runtime build offers (``EI_EXECUTION_PROVIDERS=auto``)
      and per CPU thread layout the agent's tuning would try on this box, bare ``session.run`` in
      alternating blocks, with p50/p99 and the ratio to the CPU provider at ``--threads``; the
      candidate the agent's own selection (``agent.tuning.select``, golden = the CPU answer) keeps is
      marked ``auto``, and the provider the agent subprocess reported in ``ListVersions`` is shown.
      OpenVINO rows appear when ``onnxruntime-openvino`` replaces ``onnxruntime`` in the venv.

Each measured path of (a)-(c) is a callable in :func:`measure_paths`; end to end through Redis
(frame XADD -> result) is ``bench/throughput.py``'s job and plugs in there as one more path. Run from
the repository root:

    .venv/bin/python -m bench.agent_latency            # ~3 minutes on 2 cores
    .venv/bin/python -m bench.agent_latency --quick    # smoke run: 224x224 fp32 only, few iterations

The last line printed is one JSON object with every figure; ``--out`` (default ``bench/out``) gets
``agent_latency/table.md`` and PNG plots (``bench.report``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.agentapi import ext_pb2, sm_pb2
from edgeinspect.core.errors import AgentError
from edgeinspect.core.fastpath import FastPathClient, SealedSegment, fast_socket_path
from edgeinspect.core.observability import percentile
from edgeinspect.core.package import Manifest, build_package, load_private_key, unpack_package, write_keypair
from edgeinspect.core.package import load_public_keys as load_keys
from edgeinspect.core.tensors import POSIX_SEGMENT_MIN, ShmSegment, to_tensor

SIZES = {"224x224": (224, 224), "232x640": (232, 640)}


@dataclass(frozen=True)
class Target:
    """One row of the table: a model at one size and precision, loaded in the agent as ``ref``."""

    model: str  # classifier | segmenter
    size: str
    precision: str  # fp32 | int8
    ref: str
    onnx_path: Path
    shape: tuple[int, int, int, int]


@dataclass
class ProviderRow:
    """One execution provider + thread layout on one target, bare ``session.run``."""

    model: str
    size: str
    precision: str
    provider: str
    threads: str
    p50_ms: float
    p99_ms: float
    ratio_vs_cpu: float
    auto: bool
    rejected: str = ""


@dataclass
class Row:
    model: str
    size: str
    precision: str
    bare_p50_ms: float
    bare_p99_ms: float
    compat_p50_ms: float
    compat_p99_ms: float
    ext_p50_ms: float
    ext_p99_ms: float
    agent_model_p50_ms: float
    transport_p50_ms: float
    transport_p99_ms: float
    agent_overhead_ratio: float
    compat_overhead_ratio: float
    transport_overhead_ratio: float
    stock_f32_p50_ms: float = 0.0
    stock_f32_p99_ms: float = 0.0
    stock_sysv_p50_ms: float = 0.0
    stock_sysv_p99_ms: float = 0.0
    ext_shm_p50_ms: float = 0.0
    ext_shm_p99_ms: float = 0.0
    stock_cost_ratio: float = 0.0
    fast_p50_ms: float = 0.0
    fast_p99_ms: float = 0.0
    fast_transport_p50_ms: float = 0.0
    fast_transport_p99_ms: float = 0.0


def quantize(fp32_path: Path, int8_path: Path, shape: tuple[int, int, int, int], samples: int = 4) -> None:
    """Static QDQ int8: per-channel int8 weights, uint8 activations, MinMax calibration on random images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class RandomImages(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            rng = np.random.default_rng(11)
            self._batches = iter(
                [{"image": rng.integers(0, 256, shape, dtype=np.uint8)} for _ in range(samples)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    quantize_static(
        str(fp32_path),
        str(int8_path),
        RandomImages(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def probe_onnx(height: int, width: int, mask: bool) -> bytes:
    """A model that costs next to nothing: the frame's mean (``probe-cls``) or its per-pixel channel
    mean as a mask (``probe-seg``, a 232x640 float output like a segmenter's). Through the agent, its
    round trip is almost all transport: the figure the fast path is about."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [-1, 3, height, width])
    if mask:
        out = helper.make_tensor_value_info("mask_probability", TensorProto.FLOAT, [-1, 1, height, width])
        reduce = helper.make_node("ReduceMean", ["pixels"], ["sum"], axes=[1], keepdims=1)
    else:
        out = helper.make_tensor_value_info("defect_probability", TensorProto.FLOAT, [-1, 1])
        reduce = helper.make_node("ReduceMean", ["pixels"], ["sum"], axes=[1, 2, 3], keepdims=0)
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        reduce,
        helper.make_node("Mul", ["sum", "scale"], ["scaled"]),
    ]
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255.0])
    if mask:
        nodes.append(helper.make_node("Identity", ["scaled"], [out.name]))
    else:
        shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1])
        nodes.append(helper.make_node("Reshape", ["scaled", "shape"], [out.name]))
    inits = [scale] if mask else [scale, shape]
    graph = helper.make_graph(nodes, "probe", [image], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def build_probes(work: Path, key: Any, sizes: list[str]) -> tuple[list[Target], list[Path]]:
    """Signed packages of the two probe models per size (fp32 only: there is nothing to quantize)."""
    import onnxruntime as ort
    from edgeinspect.core.package import build_package

    from bench.models import _manifest

    targets: list[Target] = []
    packages: list[Path] = []
    for size in sizes:
        height, width = SIZES[size]
        for mask in (False, True):
            kind = "probe-seg" if mask else "probe-cls"
            name = f"bench-{kind}-{size}"
            folder = work / f"{name}-work"
            folder.mkdir(parents=True)
            model_path = folder / "model.onnx"
            model_path.write_bytes(probe_onnx(height, width, mask))
            golden_in = np.random.default_rng(3).integers(0, 256, (1, 3, height, width), dtype=np.uint8)
            session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            golden = dict(zip(names, session.run(names, {"image": golden_in}), strict=True))
            task = "segmentation" if mask else "classification"
            manifest = _manifest(name, task, height, width, "stretch")  # type: ignore[arg-type]
            packages.append(build_package(work / "packages", manifest, model_path, golden_in, golden, key))
            targets.append(Target(kind, size, "fp32", f"{name}:1", model_path, (1, 3, height, width)))
    return targets, packages


def build_targets(
    work: Path, sizes: list[str], int8: bool, probes_only: bool = False
) -> tuple[list[Target], list[Path], Path]:
    """Build, quantize and sign every package; return the targets, the packages and the trusted-keys dir."""
    from bench import models as bench_models

    private_path, public_path = write_keypair(work / "keys", "bench")
    key = load_private_key(private_path)
    trusted = work / "trusted"
    trusted.mkdir()
    (trusted / public_path.name).write_bytes(public_path.read_bytes())
    targets: list[Target] = []
    packages: list[Path] = []
    for size in [] if probes_only else sizes:
        height, width = SIZES[size]
        built = bench_models.build_packages(work / f"base-{size}", key, height, width)
        for kind, base in zip(("classifier", "segmenter"), built, strict=True):
            folder, manifest = unpack_package(
                base.package, work / f"unpacked-{base.name}-{size}", load_keys(trusted)
            )
            shape = (1, 3, base.height, base.width)
            fp32 = folder / "model.onnx"
            int8_path = None
            if int8:
                print(f"quantizing {kind} {size} ...", file=sys.stderr, flush=True)
                int8_path = work / f"{base.name}-{size}.int8.onnx"
                quantize(fp32, int8_path, shape)
            name = f"bench-{'cls' if kind == 'classifier' else 'seg'}-{size}"
            renamed = Manifest.model_validate(
                manifest.model_dump() | {"name": name, "files": {}, "golden": None}
            )
            golden_in, golden_out = _golden(folder, manifest)
            packages.append(
                build_package(work / "packages", renamed, fp32, golden_in, golden_out, key, int8_path)
            )
            targets.append(Target(kind, size, "fp32", f"{name}:1", fp32, shape))
            if int8_path is not None:
                v2 = Manifest.model_validate(renamed.model_dump() | {"version": "2"})
                packages.append(
                    build_package(work / "packages", v2, fp32, golden_in, golden_out, key, int8_path)
                )
                targets.append(Target(kind, size, "int8", f"{name}:2", int8_path, shape))
    probe_targets, probe_packages = build_probes(work, key, sizes)
    return probe_targets + targets, probe_packages + packages, trusted


def _golden(folder: Path, manifest: Manifest) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from edgeinspect.core.package import load_golden

    return load_golden(folder, manifest)


def start_agent(work: Path, trusted: Path, threads: int, spin: bool) -> tuple[subprocess.Popen[bytes], str]:
    """A real agent subprocess on a unix socket, configured like production apart from the paths."""
    socket_dir = Path(tempfile.mkdtemp(prefix="ei-bench-", dir="/tmp"))
    addr = f"unix://{socket_dir / 'agent.sock'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")} | {
        "EI_AGENT_ADDR": addr,
        "EI_MODEL_DIR": str(work / "models"),
        "EI_TRUSTED_KEYS_DIR": str(trusted),
        "EI_INTRA_OP_THREADS": str(threads),
        "EI_ALLOW_SPINNING": "true" if spin else "false",
        "EI_HTTP_PORT": "0",
        "EI_LOG_LEVEL": "WARNING",
    }
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeinspect_inference.agent"], env=env, stdout=log, stderr=log
    )
    log.close()
    with AgentClient(addr) as probe:
        probe.wait_ready(60)
    return proc, addr


def timed_rounds(
    paths: dict[str, Callable[[], Any]], iterations: int, warmup: int, block: int = 5
) -> dict[str, list[float]]:
    """Milliseconds per call for each path, measured in alternating blocks of ``block`` calls.

    Alternating blocks (a few calls of one path, then of the next) keeps a load change on a shared
    machine from landing on one path only; each block starts with one unmeasured call so the previous
    path's idle ONNX Runtime threads (which spin briefly after a run) do not tax the first sample.
    """
    for call in paths.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    while len(samples[next(iter(paths))]) < iterations:
        for name, call in paths.items():
            call()
            for _ in range(min(block, iterations - len(samples[name]))):
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1000.0)
    return samples


def bare_session(onnx_path: Path, threads: int, spin: bool) -> Any:
    """The same session options the agent uses (``agent.session.ModelSession``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])


def measure_paths(target: Target, client: AgentClient, args: argparse.Namespace) -> dict[str, list[float]]:
    """Time each path on the same seeded frame; also collect the agent's own model time per call."""
    frame = np.random.default_rng(5).integers(0, 256, target.shape, dtype=np.uint8)
    session = bare_session(target.onnx_path, args.threads, args.spin)
    in_agent_ms: list[float] = []
    transport_ms: list[float] = []

    def extension() -> None:
        started = time.perf_counter()
        in_agent = client.predict(target.ref, {"image": frame}).latency_ms
        in_agent_ms.append(in_agent)
        transport_ms.append((time.perf_counter() - started) * 1000.0 - in_agent)

    def compat_predict() -> None:
        request = sm_pb2.PredictRequest(name=target.ref, tensors=[to_tensor("image", frame)])
        client.compat.Predict(request, timeout=60)  # the raw SageMaker-compatible stub

    paths: dict[str, Callable[[], Any]] = {
        "bare": lambda: session.run(None, {"image": frame}),
        "compat": compat_predict,
        "ext": extension,
    }
    pixels = frame.astype(np.float32)
    listed = {m.name: m for m in client.compat.ListModels(sm_pb2.ListModelsRequest()).models}
    metadata = listed[target.ref.split(":")[0]].input_tensor_metadatas[0]  # copied as stock clients do
    stock = sm_pb2.PredictRequest(
        name=target.ref, tensors=[sm_pb2.Tensor(tensor_metadata=metadata, byte_data=pixels.tobytes())]
    )
    paths["stock_f32"] = lambda: client.compat.Predict(stock, timeout=60)
    posix = ShmSegment(POSIX_SEGMENT_MIN + os.getpid(), frame.nbytes)
    ref = posix.write(frame)
    paths["ext_shm"] = lambda: client.predict(target.ref, {"image": ref})
    fast_path = fast_socket_path(client.addr)
    fast_client = FastPathClient(fast_path) if fast_path is not None and fast_path.is_socket() else None
    sealed = SealedSegment(max(8 << 20, 4 * frame.nbytes))  # input, then the output area: as the worker
    area = (sealed, -(-frame.nbytes // 64) * 64, sealed.size - (-(-frame.nbytes // 64) * 64))
    fast_transport_ms: list[float] = []

    def fast() -> None:
        assert fast_client is not None
        started = time.perf_counter()
        answer = fast_client.predict(target.ref, {"image": sealed.write(frame)}, output=area)
        fast_transport_ms.append((time.perf_counter() - started) * 1000.0 - answer.latency_ms)

    if fast_client is not None:
        paths["fast"] = fast
    system_v = _sysv_segment(pixels.tobytes())
    if system_v is not None:
        handle = sm_pb2.SharedMemoryHandle(size=pixels.nbytes, offset=0, segment_id=system_v.id)
        by_id = sm_pb2.PredictRequest(
            name=target.ref, tensors=[sm_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=handle)]
        )
        paths["stock_sysv"] = lambda: client.compat.Predict(by_id, timeout=60)
    try:
        samples = timed_rounds(paths, args.iterations, args.warmup)
    finally:
        posix.close()
        if system_v is not None:
            system_v.close()
        if fast_client is not None:
            fast_client.close()
        sealed.close()
    fast_transport_ms = fast_transport_ms[-len(samples.get("fast", [])) :] if "fast" in samples else []
    return samples | {"in_agent": in_agent_ms, "transport": transport_ms, "fast_transport": fast_transport_ms}


def transport_breakdown(target: Target, client: AgentClient, repeats: int = 200) -> dict[str, float]:
    """Median microseconds of each piece of one call's transport, gRPC and fast path side by side.

    gRPC: the worker's request encoding (tensor -> protobuf -> bytes; by bytes and by a shared-memory
    handle), its decoding of the answer (bytes -> protobuf -> arrays), the agent's copy out of the
    POSIX segment, the worker's write into it, and an empty gRPC round trip (``Health``: HTTP/2,
    gRPC's thread hand-offs, no payload). Fast path: the input written into the sealed memfd, the
    request encoding, the answer decoding, and an empty fast-path round trip (a predict of a model
    that is not loaded: socket, header, the agent's dispatch, an error answer).
    """
    from edgeinspect.core import fastpath
    from edgeinspect.core.tensors import from_tensors
    from edgeinspect_inference.agent.shm import SegmentReader

    frame = np.random.default_rng(5).integers(0, 256, target.shape, dtype=np.uint8)
    outputs = client.predict(target.ref, {"image": frame}).outputs
    posix = ShmSegment(POSIX_SEGMENT_MIN + os.getpid() + 2, frame.nbytes)
    ref = posix.write(frame)
    reader = SegmentReader(Path("/dev/shm"), 1 << 30)
    response = ext_pb2.PredictResponse(
        tensors=[to_tensor(n, v) for n, v in outputs.items()], name="m", version="1"
    ).SerializeToString()
    sealed = SealedSegment(frame.nbytes)
    result = b"".join(bytes(b) for b in fastpath.encode_result("m", "1", 1.0, "primary", outputs, None))
    path = fast_socket_path(client.addr)
    fast_client = FastPathClient(path) if path is not None and path.is_socket() else None
    pieces: dict[str, Callable[[], Any]] = {
        "grpc_request_encode_bytes": lambda: ext_pb2.PredictRequest(
            model=target.ref, tensors=[to_tensor("image", frame)]
        ).SerializeToString(),
        "grpc_request_encode_shm": lambda: ext_pb2.PredictRequest(
            model=target.ref, tensors=[to_tensor("image", ref)]
        ).SerializeToString(),
        "grpc_response_decode": lambda: from_tensors(ext_pb2.PredictResponse.FromString(response).tensors),
        "worker_posix_shm_write": lambda: posix.write(frame),
        "agent_posix_shm_copy": lambda: reader.view(ref.segment_id, 0, ref.nbytes),
        "grpc_empty_round_trip": lambda: client.health(),
        "fast_memfd_write": lambda: sealed.write(frame),
        "fast_request_encode": lambda: fastpath.encode_predict(
            fastpath.PredictRequest(
                target.ref, "", (fastpath.InputRef("image", frame.dtype, frame.shape, 1, 0),)
            )
        ),
        "fast_response_decode": lambda: fastpath.decode_result(bytearray(result[fastpath.HEADER.size :])),
    }
    if fast_client is not None:

        def empty_fast() -> None:
            with contextlib.suppress(AgentError):  # NOT_FOUND is the answer being timed
                fast_client.predict("not-loaded", {"image": sealed.write(frame[:, :, :1, :1])})

        pieces["fast_empty_round_trip"] = empty_fast
    costs: dict[str, float] = {}
    try:
        for name, call in pieces.items():
            call()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1e6)
            costs[name] = round(percentile(times, 50), 1)
    finally:
        posix.close()
        sealed.close()
        if fast_client is not None:
            fast_client.close()
    return costs


def provider_rows(target: Target, args: argparse.Namespace) -> list[ProviderRow]:
    """(d): every available provider and CPU thread layout on the target's frame, and the auto choice."""
    from edgeinspect_inference.agent.providers import CPU, resolve
    from edgeinspect_inference.agent.session import ModelSession, available_providers
    from edgeinspect_inference.agent.tuning import (
        Candidate,
        Golden,
        ThreadConfig,
        TuningOptions,
        candidates,
        select,
        thread_configs,
        usable_cores,
    )

    frame = {"image": np.random.default_rng(5).integers(0, 256, target.shape, dtype=np.uint8)}
    baseline = Candidate(CPU, ThreadConfig(args.threads))
    layouts = [ThreadConfig(args.threads)] + [
        c for c in thread_configs(usable_cores()) if c != ThreadConfig(args.threads)
    ]
    cands = candidates(resolve(["auto"], available_providers), layouts)
    cands = [baseline] + [c for c in cands if c != baseline]

    def build(candidate: Candidate) -> ModelSession:
        chosen = [candidate.provider] if candidate.provider is CPU else [candidate.provider, CPU]
        return ModelSession(
            target.onnx_path, chosen, candidate.threads.intra_op, args.spin,
            inter_op_threads=candidate.threads.inter_op, parallel=candidate.threads.parallel,
        )  # fmt: skip

    sessions: dict[str, Any] = {}
    rejected: dict[str, str] = {}
    for candidate in cands:
        try:
            sessions[candidate.label] = build(candidate)
        except Exception as exc:  # a provider that cannot start here is a row that says why
            rejected[candidate.label] = f"failed: {str(exc)[:120]}"
    golden = Golden(frame, sessions[baseline.label].run(frame), per_image_score=target.precision == "int8")
    options = TuningOptions(budget_s=60.0, timed_runs=max(3, args.iterations // 3))
    kept, choice = select(build, cands, golden, options)
    auto = f"{choice.provider}/{choice.threads.label}" if kept is not None else ""
    for m in choice.measurements:
        if m.rejected:
            rejected.setdefault(f"{m.provider}/{m.threads.label}", m.rejected)
    live = {label: s for label, s in sessions.items() if label not in rejected}
    samples = timed_rounds(
        {label: functools.partial(s.run, frame) for label, s in live.items()}, args.iterations, args.warmup
    )
    cpu_p50 = percentile(samples[baseline.label], 50)
    rows = []
    for candidate in cands:
        label, times = candidate.label, samples.get(candidate.label, [])
        p50 = percentile(times, 50) if times else 0.0
        rows.append(
            ProviderRow(
                target.model, target.size, target.precision, candidate.provider.name,
                candidate.threads.label, round(p50, 2),
                round(percentile(times, 99), 2) if times else 0.0,
                round(p50 / cpu_p50, 3) if times else 0.0, label == auto, rejected.get(label, ""),
            )
        )  # fmt: skip
    return rows


def format_providers(rows: list[ProviderRow], agent_choice: dict[str, str]) -> str:
    """Table (d): a row per provider and thread layout; ``auto`` marks the tuning's choice."""
    header = (
        f"{'model':<10} {'size':<8} {'prec':<5} {'provider':<9} {'threads':<7} {'p50/p99 ms':>15} "
        f"{'vs cpu':>7} {'auto':>5}  agent chose / rejected"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        key = f"{r.model}-{r.size}-{r.precision}"
        note = r.rejected[:70] if r.rejected else (agent_choice.get(key, "") if r.auto else "")
        lines.append(
            f"{r.model:<10} {r.size:<8} {r.precision:<5} {r.provider:<9} {r.threads:<7} "
            f"{r.p50_ms:>7.2f}/{r.p99_ms:<7.2f} {r.ratio_vs_cpu:>7.3f} {'*' if r.auto else '':>5}  {note}"
        )
    lines.append(
        "(bare session.run, alternating blocks; vs cpu = p50 / the CPU provider's at --threads; auto = the "
        "candidate agent.tuning.select keeps;\n threads: intra-op, or intra x inter 'p' for the parallel "
        "execution mode; agent chose = provider/threads the agent subprocess reported in ListVersions)"
    )
    return "\n".join(lines)


def _agent_choice(info: Any) -> str:
    tuning = info.tuning
    if tuning is None:
        return f"{info.execution_provider} (tuning off)"
    layout = (
        f"{tuning.intra_op_threads}x{tuning.inter_op_threads}p"
        if tuning.parallel
        else str(tuning.intra_op_threads)
    )
    return f"{tuning.provider}/{layout}{' (cached)' if tuning.cached else ''}"


def _sysv_segment(data: bytes) -> Any:
    """A System V segment holding ``data`` (the test suite's libc writer), or None off 64-bit Linux."""
    from tests.helpers import sysv

    if not sysv.AVAILABLE:
        return None
    segment = sysv.SysVSegment(len(data))
    segment.write(data)
    return segment


def decode_costs(shape: tuple[int, int, int, int], repeats: int = 200) -> dict[str, float]:
    """Median microseconds the agent spends turning one request's tensor into the model's uint8 array.

    The agent's own decoding code, in process and without a model, so a busy machine's noise in the
    model run does not hide it: uint8 bytes (ours), float32 bytes (stock: + one conversion), our
    POSIX segment and a System V segment (each: + one copy out of the segment).
    """
    from edgeinspect.core.tensors import from_tensors
    from edgeinspect_inference.agent.compat import to_model_dtypes
    from edgeinspect_inference.agent.session import TensorSpec
    from edgeinspect_inference.agent.shm import SegmentReader

    frame = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    spec = [TensorSpec("image", np.dtype(np.uint8), (-1, *shape[1:]))]
    reader = SegmentReader(Path("/dev/shm"), 1 << 30)
    posix = ShmSegment(POSIX_SEGMENT_MIN + os.getpid() + 1, frame.nbytes)
    system_v = _sysv_segment(frame.astype(np.float32).tobytes())
    requests = {
        "uint8_bytes": [to_tensor("image", frame)],
        "float32_bytes": [to_tensor("image", frame.astype(np.float32))],
        "uint8_posix_shm": [to_tensor("image", posix.write(frame))],
    }
    if system_v is not None:
        requests["float32_sysv_shm"] = [
            sm_pb2.Tensor(
                tensor_metadata=sm_pb2.TensorMetadata(
                    name=b"image", data_type=sm_pb2.FLOAT32, shape=list(shape)
                ),
                shared_memory_handle=sm_pb2.SharedMemoryHandle(
                    size=frame.size * 4, offset=0, segment_id=system_v.id
                ),
            )
        ]
    costs: dict[str, float] = {}
    try:
        for name, tensors in requests.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                to_model_dtypes(from_tensors(tensors, reader.view), spec)
                times.append((time.perf_counter() - started) * 1e6)
            costs[name] = round(percentile(times, 50), 1)
    finally:
        posix.close()
        if system_v is not None:
            system_v.close()
    return costs


def summarise(target: Target, samples: dict[str, list[float]]) -> Row:
    """p50/p99 per path; the transport cost is (round trip - the agent's own model time) per call."""
    p50 = {name: percentile(values, 50) for name, values in samples.items() if values}
    p99 = {name: percentile(values, 99) for name, values in samples.items() if values}
    transport_p50 = p50["transport"]
    return Row(
        target.model,
        target.size,
        target.precision,
        round(p50["bare"], 2),
        round(p99["bare"], 2),
        round(p50["compat"], 2),
        round(p99["compat"], 2),
        round(p50["ext"], 2),
        round(p99["ext"], 2),
        round(p50["in_agent"], 2),
        round(transport_p50, 2),
        round(p99["transport"], 2),
        round(p50["ext"] / p50["bare"], 3),
        round(p50["compat"] / p50["bare"], 3),
        round((p50["bare"] + transport_p50) / p50["bare"], 3),
        round(p50["stock_f32"], 2),
        round(p99["stock_f32"], 2),
        round(p50.get("stock_sysv", 0.0), 2),
        round(p99.get("stock_sysv", 0.0), 2),
        round(p50["ext_shm"], 2),
        round(p99["ext_shm"], 2),
        round(p50["stock_f32"] / p50["ext"], 3),
        round(p50.get("fast", 0.0), 2),
        round(p99.get("fast", 0.0), 2),
        round(p50.get("fast_transport", 0.0), 3),
        round(p99.get("fast_transport", 0.0), 3),
    )


def format_table(rows: list[Row]) -> str:
    """The readable table, as printed and as written to ``table.md`` by :mod:`bench.report`."""
    header = (
        f"{'model':<10} {'size':<8} {'prec':<5} {'bare p50/p99':>14} {'compat p50/p99':>16} "
        f"{'ext p50/p99':>14} {'in-agent':>9} {'transport p50/p99':>17} "
        f"{'ratio ext':>9} {'ratio compat':>12} {'ratio transport':>15}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:<10} {r.size:<8} {r.precision:<5} {r.bare_p50_ms:>6.2f}/{r.bare_p99_ms:<7.2f} "
            f"{r.compat_p50_ms:>7.2f}/{r.compat_p99_ms:<8.2f} {r.ext_p50_ms:>6.2f}/{r.ext_p99_ms:<7.2f} "
            f"{r.agent_model_p50_ms:>9.2f} {r.transport_p50_ms:>8.2f}/{r.transport_p99_ms:<8.2f} "
            f"{r.agent_overhead_ratio:>9.3f} {r.compat_overhead_ratio:>12.3f} "
            f"{r.transport_overhead_ratio:>15.3f}"
        )
    lines.append("")
    stock = (
        f"{'model':<10} {'size':<8} {'prec':<5} {'ours: ext uint8':>16} {'ours: ext POSIX shm':>20} "
        f"{'stock: f32 bytes':>17} {'stock: f32 SysV shm':>20} {'stock/ours':>10}"
    )
    lines += [stock, "-" * len(stock)]
    for r in rows:
        lines.append(
            f"{r.model:<10} {r.size:<8} {r.precision:<5} {r.ext_p50_ms:>7.2f}/{r.ext_p99_ms:<8.2f} "
            f"{r.ext_shm_p50_ms:>9.2f}/{r.ext_shm_p99_ms:<10.2f} "
            f"{r.stock_f32_p50_ms:>8.2f}/{r.stock_f32_p99_ms:<8.2f} "
            f"{r.stock_sysv_p50_ms:>9.2f}/{r.stock_sysv_p99_ms:<10.2f} {r.stock_cost_ratio:>10.3f}"
        )
    lines.append("")
    fast = (
        f"{'model':<10} {'size':<8} {'prec':<5} {'gRPC transport p50/p99':>23} "
        f"{'fast path p50/p99':>18} {'fast transport p50/p99':>23}"
    )
    lines += [fast, "-" * len(fast)]
    for r in rows:
        lines.append(
            f"{r.model:<10} {r.size:<8} {r.precision:<5} "
            f"{r.transport_p50_ms:>11.2f}/{r.transport_p99_ms:<11.2f} "
            f"{r.fast_p50_ms:>8.2f}/{r.fast_p99_ms:<9.2f} "
            f"{r.fast_transport_p50_ms:>11.3f}/{r.fast_transport_p99_ms:<11.3f}"
        )
    lines.append(
        "(ms, p50/p99; in-agent = the model's run time inside the agent; transport = round trip - in-agent, "
        "per call;\n ratio = through agent / bare at p50; ratio transport = (bare + transport) / bare, which "
        "a busy shared machine disturbs less)"
    )
    return "\n".join(lines)


def format_breakdown(breakdown: dict[str, dict[str, float]]) -> str:
    """Where one call's transport goes (us, p50), per size; gRPC pieces first, then the fast path's."""
    lines = ["transport breakdown p50 (us)"]
    names = list(next(iter(breakdown.values())))
    header = f"{'piece':<28}" + "".join(f"{size:>12}" for size in breakdown)
    lines += [header, "-" * len(header)]
    for name in names:
        lines.append(
            f"{name:<28}" + "".join(f"{costs.get(name, 0.0):>12.1f}" for costs in breakdown.values())
        )
    return "\n".join(lines)


def format_decode(decode: dict[str, dict[str, float]]) -> str:
    """The agent's decoding cost per request path (no model), the part of compatibility that is ours."""
    names = list(next(iter(decode.values())))
    header = f"{'decode p50 (us)':<16}" + "".join(f"{n:>18}" for n in names)
    lines = [header, "-" * len(header)]
    for size, costs in decode.items():
        lines.append(f"{size:<16}" + "".join(f"{costs.get(n, 0.0):>18.1f}" for n in names))
    return "\n".join(lines)


def providers_json(rows: list[ProviderRow], agent_choice: dict[str, str]) -> dict[str, Any]:
    """(d)'s figures for the last-line JSON: p50/p99/ratio per provider and layout, the choices."""
    by_target: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = f"{r.model}-{r.size}-{r.precision}"
        entry = by_target.setdefault(key, {"candidates": {}, "auto": "", "agent": agent_choice.get(key, "")})
        entry["candidates"][f"{r.provider}/{r.threads}"] = (
            {"rejected": r.rejected}
            if r.rejected
            else {"p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "ratio_vs_cpu": r.ratio_vs_cpu}
        )
        if r.auto:
            entry["auto"] = f"{r.provider}/{r.threads}"
    return by_target


def summary_json(rows: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    classifier = [r for r in rows if r.model == "classifier"] or rows
    return {
        "bench": "agent_latency",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "threads": args.threads,
        "spin": args.spin,
        "iterations": args.iterations,
        "rows": [asdict(r) for r in rows],
        "agent_overhead_ratio": max(r.agent_overhead_ratio for r in classifier),
        "agent_overhead_ratio_compat": max(r.compat_overhead_ratio for r in classifier),
        "agent_overhead_ratio_transport": max(r.transport_overhead_ratio for r in classifier),
        "agent_transport_p50_ms": {f"{r.model}-{r.size}-{r.precision}": r.transport_p50_ms for r in rows},
        "fast_transport_p50_ms": {f"{r.model}-{r.size}-{r.precision}": r.fast_transport_p50_ms for r in rows},
        "fast_transport_p50_ms_max": max(r.fast_transport_p50_ms for r in rows),
        "probe_transport_p50_ms": {
            f"{r.model}-{r.size}": {"grpc": r.transport_p50_ms, "fast": r.fast_transport_p50_ms}
            for r in rows
            if r.model.startswith("probe")
        },
        "target_transport_p50_ms": 0.5,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "agent_overhead_ratio_by_row": {
            f"{r.model}-{r.size}-{r.precision}": r.agent_overhead_ratio for r in rows
        },
        "p50_ms": {f"{r.model}-{r.size}-{r.precision}": r.ext_p50_ms for r in rows},
        "target_agent_overhead_ratio": 1.10,
        "stock_cost_ratio_by_row": {f"{r.model}-{r.size}-{r.precision}": r.stock_cost_ratio for r in rows},
        "stock_p50_ms": {
            f"{r.model}-{r.size}-{r.precision}": {
                "ext_uint8": r.ext_p50_ms,
                "ext_posix_shm": r.ext_shm_p50_ms,
                "stock_f32_bytes": r.stock_f32_p50_ms,
                "stock_f32_sysv_shm": r.stock_sysv_p50_ms,
            }
            for r in rows
        },
    }


def main(argv: list[str] | None = None) -> int:
    from bench.report import DEFAULT_OUT, write_report  # here, so `python bench/agent_latency.py` works

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="224x224 fp32 only, 5 iterations")
    parser.add_argument(
        "--probes-only", action="store_true", help="only the probe rows (the transport figure, in seconds)"
    )
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="input sizes")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="also int8 rows")
    parser.add_argument("--iterations", type=int, default=30, help="measured calls per path")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured calls per path first")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (both sides)")
    parser.add_argument(
        "--spin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX Runtime threads spin between runs (EI_ALLOW_SPINNING; both sides)",
    )
    parser.add_argument(
        "--providers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also a row per available execution provider and thread layout (d)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where <out>/agent_latency/ goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup = 5, 2
    sizes = ["224x224"] if args.quick else args.sizes
    with tempfile.TemporaryDirectory(prefix="ei-bench-") as tmp:
        work = Path(tmp)
        targets, packages, trusted = build_targets(
            work, sizes, int8=args.int8 and not args.quick, probes_only=args.probes_only
        )
        proc, addr = start_agent(work, trusted, args.threads, args.spin)
        rows: list[Row] = []
        prow: list[ProviderRow] = []
        agent_choice: dict[str, str] = {}
        breakdown: dict[str, dict[str, float]] = {}
        load_before = os.getloadavg()
        decode = {size: decode_costs((1, 3, *SIZES[size])) for size in sizes}
        try:
            with AgentClient(addr, timeout_s=300) as client:
                for package in packages:
                    client.load_version(
                        str(package), variant="int8" if package.name.endswith("-2.tar.gz") else ""
                    )
                for target in targets:
                    print(
                        f"measuring {target.model} {target.size} {target.precision} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    samples = measure_paths(target, client, args)
                    rows.append(summarise(target, samples))
                    if args.providers:
                        prow += provider_rows(target, args)
                    if target.model == "probe-cls":
                        breakdown[target.size] = transport_breakdown(target, client)
                versions = {f"{v.name}:{v.version}": v for v in client.list_versions()}
                for target in targets:
                    key = f"{target.model}-{target.size}-{target.precision}"
                    agent_choice[key] = _agent_choice(versions[target.ref])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    load = f"load average before {' '.join(f'{v:.2f}' for v in load_before)}, after " + " ".join(
        f"{v:.2f}" for v in os.getloadavg()
    )
    table = format_table(rows) + "\n\n" + format_breakdown(breakdown) + "\n\n" + format_decode(decode)
    if prow:
        table += "\n\n" + format_providers(prow, agent_choice)
    table += "\n" + load
    print(table)
    folder = write_report("agent_latency", [asdict(r) for r in rows], args.out, table)
    print(f"wrote table and plots to {folder}", file=sys.stderr, flush=True)
    extra: dict[str, Any] = {"decode_p50_us": decode, "transport_breakdown_p50_us": breakdown}
    extra["loadavg_before"] = [round(v, 2) for v in load_before]
    extra["providers"] = providers_json(prow, agent_choice)
    extra["agent_provider_choice"] = agent_choice
    print(json.dumps(summary_json(rows, args) | extra, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/agent_latency.py` works too
    raise SystemExit(main())
