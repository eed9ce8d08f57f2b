"""Architecture-equivalent benchmark models, built with ``onnx.helper`` (no torch, seconds to build).

Shared by the benchmarks (import ``bench.models``; never copy): a ResNet18-class classifier and a
4-pool U-Net segmenter (base width 16) that follow ``docs/model-contract.md`` exactly - uint8 NCHW RGB
in, normalisation inside the graph, ``defect_probability`` [N,1] / ``mask_probability`` [N,1,H,W]
out - with seeded random weights. Their cost is the real architecture's (same layers, same shapes,
same FLOPs); only the weights are not trained. :func:`build_packages` wraps them as signed packages
(manifest, golden data, signature) that the agent loads like any other.

The segmenter's last layer is biased towards "good" (few pixels over 0.5), like a real line where
most parts are fine, so mask encoding costs what it costs in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import (
    Framework,
    InputSpec,
    Manifest,
    Normalisation,
    OutputSpec,
    Resize,
    Thresholds,
    build_package,
    utc_now,
)
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LATENCY_HEIGHT, LATENCY_WIDTH = 232, 640
"""The input the model-cost benches time networks at: a KolektorSDD2 frame's pixels (its images are
about 230 wide x 630 high) turned on its side. A network's cost does not depend on the orientation;
what a line sends does (:data:`FRAME_HEIGHT`)."""
FRAME_HEIGHT, FRAME_WIDTH = 640, 232
"""A KolektorSDD2 frame as a line's camera sends it and as ``data synth`` makes it: 640 high, 232 wide.
The frame's orientation decides what the worker does with it (resize to a model trained on such frames,
or tile one whose input it does not fit), so the end-to-end benches send frames this way up."""


class _Graph:
    """Accumulates nodes and seeded He-initialised weights; names are unique by construction."""

    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._rng = np.random.default_rng(seed)
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        name = self.name(prefix)
        self.weights.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> str:
        """Conv (batch norm folded into weights and bias, as an exported model has it) + ReLU."""
        std = np.sqrt(2.0 / (cin * k * k))
        w = self.const("w", (self._rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32))
        b = self.const("b", np.zeros(cout, np.float32))
        y = self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        return self.node("Relu", [y]) if relu else y

    def normalised_input(self, name: str) -> str:
        """uint8 -> float, ``(x/255 - mean)/std`` per channel: the normalisation folded into the graph."""
        pixels = self.node("Cast", [name], to=TensorProto.FLOAT)
        mean = self.const("mean", (np.array(MEAN, np.float32) * 255).reshape(1, 3, 1, 1))
        inv = self.const("inv", (1.0 / (np.array(STD, np.float32) * 255)).reshape(1, 3, 1, 1))
        return self.node("Mul", [self.node("Sub", [pixels, mean]), inv])

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> bytes:
        graph = helper.make_graph(self.nodes, "edgeinspect-bench", inputs, outputs, self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return bytes(model.SerializeToString())


def _basic_block(g: _Graph, x: str, cin: int, cout: int, stride: int) -> str:
    out = g.conv(x, cin, cout, 3, stride)
    out = g.conv(out, cout, cout, 3, 1, relu=False)
    shortcut = g.conv(x, cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else x
    return g.node("Relu", [g.node("Add", [out, shortcut])])


def resnet18_onnx(height: int = LATENCY_HEIGHT, width: int = LATENCY_WIDTH, seed: int = 0) -> bytes:
    """ResNet18 (stem 7x7/2 + max pool, stages 2-2-2-2 of 64-128-256-512, one logit, sigmoid)."""
    g = _Graph(seed)
    x = g.normalised_input("image")
    x = g.conv(x, 3, 64, 7, 2)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        x = _basic_block(g, x, cin, cout, stride)
        x = _basic_block(g, x, cout, cout, 1)
        cin = cout
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x])])
    fc = g.const("fc", (np.random.default_rng(seed + 1).standard_normal((512, 1)) * 0.01).astype(np.float32))
    bias = g.const("fcb", np.array([-2.0], np.float32))
    logit = g.node("Add", [g.node("MatMul", [pooled, fc]), bias])
    g.nodes.append(helper.make_node("Sigmoid", [logit], ["defect_probability"]))
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 3, height, width])
    out = helper.make_tensor_value_info("defect_probability", TensorProto.FLOAT, ["N", 1])
    return g.model([image], [out])


def unet_onnx(height: int = 240, width: int = LATENCY_WIDTH, base: int = 16, seed: int = 0) -> bytes:
    """U-Net with 4 pools (sides divisible by 16), two 3x3 convs per level, nearest upsampling."""
    if height % 16 or width % 16:
        raise ValueError(f"a 4-pool U-Net needs sides divisible by 16, got {height}x{width}")
    g = _Graph(seed)
    x = g.normalised_input("image")
    skips: list[tuple[str, int]] = []
    cin = 3
    for level in range(4):
        cout = base * 2**level
        x = g.conv(g.conv(x, cin, cout, 3), cout, cout, 3)
        skips.append((x, cout))
        x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        cin = cout
    x = g.conv(g.conv(x, cin, base * 16, 3), base * 16, base * 16, 3)
    cin = base * 16
    scales = g.const("scales", np.array([1, 1, 2, 2], np.float32))
    for skip, channels in reversed(skips):
        up = g.node("Resize", [x, "", scales], mode="nearest")
        up = g.conv(up, cin, channels, 1, relu=False)
        x = g.node("Concat", [up, skip], axis=1)
        x = g.conv(g.conv(x, 2 * channels, channels, 3), channels, channels, 3)
        cin = channels
    head_w = g.const(
        "head", (np.random.default_rng(seed + 1).standard_normal((1, cin, 1, 1)) * 0.01).astype(np.float32)
    )
    head_b = g.const("headb", np.array([-3.0], np.float32))
    logit = g.node("Conv", [x, head_w, head_b], kernel_shape=[1, 1])
    g.nodes.append(helper.make_node("Sigmoid", [logit], ["mask_probability"]))
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 3, height, width])
    out = helper.make_tensor_value_info("mask_probability", TensorProto.FLOAT, ["N", 1, height, width])
    return g.model([image], [out])


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: its package, ONNX bytes and the input shape it takes."""

    name: str
    task: Literal["classification", "segmentation", "multitask"]
    package: Path
    onnx_bytes: bytes
    input: InputSpec
    """The manifest's input section: what the worker resizes (or tiles) a frame by."""

    @property
    def height(self) -> int:
        """The model input's height (what a bare run feeds it)."""
        return self.input.resize.height

    @property
    def width(self) -> int:
        """The model input's width."""
        return self.input.resize.width


def _manifest(name: str, task: Literal["classification", "segmentation"], height: int, width: int,
              mode: Literal["stretch", "letterbox", "pad"]) -> Manifest:  # fmt: skip
    if task == "classification":
        outputs = [OutputSpec(name="defect_probability", meaning="defect_probability", shape=[-1, 1])]
        thresholds = Thresholds(image=0.5)
    else:
        outputs = [
            OutputSpec(name="mask_probability", meaning="mask_probability", shape=[-1, 1, height, width])
        ]
        thresholds = Thresholds(image=0.5, pixel=0.5)
    return Manifest(
        name=name,
        version="1",
        task=task,
        framework=Framework(name="onnx", version=onnx.__version__),
        created_at=utc_now(),
        input=InputSpec(
            name="image",
            shape=[-1, 3, height, width],
            dtype="uint8",
            colour="RGB",
            resize=Resize(height=height, width=width, mode=mode),
            normalisation=Normalisation(mean=list(MEAN), std=list(STD)),
            normalisation_in_graph=True,
        ),
        outputs=outputs,
        thresholds=thresholds,
        dataset_fingerprint="bench-random-weights",
    )


def build_packages(
    out_dir: Path, key: Ed25519PrivateKey, height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH
) -> tuple[BenchModel, BenchModel]:
    """Signed packages of the classifier (``height x width``, stretch) and the segmenter (padded to /16)."""
    import onnxruntime as ort

    seg_height, seg_width = -(-height // 16) * 16, -(-width // 16) * 16
    models: list[BenchModel] = []
    specs = (
        ("bench-cls", "classification", resnet18_onnx(height, width), height, width, "stretch"),
        ("bench-seg", "segmentation", unet_onnx(seg_height, seg_width), seg_height, seg_width, "pad"),
    )
    for name, task, model_bytes, h, w, mode in specs:
        work = out_dir / f"{name}-work"
        work.mkdir(parents=True, exist_ok=True)
        (work / "model.onnx").write_bytes(model_bytes)
        golden_input = np.random.default_rng(3).integers(0, 256, (1, 3, h, w), dtype=np.uint8)
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        golden = dict(zip(names, session.run(names, {"image": golden_input}), strict=True))
        manifest = _manifest(name, task, h, w, mode)  # type: ignore[arg-type]
        package = build_package(out_dir, manifest, work / "model.onnx", golden_input, golden, key)
        models.append(BenchModel(name, task, package, model_bytes, manifest.input))  # type: ignore[arg-type]
    return models[0], models[1]


def build_multitask_package(
    out_dir: Path,
    key: Ed25519PrivateKey,
    *,
    width: int = 8,
    int8: bool = True,
    frames: int = 8,
    views: str = "none",
    size: tuple[int, int] = (FRAME_HEIGHT, FRAME_WIDTH),
) -> tuple[BenchModel, str]:
    """A signed package of the one-pass multi-task network (``defect-mt``), model input ``size``.

    The default input is the whole frame (640 high, 232 wide); the ``default`` training profile ships
    320 x 112 at width 12 (the worker resizes each frame to it).

    The architecture the pipeline trains (``edgeinspect_cloud.training.multitask_net``, network width
    ``width``; the ``demo`` profile's is 8; ``views`` its mirrored views, as a recipe's ``views=``)
    with seeded random weights (its cost does not depend on them), plus a static int8 variant
    calibrated on seeded textured frames when ``int8``. Returns the model and the variant to load
    (``int8`` when built, else ``""``).
    """
    import onnxruntime as ort

    from bench.multitask import _multitask_onnx

    work = out_dir / "bench-mt-work"
    work.mkdir(parents=True, exist_ok=True)
    height, width_px = size
    fp32 = _multitask_onnx(work / "model.onnx", width, views, size)
    rng = np.random.default_rng(3)
    calibration = rng.integers(40, 200, (frames, 3, height, width_px), dtype=np.uint8)
    int8_path = None
    if int8:
        from edgeinspect_cloud.compile.optimize import quantize_int8

        int8_path = quantize_int8(fp32, work / "model.int8.onnx", calibration)
    golden_input = calibration[:1]
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    golden = dict(zip(names, session.run(names, {"image": golden_input}), strict=True))
    manifest = _manifest("bench-mt", "classification", height, width_px, "stretch")
    manifest = Manifest.model_validate(
        manifest.model_dump()
        | {
            "task": "multitask",
            "outputs": [
                OutputSpec(name="defect_probability", meaning="defect_probability", shape=[-1, 1]),
                OutputSpec(
                    name="mask_probability",
                    meaning="mask_probability",
                    shape=[-1, 1, height, width_px],
                ),
            ],
            "thresholds": Thresholds(image=0.5, pixel=0.5),
        }
    )
    package = build_package(out_dir, manifest, fp32, golden_input, golden, key, int8_path)
    runs = (int8_path or fp32).read_bytes()  # what the agent runs, so bare measures the same
    model = BenchModel("bench-mt", "multitask", package, runs, manifest.input)
    return model, "int8" if int8_path is not None else ""
