"""Make any exported graph speak the model contract (docs/model-contract.md) and check that it does.

Frameworks export what they trained: a float input (NCHW from PyTorch, NHWC from Keras) expecting
normalised pixels, and an output that may be a logit, lack the channel axis, or be channels-last. The
edge wants exactly one thing: ``image`` uint8 NCHW RGB in, ``defect_probability`` ``[N, 1]`` or
``mask_probability`` ``[N, 1, H, W]`` out. This module wraps the graph with a small preamble (cast,
normalise, transpose) and postamble (sigmoid, reshape, transpose, rename) in plain ONNX operators, so
the same code adapts PyTorch, Keras and third-party ONNX models, and normalisation happens in the graph
where no edge code can forget or duplicate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
from edgeinspect.core.package import Normalisation
from onnx import TensorProto, helper, numpy_helper

from edgeinspect_cloud.compile.errors import CompileError

Task = Literal["classification", "segmentation"]
Layout = Literal["NCHW", "NHWC"]

INPUT_NAME = "image"
OUTPUT_NAMES: dict[Task, str] = {"classification": "defect_probability", "segmentation": "mask_probability"}
PRE_PREFIX = "ei_pre_"
"""Name prefix of the nodes this module adds in front of the model (kept out of int8 quantisation)."""
POST_PREFIX = "ei_post_"
_MODEL_IN = "ei_model_input"
_MODEL_OUT = "ei_model_output"
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}


@dataclass(frozen=True)
class Adaptation:
    """How the source graph differs from the contract, i.e. what to wrap it with.

    ``normalisation`` applies to a float-input graph (``(pixel * scale - mean) / std``, per channel);
    ``None`` feeds it raw pixel values as float. ``sigmoid`` turns a logit output into a probability.
    """

    task: Task
    layout: Layout = "NCHW"
    normalisation: Normalisation | None = None
    sigmoid: bool = False


def adapt_to_contract(model: onnx.ModelProto, adaptation: Adaptation) -> onnx.ModelProto:
    """Return a copy of ``model`` with the contract's input and output (see the module docstring).

    A graph that already takes uint8 input is assumed to normalise itself and is left alone at the
    front; only the output is renamed/reshaped as needed.
    """
    graph_in, graph_out = _single_io(model)
    if _conforms(model, adaptation.task):
        return _checked(model)  # already the contract (e.g. compiled before): wrapping again would double it
    adapted = onnx.ModelProto()
    adapted.CopyFrom(model)
    graph = adapted.graph
    _rename_value(graph, graph_in.name, _MODEL_IN)
    _rename_value(graph, graph_out.name, _MODEL_OUT)
    in_type = graph_in.type.tensor_type.elem_type
    pre_nodes, pre_inits = _preamble(adaptation, in_type)
    post_nodes, post_inits, out_rank = _postamble(adaptation, _rank(graph_out))
    nodes = [*pre_nodes, *graph.node, *post_nodes]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend([*pre_inits, *post_inits])
    del graph.input[:]
    graph.input.append(_image_input(graph_in, adaptation.layout))
    del graph.output[:]
    graph.output.append(_contract_output(adaptation.task, out_rank))
    _ensure_opset_imports(adapted)
    return _checked(adapted)


def check_contract(model: onnx.ModelProto, task: Task) -> None:
    """Raise ``CompileError`` unless the graph's input/output match the contract for ``task``."""
    graph_in, graph_out = _single_io(model)
    problems = []
    if graph_in.name != INPUT_NAME or graph_in.type.tensor_type.elem_type != TensorProto.UINT8:
        problems.append(f"input must be uint8 {INPUT_NAME!r}, got {_describe(graph_in)}")
    if _rank(graph_in) != 4 or _dims(graph_in)[1] not in (3, None):
        problems.append(f"input must be NCHW with 3 channels, got {_describe(graph_in)}")
    want = OUTPUT_NAMES[task]
    if graph_out.name != want or graph_out.type.tensor_type.elem_type != TensorProto.FLOAT:
        problems.append(f"output must be float32 {want!r}, got {_describe(graph_out)}")
    if _rank(graph_out) != (2 if task == "classification" else 4):
        problems.append(f"output {graph_out.name!r} has rank {_rank(graph_out)}")
    if problems:
        raise CompileError(
            "the model does not follow the model contract: " + "; ".join(problems),
            hint="see docs/model-contract.md; compile adapts framework exports, check --layout/--task",
        )


MULTITASK_OUTPUTS: tuple[Task, ...] = ("classification", "segmentation")
"""A multi-task graph's outputs, in order: the image score, then the mask."""


def check_multitask_contract(model: onnx.ModelProto) -> None:
    """Raise ``CompileError`` unless the graph takes ``image`` and returns both contract outputs, in order.

    A multi-task graph is not adapted (training exports it to the contract); it is only checked.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    outputs = list(model.graph.output)
    want = [OUTPUT_NAMES[task] for task in MULTITASK_OUTPUTS]
    problems = []
    if (
        len(inputs) != 1
        or inputs[0].name != INPUT_NAME
        or inputs[0].type.tensor_type.elem_type != TensorProto.UINT8
    ):
        problems.append(f"input must be one uint8 {INPUT_NAME!r}, got {[_describe(v) for v in inputs]}")
    if [o.name for o in outputs] != want:
        problems.append(f"outputs must be {want} in this order, got {[o.name for o in outputs]}")
    elif [_rank(o) for o in outputs] != [2, 4]:
        problems.append(f"output ranks must be [2, 4], got {[_rank(o) for o in outputs]}")
    if problems:
        raise CompileError(
            "the multi-task model does not follow the model contract: " + "; ".join(problems),
            hint="export it with the multitask trainer (docs/model-contract.md, 'Multi-task models')",
        )


def _conforms(model: onnx.ModelProto, task: Task) -> bool:
    try:
        check_contract(model, task)
    except CompileError:
        return False
    return True


def input_hw(model: onnx.ModelProto) -> tuple[int | None, int | None]:
    """The static height and width of the contract input (None where dynamic)."""
    graph_in, _ = _single_io(model)
    dims = _dims(graph_in)
    return (dims[2], dims[3]) if len(dims) == 4 else (None, None)


def _preamble(adaptation: Adaptation, in_type: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """uint8 NCHW ``image`` -> what the model's own input expects."""
    if in_type == TensorProto.UINT8:
        if adaptation.layout != "NCHW":
            raise CompileError(
                "a graph with a uint8 input must already be NCHW",
                hint="export it with an NCHW uint8 input, or export a float input and let compile wrap it",
            )
        return [helper.make_node("Identity", [INPUT_NAME], [_MODEL_IN], name=f"{PRE_PREFIX}identity")], []
    if in_type not in _FLOAT_TYPES:
        raise CompileError(
            f"cannot adapt an input of ONNX type {TensorProto.DataType.Name(in_type)}",
            hint="export the model with a float32 or uint8 image input",
        )
    nodes = [
        helper.make_node(
            "Cast", [INPUT_NAME], ["ei_pre_float"], to=TensorProto.FLOAT, name=f"{PRE_PREFIX}cast"
        )
    ]
    inits: list[onnx.TensorProto] = []
    current = "ei_pre_float"
    if adaptation.normalisation is not None:
        norm = adaptation.normalisation
        scale = np.float32(norm.scale)
        mean = _per_channel(norm.mean)
        std = _per_channel(norm.std)
        # (x * scale - mean) / std  ==  x * (scale / std) + (-mean / std): one Mul and one Add
        inits += [
            numpy_helper.from_array((scale / std).astype(np.float32), "ei_pre_mul"),
            numpy_helper.from_array((-mean / std).astype(np.float32), "ei_pre_add"),
        ]
        nodes += [
            helper.make_node("Mul", [current, "ei_pre_mul"], ["ei_pre_scaled"], name=f"{PRE_PREFIX}mul"),
            helper.make_node(
                "Add", ["ei_pre_scaled", "ei_pre_add"], ["ei_pre_norm"], name=f"{PRE_PREFIX}add"
            ),
        ]
        current = "ei_pre_norm"
    if adaptation.layout == "NHWC":
        nodes.append(
            helper.make_node(
                "Transpose", [current], ["ei_pre_nhwc"], perm=[0, 2, 3, 1], name=f"{PRE_PREFIX}nhwc"
            )
        )
        current = "ei_pre_nhwc"
    if in_type != TensorProto.FLOAT:
        nodes.append(
            helper.make_node("Cast", [current], ["ei_pre_typed"], to=in_type, name=f"{PRE_PREFIX}typed")
        )
        current = "ei_pre_typed"
    nodes.append(helper.make_node("Identity", [current], [_MODEL_IN], name=f"{PRE_PREFIX}identity"))
    return nodes, inits


def _postamble(
    adaptation: Adaptation, rank: int | None
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], int]:
    """The model's output -> float32 probability of the contract's shape and name."""
    out_name = OUTPUT_NAMES[adaptation.task]
    nodes = [
        helper.make_node(
            "Cast", [_MODEL_OUT], ["ei_post_float"], to=TensorProto.FLOAT, name=f"{POST_PREFIX}cast"
        )
    ]
    inits: list[onnx.TensorProto] = []
    current = "ei_post_float"
    if adaptation.sigmoid:
        nodes.append(
            helper.make_node("Sigmoid", [current], ["ei_post_sigmoid"], name=f"{POST_PREFIX}sigmoid")
        )
        current = "ei_post_sigmoid"
    if adaptation.task == "classification":
        if rank not in (1, 2):
            raise CompileError(
                f"a classifier must output [N] or [N, 1], got rank {rank}",
                hint="export a single defect score (logit or probability) per image",
            )
        inits.append(numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "ei_post_shape"))
        nodes.append(
            helper.make_node(
                "Reshape", [current, "ei_post_shape"], ["ei_post_shaped"], name=f"{POST_PREFIX}reshape"
            )
        )
        current, out_rank = "ei_post_shaped", 2
    else:
        if rank != 4:
            raise CompileError(
                f"a segmenter must output a 4-D mask, got rank {rank}",
                hint="export [N, 1, H, W] (NCHW) or [N, H, W, 1] (NHWC) mask scores",
            )
        if adaptation.layout == "NHWC":
            nodes.append(
                helper.make_node(
                    "Transpose", [current], ["ei_post_nchw"], perm=[0, 3, 1, 2], name=f"{POST_PREFIX}nchw"
                )
            )
            current = "ei_post_nchw"
        out_rank = 4
    nodes.append(helper.make_node("Identity", [current], [out_name], name=f"{POST_PREFIX}identity"))
    return nodes, inits, out_rank


def _single_io(model: onnx.ModelProto) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise CompileError(
            f"the model has {len(inputs)} input(s) and {len(model.graph.output)} output(s); "
            "the model contract needs exactly one of each",
            hint="export the image input and the defect score (or mask) output only",
        )
    return inputs[0], model.graph.output[0]


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it is produced or consumed in the top-level graph."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in graph.value_info:
        if value.name == old:
            value.name = new


def _image_input(source: onnx.ValueInfoProto, layout: Layout) -> onnx.ValueInfoProto:
    dims = _dims(source)
    if len(dims) != 4:
        raise CompileError(
            f"the model input {source.name!r} has rank {len(dims)}, an image input needs 4",
            hint="export with a [N, 3, H, W] or [N, H, W, 3] input",
        )
    _, c, h, w = dims if layout == "NCHW" else (dims[0], dims[3], dims[1], dims[2])
    if c not in (3, None):
        raise CompileError(
            f"the model input has {c} channels in {layout} layout, the contract needs 3 (RGB)",
            hint="check --layout (PyTorch is NCHW, Keras is NHWC)",
        )
    return helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", 3, h or "H", w or "W"])


def _contract_output(task: Task, rank: int) -> onnx.ValueInfoProto:
    shape: list[int | str | None] = ["N", 1] if rank == 2 else ["N", 1, "H", "W"]
    return helper.make_tensor_value_info(OUTPUT_NAMES[task], TensorProto.FLOAT, shape)


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    shape = value.type.tensor_type.shape
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in shape.dim]


def _rank(value: onnx.ValueInfoProto) -> int | None:
    tensor = value.type.tensor_type
    return len(tensor.shape.dim) if tensor.HasField("shape") else None


def _describe(value: onnx.ValueInfoProto) -> str:
    elem = TensorProto.DataType.Name(value.type.tensor_type.elem_type)
    return f"{value.name!r} {elem.lower()} {[d if d is not None else '?' for d in _dims(value)]}"


def _per_channel(values: list[float]) -> np.ndarray:
    """A [1, C, 1, 1] float32 array (or [1, 1, 1, 1] for one value), broadcasting over NCHW."""
    array = np.asarray(values, dtype=np.float32)
    return array.reshape(1, -1, 1, 1)


def _ensure_opset_imports(model: onnx.ModelProto) -> None:
    if not any(op.domain in ("", "ai.onnx") for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", 17))


def _checked(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise CompileError(
            f"the adapted model is not valid ONNX: {exc}", hint="check the exported model"
        ) from exc
