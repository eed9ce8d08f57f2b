"""Domain records -> protobuf messages, for both services (the servicers stay one-liners)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from edgeinspect.core.agentapi import ext_pb2, sm_pb2
from edgeinspect.core.package import Manifest
from edgeinspect.core.tensors import data_type_of, to_tensor

from edgeinspect_inference.agent import compat
from edgeinspect_inference.agent.loader import LoadedModel
from edgeinspect_inference.agent.records import AliasEntry, PredictOutcome
from edgeinspect_inference.agent.session import TensorSpec
from edgeinspect_inference.agent.tuning import ProviderChoice

_ROLES = {"primary": ext_pb2.PRIMARY, "shadow": ext_pb2.SHADOW, "": ext_pb2.ROLE_UNSPECIFIED}


def _data_type(spec: TensorSpec) -> Any:
    return data_type_of(spec.dtype)


def tensor_metadata(spec: TensorSpec, manifest: Manifest, float_pixels: bool) -> sm_pb2.TensorMetadata:
    """Compat metadata a stock client can copy into a request as is (see :mod:`.compat`)."""
    data_type: Any = data_type_of(compat.reported_dtype(spec, float_pixels))
    shape = compat.reported_shape(spec, manifest)
    return sm_pb2.TensorMetadata(name=spec.name.encode(), data_type=data_type, shape=shape)


def tensor_spec(spec: TensorSpec) -> ext_pb2.TensorSpec:
    return ext_pb2.TensorSpec(name=spec.name, data_type=_data_type(spec), shape=list(spec.shape))


def compat_model(model: LoadedModel, name: str | None = None, *, float_pixels: bool = True) -> sm_pb2.Model:
    """A SageMaker ``Model``: url, name and the tensors it takes and gives, as stock clients copy them."""
    manifest = model.manifest
    return sm_pb2.Model(
        url=model.url,
        name=name or model.name,
        input_tensor_metadatas=[tensor_metadata(s, manifest, float_pixels) for s in model.session.inputs],
        output_tensor_metadatas=[tensor_metadata(s, manifest, False) for s in model.session.outputs],
    )


def version_info(model: LoadedModel) -> ext_pb2.ModelVersionInfo:
    return ext_pb2.ModelVersionInfo(
        name=model.name,
        version=model.version,
        sha256=model.sha256,
        task=model.task,
        execution_provider=model.session.provider,
        inputs=[tensor_spec(s) for s in model.session.inputs],
        outputs=[tensor_spec(s) for s in model.session.outputs],
        load_ms=model.load_ms,
        memory_bytes=model.memory_bytes,
        loaded_at_ns=model.loaded_at_ns,
        path=str(model.path),
        manifest_json=model.manifest_json,
        variant=model.variant,
        variant_fallback=model.variant_fallback,
        tuning=provider_tuning(model.tuning),
    )


def provider_tuning(choice: ProviderChoice | None) -> ext_pb2.ProviderTuning | None:
    """The chosen provider and threads with every candidate's figures (None when tuning is off)."""
    if choice is None:
        return None
    return ext_pb2.ProviderTuning(
        provider=choice.provider,
        intra_op_threads=choice.threads.intra_op,
        inter_op_threads=choice.threads.inter_op,
        parallel=choice.threads.parallel,
        p50_ms=choice.selected_p50_ms,
        cached=choice.cached,
        measure_ms=choice.measure_ms,
        reason=choice.reason,
        candidates=[
            ext_pb2.ProviderMeasurement(
                provider=m.provider,
                intra_op_threads=m.threads.intra_op,
                inter_op_threads=m.threads.inter_op,
                parallel=m.threads.parallel,
                p50_ms=m.p50_ms,
                p99_ms=m.p99_ms,
                runs=m.runs,
                rejected=m.rejected,
                selected=m.provider == choice.provider and m.threads == choice.threads,
            )
            for m in choice.measurements
        ],
    )


def alias_info(entry: AliasEntry) -> ext_pb2.AliasInfo:
    return ext_pb2.AliasInfo(
        alias=entry.alias,
        name=entry.model.name,
        version=entry.model.version,
        shadow_version=entry.shadow.version if entry.shadow else "",
        updated_at_ns=entry.updated_at_ns,
    )


def tensors(arrays: Mapping[str, np.ndarray]) -> list[sm_pb2.Tensor]:
    """Outputs always travel as bytes (as in the original API)."""
    return [to_tensor(name, array) for name, array in arrays.items()]


def predict_response(outcome: PredictOutcome) -> ext_pb2.PredictResponse:
    response = ext_pb2.PredictResponse(
        tensors=tensors(outcome.outputs),
        name=outcome.name,
        version=outcome.version,
        latency_ms=outcome.latency_ms,
        role=_ROLES[outcome.role],
    )
    if outcome.shadow is not None:
        response.shadow.CopyFrom(
            ext_pb2.ShadowResult(
                version=outcome.shadow.version,
                tensors=tensors(outcome.shadow.outputs),
                latency_ms=outcome.shadow.latency_ms,
            )
        )
    return response
