"""``protos/sagemaker_edge_agent.proto`` against the SageMaker Edge Agent API's published field list.

The table below is transcribed from the public API description (docs/sagemaker-edge-agent-api.md).
Every message, enum, field name, number, type and label must match it exactly, and nothing may be
added to the compatible messages: that is what "wire-compatible" means for an application built on
the original generated stubs.
"""

from __future__ import annotations

from edgeinspect.core.agentapi import sm_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

R = "repeated "
MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "TensorMetadata": {"name": (1, "bytes"), "data_type": (2, "DataType"), "shape": (3, R + "int32")},
    "SharedMemoryHandle": {"size": (1, "uint64"), "offset": (2, "uint64"), "segment_id": (3, "uint64")},
    "Tensor": {
        "tensor_metadata": (1, "TensorMetadata"),
        "byte_data": (4, "bytes"),
        "shared_memory_handle": (5, "SharedMemoryHandle"),
    },
    "Model": {
        "url": (1, "string"),
        "name": (2, "string"),
        "input_tensor_metadatas": (3, R + "TensorMetadata"),
        "output_tensor_metadatas": (4, R + "TensorMetadata"),
    },
    "PredictRequest": {"name": (1, "string"), "tensors": (2, R + "Tensor")},
    "PredictResponse": {"tensors": (1, R + "Tensor")},
    "LoadModelRequest": {"url": (1, "string"), "name": (2, "string")},
    "LoadModelResponse": {"model": (1, "Model")},
    "UnLoadModelRequest": {"name": (1, "string")},
    "UnLoadModelResponse": {},
    "ListModelsRequest": {},
    "ListModelsResponse": {"models": (1, R + "Model")},
    "DescribeModelRequest": {"name": (1, "string")},
    "DescribeModelResponse": {"model": (1, "Model")},
    "AuxilaryData": {
        "name": (1, "string"),
        "encoding": (2, "Encoding"),
        "byte_data": (3, "bytes"),
        "shared_memory_handle": (4, "SharedMemoryHandle"),
    },
    "Timestamp": {"seconds": (1, "int64"), "nanos": (2, "int32")},
    "CaptureDataRequest": {
        "model_name": (1, "string"),
        "capture_id": (2, "string"),
        "inference_timestamp": (3, "Timestamp"),
        "input_tensors": (4, R + "Tensor"),
        "output_tensors": (5, R + "Tensor"),
        "inputs": (6, R + "AuxilaryData"),
        "outputs": (7, R + "AuxilaryData"),
    },
    "CaptureDataResponse": {},
    "GetCaptureDataStatusRequest": {"capture_id": (1, "string")},
    "GetCaptureDataStatusResponse": {"status": (1, "CaptureDataStatus")},
}
ONEOFS = {
    "Tensor": ("data", {"byte_data", "shared_memory_handle"}),
    "AuxilaryData": ("data", {"byte_data", "shared_memory_handle"}),
}
ENUMS = {
    "DataType": {"UINT8": 0, "INT16": 1, "INT32": 2, "INT64": 3, "FLOAT16": 4, "FLOAT32": 5, "FLOAT64": 6},
    "Encoding": {"CSV": 0, "JSON": 1, "NONE": 2, "BASE64": 3},
    "CaptureDataStatus": {"FAILURE": 0, "SUCCESS": 1, "IN_PROGRESS": 2, "NOT_FOUND": 3},
}
METHODS = {
    "Predict": ("PredictRequest", "PredictResponse"),
    "LoadModel": ("LoadModelRequest", "LoadModelResponse"),
    "UnLoadModel": ("UnLoadModelRequest", "UnLoadModelResponse"),
    "ListModels": ("ListModelsRequest", "ListModelsResponse"),
    "DescribeModel": ("DescribeModelRequest", "DescribeModelResponse"),
    "CaptureData": ("CaptureDataRequest", "CaptureDataResponse"),
    "GetCaptureDataStatus": ("GetCaptureDataStatusRequest", "GetCaptureDataStatusResponse"),
}
SCALARS = {
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
}


def _type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        name = str(field.message_type.name)
    elif field.enum_type is not None:
        name = str(field.enum_type.name)
    else:
        name = SCALARS[field.type]
    # is_repeated replaces the deprecated ``label`` in newer protobuf releases
    repeated = (
        field.is_repeated if hasattr(field, "is_repeated") else field.label == FieldDescriptor.LABEL_REPEATED
    )
    return (R if repeated else "") + name


def _fields(message: Descriptor) -> dict[str, tuple[int, str]]:
    return {field.name: (field.number, _type(field)) for field in message.fields}


def test_package_and_service_match() -> None:
    assert sm_pb2.DESCRIPTOR.package == "AWS.SageMaker.Edge"
    service = sm_pb2.DESCRIPTOR.services_by_name["Agent"]
    assert service.full_name == "AWS.SageMaker.Edge.Agent"
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods == METHODS
    assert not any(m.client_streaming or m.server_streaming for m in service.methods)


def test_every_message_field_name_number_and_type_match() -> None:
    declared = set(sm_pb2.DESCRIPTOR.message_types_by_name)
    assert declared == set(MESSAGES), f"extra or missing messages: {declared ^ set(MESSAGES)}"
    for name, expected in MESSAGES.items():
        assert _fields(sm_pb2.DESCRIPTOR.message_types_by_name[name]) == expected, name


def test_oneofs_match() -> None:
    for message, (oneof, members) in ONEOFS.items():
        descriptor = sm_pb2.DESCRIPTOR.message_types_by_name[message]
        assert {f.name for f in descriptor.oneofs_by_name[oneof].fields} == members


def test_every_enum_value_matches() -> None:
    enums: dict[str, EnumDescriptor] = dict(sm_pb2.DESCRIPTOR.enum_types_by_name)
    assert set(enums) == set(ENUMS)
    for name, values in ENUMS.items():
        assert {v.name: v.number for v in enums[name].values} == values, name
