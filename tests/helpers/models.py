"""Tiny, deterministic ONNX models that follow docs/model-contract.md, and signed packages of them.

Built with ``onnx.helper`` (no torch), so any test can make a real model in milliseconds:

- classifier: uint8 ``image`` [N,3,H,W] -> ``defect_probability`` [N,1] =
  ``sigmoid(k * (mean(pixels)/255 - centre))``: a bright image is a defect, a dark one is ok;
- segmenter: uint8 ``image`` [N,3,H,W] -> ``mask_probability`` [N,1,H,W] =
  ``sigmoid(k * (mean over channels/255 - centre))`` per pixel: bright pixels are defects;
- multitask: both outputs from one graph, ``defect_probability`` (the classifier's) first, then
  ``mask_probability`` (the segmenter's).

``knob`` shifts ``centre`` (``0.5 - 0.05 * knob``) so two versions give observably different scores
on the same input (a swap is visible), yet agree on clearly dark or bright images. Use
:func:`image` to make inputs: ``image(level=20)`` is ok, ``image(level=235)`` a defect, mid-grey
(``level=128``) sits where versions disagree.

    keys = make_keys(tmp_path / "keys")
    tar = make_package(tmp_path / "pkgs", "cls", "1", "classification", keys)
    folder = make_package_dir(tmp_path / "pkgs", "cls", "2", "classification", keys, knob=2)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.package import (
    Framework,
    Manifest,
    OutputSpec,
    Precision,
    build_package,
    load_private_key,
    load_public_keys,
    unpack_package,
    write_keypair,
)
from onnx import TensorProto, helper

from tests.helpers.manifests import Task, manifest

OPSET = 17
SLOPE = 12.0
CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)
INPUT_NAME = "image"
CLS_OUTPUT = "defect_probability"
SEG_OUTPUT = "mask_probability"


@dataclass(frozen=True)
class TestKeys:
    """A signing key pair on disk: sign packages with ``private_key``, trust ``public_dir``."""

    __test__ = False  # not a pytest test class

    private_key: Ed25519PrivateKey
    public_dir: Path

    def public_keys(self) -> list[Ed25519PublicKey]:
        return load_public_keys(self.public_dir)


def make_keys(directory: Path, name: str = "test") -> TestKeys:
    """A fresh ed25519 pair: ``private/{name}.key`` and ``trusted/{name}.pub`` under ``directory``."""
    private_path, public_path = write_keypair(directory / "private", name)
    trusted = directory / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    (trusted / public_path.name).write_bytes(public_path.read_bytes())
    return TestKeys(load_private_key(private_path), trusted)


def centre(knob: float) -> float:
    """Mean brightness (0..1) where the model's score crosses 0.5."""
    return 0.5 - 0.05 * knob


def _const(name: str, value: float | list[int], dtype: int = TensorProto.FLOAT) -> onnx.NodeProto:
    values = value if isinstance(value, list) else [value]
    dims = [len(values)] if isinstance(value, list) else []
    tensor = helper.make_tensor(f"{name}_value", dtype, dims, values)
    return helper.make_node("Constant", [], [name], value=tensor)


def _model(
    nodes: list[onnx.NodeProto],
    output: onnx.ValueInfoProto | list[onnx.ValueInfoProto],
    height: int,
    width: int,
) -> bytes:
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", 3, height, width])
    outputs = output if isinstance(output, list) else [output]
    graph = helper.make_graph(nodes, "edgeinspect-test", [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _score_nodes(axes: list[int], knob: float) -> list[onnx.NodeProto]:
    """Cast -> /255 -> mean over ``axes`` -> sigmoid(k * (mean - centre)); ends in tensor ``score``."""
    return [
        helper.make_node("Cast", [INPUT_NAME], ["pixels"], to=TensorProto.FLOAT),
        _const("inv255", 1.0 / 255.0),
        helper.make_node("Mul", ["pixels", "inv255"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], ["mean"], axes=axes, keepdims=1),
        _const("centre", centre(knob)),
        helper.make_node("Sub", ["mean", "centre"], ["shifted"]),
        _const("slope", SLOPE),
        helper.make_node("Mul", ["shifted", "slope"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]


def _busy_loop(iterations: int, only_above: float | None = None) -> list[onnx.NodeProto]:
    """Nodes that burn CPU (``iterations`` 128x128 matmuls in a Loop) and end in a zero tensor ``idle``.

    For tests that need a request to stay in flight (graceful shutdown); the result adds 0 to the score.
    ``only_above``: the loop runs only for inputs whose brightest scaled pixel exceeds it, so the golden
    input (level 140) runs at once and a brighter frame is slow.
    """
    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [128, 128])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["state", "state"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
        ],
        "busy",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            state,
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [128, 128]),
        ],
    )
    seed = helper.make_tensor("seed_value", TensorProto.FLOAT, [128, 128], [0.01] * (128 * 128))
    return [
        helper.make_node("Constant", [], ["seed"], value=seed),
        helper.make_node(
            "Constant",
            [],
            ["trip_count" if only_above is None else "all_trips"],
            value=helper.make_tensor("trips", TensorProto.INT64, [], [iterations]),
        ),
        *_trips_only_above(only_above),
        helper.make_node(
            "Constant", [], ["always"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])
        ),
        helper.make_node("Loop", ["trip_count", "always", "seed"], ["final"], body=body),
        helper.make_node("ReduceSum", ["final"], ["total"], keepdims=0),
        _const("zero", 0.0),
        helper.make_node("Mul", ["total", "zero"], ["idle"]),
    ]


def _trips_only_above(only_above: float | None) -> list[onnx.NodeProto]:
    """``trip_count``: ``all_trips`` where the brightest scaled pixel exceeds ``only_above``, else 0."""
    if only_above is None:
        return []
    return [
        helper.make_node("ReduceMax", ["scaled"], ["brightest"], keepdims=0),
        _const("cutoff", only_above),
        helper.make_node("Greater", ["brightest", "cutoff"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["bright_trips"], to=TensorProto.INT64),
        helper.make_node("Mul", ["all_trips", "bright_trips"], ["trip_count"]),
    ]


def classifier_onnx(
    height: int = 64,
    width: int = 64,
    knob: float = 0.0,
    busy_iterations: int = 0,
    busy_above: float | None = None,
) -> bytes:
    """The test classifier: ``defect_probability`` [N,1] rising with mean brightness.

    ``busy_iterations`` > 0 makes every run slow (without changing its output), for in-flight tests;
    with ``busy_above``, only runs on frames brighter than that (see :func:`_busy_loop`).
    """
    nodes = _score_nodes([1, 2, 3], knob)
    score = "score"
    if busy_iterations:
        busy = _busy_loop(busy_iterations, busy_above)
        nodes += [*busy, helper.make_node("Add", ["score", "idle"], ["busy_score"])]
        score = "busy_score"
    nodes += [
        _const("shape", [-1, 1], TensorProto.INT64),
        helper.make_node("Reshape", [score, "shape"], [CLS_OUTPUT]),
    ]
    output = helper.make_tensor_value_info(CLS_OUTPUT, TensorProto.FLOAT, ["N", 1])
    return _model(nodes, output, height, width)


def segmenter_onnx(height: int = 64, width: int = 64, knob: float = 0.0) -> bytes:
    """The test segmenter: ``mask_probability`` [N,1,H,W] per pixel, rising with its brightness."""
    nodes = _score_nodes([1], knob)
    nodes.append(helper.make_node("Identity", ["score"], [SEG_OUTPUT]))
    output = helper.make_tensor_value_info(SEG_OUTPUT, TensorProto.FLOAT, ["N", 1, height, width])
    return _model(nodes, output, height, width)


def multitask_onnx(height: int = 64, width: int = 64, knob: float = 0.0) -> bytes:
    """The test multi-task model: the classifier's and the segmenter's answers from ONE graph."""
    nodes = _score_nodes([1], knob)  # per-pixel score, as the segmenter
    nodes += [
        helper.make_node("Identity", ["score"], [SEG_OUTPUT]),
        helper.make_node("ReduceMean", ["scaled"], ["image_mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["image_mean", "centre"], ["image_shifted"]),
        helper.make_node("Mul", ["image_shifted", "slope"], ["image_logit"]),
        helper.make_node("Sigmoid", ["image_logit"], ["image_score"]),
        _const("shape", [-1, 1], TensorProto.INT64),
        helper.make_node("Reshape", ["image_score", "shape"], [CLS_OUTPUT]),
    ]
    outputs = [
        helper.make_tensor_value_info(CLS_OUTPUT, TensorProto.FLOAT, ["N", 1]),
        helper.make_tensor_value_info(SEG_OUTPUT, TensorProto.FLOAT, ["N", 1, height, width]),
    ]
    return _model(nodes, outputs, height, width)


def image(
    height: int = 64, width: int = 64, level: int = 128, batch: int = 1, seed: int | None = None
) -> np.ndarray:
    """A uint8 NCHW batch of flat ``level`` images (plus +-8 seeded noise when ``seed`` is given)."""
    array = np.full((batch, 3, height, width), level, dtype=np.int16)
    if seed is not None:
        array += np.random.default_rng(seed).integers(-8, 9, size=array.shape, dtype=np.int16)
    return np.clip(array, 0, 255).astype(np.uint8)


def manifest_for(
    name: str, version: str, task: Task, height: int, width: int, threshold: float = 0.5
) -> Manifest:
    """The manifest of a test model (``files`` and ``golden`` are filled in by ``build_package``)."""
    if task == "multitask":
        both = [
            OutputSpec(name=CLS_OUTPUT, meaning="defect_probability", shape=[-1, 1]),
            OutputSpec(name=SEG_OUTPUT, meaning="mask_probability", shape=[-1, 1, height, width]),
        ]
        single = manifest_for(name, version, "segmentation", height, width, threshold)
        return single.model_copy(update={"task": "multitask", "outputs": both})
    return manifest(
        task,
        name=name,
        version=version,
        height=height,
        width=width,
        batch=-1,
        output=CLS_OUTPUT if task == "classification" else SEG_OUTPUT,
        image=threshold,
        pixel=threshold,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        framework=Framework(name="onnx", version=onnx.__version__),
        created_at=CREATED_AT,
        dataset_fingerprint="synthetic-test-data",
    )


def run_onnx(model_bytes: bytes, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Run a model with ONNX Runtime on CPU: the reference the agent's answers are compared with."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {INPUT_NAME: inputs}), strict=True))


def make_package(
    out_dir: Path,
    name: str,
    version: str,
    task: Task,
    keys: TestKeys,
    *,
    height: int = 64,
    width: int = 64,
    knob: float = 0.0,
    threshold: float = 0.5,
    broken: bool = False,
    with_int8: bool = False,
    busy_iterations: int = 0,
    busy_above: float | None = None,
    precision: Literal["fp32", "int8"] | None = None,
    int8_knob: float | None = None,
    int8_bytes: bytes | None = None,
) -> Path:
    """Build a signed ``{name}-{version}.tar.gz`` in ``out_dir`` and return its path.

    Golden outputs are computed by ONNX Runtime on a seeded input; ``broken`` stores a wrong golden
    output (the package verifies, but a smoke test must fail). ``with_int8`` adds a
    ``model.int8.onnx`` (the same graph with ``knob + 1``, so the variant loaded is observable).
    ``busy_iterations`` makes a classifier slow to run (with ``busy_above``, only on bright frames: see
    :func:`classifier_onnx`).
    ``precision`` records the package's default precision (``manifest.precision``; ``None``: a package
    that predates the field); ``int8_knob`` replaces ``knob + 1`` for the int8 graph (far from ``knob``:
    an int8 model that misses its golden output), ``int8_bytes`` the whole int8 file (one that ONNX
    Runtime cannot load, yet signed and hashed like any other).
    """

    def build(model_knob: float) -> bytes:
        if task == "classification":
            return classifier_onnx(height, width, model_knob, busy_iterations, busy_above)
        if task == "multitask":
            return multitask_onnx(height, width, model_knob)
        return segmenter_onnx(height, width, model_knob)

    work = out_dir / f".work-{name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.onnx"
    model_path.write_bytes(build(knob))
    int8_path = None
    if with_int8 or int8_bytes is not None:
        int8_path = work / "model.int8.onnx"
        int8_path.write_bytes(int8_bytes or build(knob + 1 if int8_knob is None else int8_knob))
    golden_input = image(height, width, level=140, seed=7)
    golden = run_onnx(model_path.read_bytes(), golden_input)
    if broken:
        golden = {key: (1.0 - value).astype(value.dtype) for key, value in golden.items()}
    manifest = manifest_for(name, version, task, height, width, threshold)
    if precision is not None:
        reason = None if precision == "int8" else "int8 failed the shifted gate (test)"
        record = Precision(default=precision, reason=reason)
        manifest = manifest.model_copy(update={"precision": record})
    return build_package(out_dir, manifest, model_path, golden_input, golden, keys.private_key, int8_path)


def make_package_dir(
    out_dir: Path, name: str, version: str, task: Task, keys: TestKeys, **options: object
) -> Path:
    """Like :func:`make_package`, then unpacked and verified into ``out_dir/{name}-{version}``."""
    tar = make_package(out_dir, name, version, task, keys, **options)  # type: ignore[arg-type]
    folder, _ = unpack_package(tar, out_dir / f"{name}-{version}", keys.public_keys())
    return folder
