"""The two gRPC services as thin adapters over :class:`ModelTable` and :class:`CaptureStore`.

Each method decodes its request, makes one call into the domain, and encodes the answer; errors go
through :func:`rpc`, which applies the single error -> status table in ``errors``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from edgeinspect.core.agentapi import ext_grpc, ext_pb2, sm_grpc, sm_pb2
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger

from edgeinspect_inference.agent import convert
from edgeinspect_inference.agent.capture import AuxiliaryData, CaptureRequest, CaptureStore
from edgeinspect_inference.agent.errors import (
    InvalidInputError,
    ModelNotFoundError,
    clip,
    describe,
    status_name,
)
from edgeinspect_inference.agent.inputs import Decoder
from edgeinspect_inference.agent.records import PredictCall
from edgeinspect_inference.agent.table import ModelTable

log = get_logger(__name__)
T = TypeVar("T")
Handler = Callable[[Any, Any, grpc.ServicerContext], T]
_CAPTURE_STATUS = {"IN_PROGRESS": sm_pb2.IN_PROGRESS, "SUCCESS": sm_pb2.SUCCESS, "FAILURE": sm_pb2.FAILURE}


def rpc(handler: Handler[T]) -> Handler[T]:
    """Wrap a servicer method: a domain error becomes its gRPC status, an unexpected one INTERNAL (logged)."""
    method = handler.__name__

    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return handler(self, request, context)
        except EdgeInspectError as exc:
            code = status_name(exc)
            frame_id = clip(str(getattr(request, "frame_id", "")))
            error = clip(str(exc), 1000)
            log.warning("request_refused", method=method, code=code, error=error, frame_id=frame_id)
            context.abort(grpc.StatusCode[code], describe(exc))
        except Exception as exc:  # an agent bug must answer INTERNAL, never kill the server thread silently
            log.exception("request_failed", method=method)
            context.abort(grpc.StatusCode.INTERNAL, describe(exc))
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


class CompatServicer(sm_grpc.AgentServicer):
    """``AWS.SageMaker.Edge.Agent``: the original API, for applications built on its stubs."""

    def __init__(
        self, table: ModelTable, captures: CaptureStore, decoder: Decoder, float_pixels: bool = True
    ) -> None:
        self._table = table
        self._captures = captures
        self._decoder = decoder
        self._float_pixels = float_pixels

    @rpc
    def Predict(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.PredictResponse:
        feeds = self._decoder.compat_feeds(request.name, request.tensors)
        outcome = self._table.predict(request.name, feeds)
        return sm_pb2.PredictResponse(tensors=convert.tensors(outcome.outputs))

    @rpc
    def LoadModel(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.LoadModelResponse:
        if not request.name:
            raise InvalidInputError("LoadModel needs a name (pattern ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$)")
        model = self._table.load(request.url, name=request.name, exclusive_name=True)
        return sm_pb2.LoadModelResponse(model=convert.compat_model(model, float_pixels=self._float_pixels))

    @rpc
    def UnLoadModel(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.UnLoadModelResponse:
        name, _, version = request.name.partition(":")
        self._table.unload(name, version)
        self._decoder.detach_segments()
        return sm_pb2.UnLoadModelResponse()

    @rpc
    def ListModels(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.ListModelsResponse:
        return sm_pb2.ListModelsResponse(
            models=[
                convert.compat_model(m, float_pixels=self._float_pixels)
                for m in self._table.latest_versions()
            ]
        )

    @rpc
    def DescribeModel(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.DescribeModelResponse:
        model, _ = self._table.resolve(request.name)
        described = convert.compat_model(model, request.name, float_pixels=self._float_pixels)
        return sm_pb2.DescribeModelResponse(model=described)

    @rpc
    def CaptureData(self, request: Any, context: grpc.ServicerContext) -> sm_pb2.CaptureDataResponse:
        inputs = self._decoder.capture_arrays(request.model_name, request.input_tensors)
        outputs = self._decoder.capture_arrays(request.model_name, request.output_tensors)
        timestamp = request.inference_timestamp
        self._captures.submit(
            CaptureRequest(
                capture_id=request.capture_id,
                model_name=request.model_name,
                inputs={k: v.copy() for k, v in inputs.items()},  # shared memory may change after we return
                outputs={k: v.copy() for k, v in outputs.items()},
                auxiliary=[
                    *(_auxiliary("input", aux) for aux in request.inputs),
                    *(_auxiliary("output", aux) for aux in request.outputs),
                ],
                **({"ts_ns": timestamp.seconds * 10**9 + timestamp.nanos} if timestamp.seconds else {}),
            )
        )
        return sm_pb2.CaptureDataResponse()

    @rpc
    def GetCaptureDataStatus(
        self, request: Any, context: grpc.ServicerContext
    ) -> sm_pb2.GetCaptureDataStatusResponse:
        status = self._captures.status(request.capture_id)
        code = _CAPTURE_STATUS[status] if status is not None else sm_pb2.NOT_FOUND
        return sm_pb2.GetCaptureDataStatusResponse(status=code)


def _auxiliary(role: str, aux: Any) -> AuxiliaryData:
    """An ``AuxilaryData`` as the capture keeps it (bytes only: shared memory is for tensors)."""
    if aux.WhichOneof("data") == "shared_memory_handle":
        raise InvalidInputError(f"auxiliary data {clip(aux.name)!r} uses shared memory; send it as byte_data")
    return AuxiliaryData(role, aux.name, sm_pb2.Encoding.Name(aux.encoding), bytes(aux.byte_data))


class ExtensionServicer(ext_grpc.AgentServicer):
    """``edgeinspect.agent.v1.Agent``: versions, aliases, shadows, batched predict, stats and health."""

    def __init__(self, table: ModelTable, decoder: Decoder, providers: list[str], serving: Any) -> None:
        self._table = table
        self._decoder = decoder
        self._providers = providers
        self._serving = serving

    @rpc
    def LoadVersion(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.ModelVersionInfo:
        model = self._table.load(request.url, variant=request.variant, warmup=request.warmup)
        return convert.version_info(model)

    @rpc
    def UnloadVersion(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.UnloadVersionResponse:
        if not request.version:
            raise InvalidInputError(
                "UnloadVersion needs a version (compat UnLoadModel unloads every version)"
            )
        self._table.unload(request.name, request.version)
        self._decoder.detach_segments()
        return ext_pb2.UnloadVersionResponse()

    @rpc
    def ListVersions(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.ListVersionsResponse:
        return ext_pb2.ListVersionsResponse(
            versions=[convert.version_info(m) for m in self._table.versions()]
        )

    @rpc
    def SetAlias(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.AliasInfo:
        return convert.alias_info(self._table.set_alias(request.alias, request.name, request.version))

    @rpc
    def ListAliases(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.ListAliasesResponse:
        return ext_pb2.ListAliasesResponse(aliases=[convert.alias_info(e) for e in self._table.aliases()])

    @rpc
    def SetShadow(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.AliasInfo:
        return convert.alias_info(self._table.set_shadow(request.alias, request.version))

    @rpc
    def Predict(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.PredictResponse:
        feeds = self._decoder.feeds(request.model, request.tensors)
        outcome = self._table.predict(request.model, feeds, wait_shadow=request.wait_shadow)
        log.debug(
            "predicted",
            frame_id=request.frame_id,
            model=outcome.name,
            version=outcome.version,
            latency_ms=round(outcome.latency_ms, 3),
        )
        return convert.predict_response(outcome)

    @rpc
    def PredictBatch(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.PredictBatchResponse:
        calls = [
            PredictCall(r.model, self._decoder.feeds(r.model, r.tensors), r.frame_id)
            for r in request.requests
        ]
        wait = any(r.wait_shadow for r in request.requests)
        outcomes = self._table.predict_batch(calls, wait_shadow=wait)
        return ext_pb2.PredictBatchResponse(responses=[convert.predict_response(o) for o in outcomes])

    @rpc
    def GetModelStats(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.GetModelStatsResponse:
        rows = self._table.stats(request.name)
        if request.name and not rows:
            raise ModelNotFoundError(f"model {clip(request.name)!r} is not loaded")
        return ext_pb2.GetModelStatsResponse(stats=[s.to_proto() for _, s in rows])

    @rpc
    def Health(self, request: Any, context: grpc.ServicerContext) -> ext_pb2.HealthResponse:
        return ext_pb2.HealthResponse(
            serving=bool(self._serving()),
            models_loaded=len(self._table.versions()),
            execution_providers=self._providers,
        )
