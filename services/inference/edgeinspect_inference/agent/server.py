"""Assemble the agent: model table, capture store, both services, health checking and reflection.

One gRPC server serves ``AWS.SageMaker.Edge.Agent`` and ``edgeinspect.agent.v1.Agent`` on the unix
socket (and an optional TCP port) from a thread pool, so many predictions run at once; ONNX Runtime
releases the GIL while a model runs. Stopping is graceful: health turns NOT_SERVING, new calls are
refused, calls in flight get ``shutdown_grace_s`` to finish, then shadows and captures drain.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from edgeinspect.core.agentapi import ext_grpc, ext_pb2, sm_grpc, sm_pb2
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.fastpath import fast_socket_path
from edgeinspect.core.names import UPLOADER_GROUP, capture_stream
from edgeinspect.core.observability import get_logger
from edgeinspect.core.retention import trimmed_counter
from edgeinspect.core.streams import Streams
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from edgeinspect_inference.agent.auth import interceptors
from edgeinspect_inference.agent.capture import CaptureStore
from edgeinspect_inference.agent.errors import ModelNotFoundError
from edgeinspect_inference.agent.fastpath import FastPathServer
from edgeinspect_inference.agent.inputs import Decoder
from edgeinspect_inference.agent.loader import LoadedModel, LoadOptions, PackageLoader
from edgeinspect_inference.agent.providers import resolve
from edgeinspect_inference.agent.servicers import CompatServicer, ExtensionServicer
from edgeinspect_inference.agent.session import available_providers
from edgeinspect_inference.agent.settings import AgentSettings
from edgeinspect_inference.agent.shadow import ShadowRunner
from edgeinspect_inference.agent.shm import SegmentReader
from edgeinspect_inference.agent.stats import AgentMetrics
from edgeinspect_inference.agent.table import ModelTable
from edgeinspect_inference.agent.tuning import TuningOptions

log = get_logger(__name__)
COMPAT_SERVICE = sm_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
EXTENSION_SERVICE = ext_pb2.DESCRIPTOR.services_by_name["Agent"].full_name


def unix_socket_path(addr: str) -> Path | None:
    """``unix:///run/x.sock`` or ``unix:/run/x.sock`` -> ``/run/x.sock``; ``None`` for a TCP address."""
    if not addr.startswith("unix:"):
        return None
    rest = addr.removeprefix("unix:")
    return Path(rest[2:] if rest.startswith("//") else rest)


def build_table(settings: AgentSettings, registry: CollectorRegistry) -> ModelTable:
    """The model table as the settings describe it (also used by tests and the bench, without gRPC)."""
    metrics = AgentMetrics(registry)
    options = LoadOptions(
        providers=tuple(resolve(settings.execution_providers, available_providers)),
        model_dir=settings.model_dir,
        trusted_keys_dir=settings.trusted_keys_dir,
        intra_op_threads=settings.intra_op_threads,
        allow_spinning=settings.allow_spinning,
        warmup_runs=settings.warmup_runs,
        max_batch=settings.max_batch,
        max_manifest_bytes=settings.max_manifest_bytes,
        tuning=tuning_options(settings),
        precision=settings.precision,
    )
    shadows = ShadowRunner(metrics, settings.shadow_threads, settings.shadow_max_pending)
    return ModelTable(PackageLoader(options, metrics), metrics, shadows)


def tuning_options(settings: AgentSettings) -> TuningOptions:
    """``EI_PROVIDER_TUNING*`` as the loader takes them."""
    return TuningOptions(
        enabled=settings.provider_tuning,
        budget_s=settings.provider_tuning_budget_s,
        warmup_runs=max(1, min(settings.warmup_runs, 2)),
        timed_runs=settings.provider_tuning_runs,
        cache_dir=settings.provider_tuning_cache_dir or settings.model_dir / ".provider-tuning",
        rtol=settings.provider_rtol,
        atol=settings.provider_atol,
        int8_atol=settings.provider_int8_atol,
    )


class AgentServer:
    """The running agent; ``start()`` binds and serves, ``stop()`` drains and releases everything."""

    def __init__(self, settings: AgentSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.table = build_table(settings, registry)
        sink = Streams.from_url(settings.redis_url, settings.stream_maxlen) if settings.redis_url else None
        if sink is not None:  # CaptureData adds to ei:capture: bounded like the worker's captures
            sink.retain(
                capture_stream(), settings.stream_budget("capture"), group=UPLOADER_GROUP,
                counter=trimmed_counter(registry),
            )  # fmt: skip
        self.captures = CaptureStore(
            sink,
            self._lookup,
            settings.line,
            settings.capture_status_max,
            max_pending=settings.capture_max_pending,
            max_pending_bytes=settings.capture_max_pending_bytes,
        )
        self.providers = [p.name for p in resolve(settings.execution_providers, available_providers)]
        self._serving = threading.Event()
        self._health = health.HealthServicer()
        self._server = self._build_server()
        self.fast_path = self._build_fast_path()

    def _build_fast_path(self) -> FastPathServer | None:
        """The worker's fast path beside a unix gRPC socket (None: off, or the agent is TCP-only)."""
        path = fast_socket_path(self.settings.agent_addr) if self.settings.fast_path else None
        if path is None:
            return None
        return FastPathServer(
            path,
            self.table,
            max_segment_bytes=self.settings.max_tensor_bytes,
            max_connections=self.settings.fast_path_max_connections,
            batch_window_ms=self.settings.fast_path_batch_window_ms,
            mode_of=unix_socket_path(self.settings.agent_addr),
        )

    def _lookup(self, name: str) -> LoadedModel | None:
        try:
            return self.table.resolve(name)[0]
        except ModelNotFoundError:
            return None

    def _build_server(self) -> grpc.Server:
        settings = self.settings
        server = grpc.server(
            ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            interceptors=interceptors(settings.token()),
        )
        self._segments = SegmentReader(settings.shm_dir, settings.max_tensor_bytes)
        decoder = Decoder(self.table, self._segments)
        float_pixels = settings.compat_pixels == "float32"
        compat = CompatServicer(self.table, self.captures, decoder, float_pixels)
        sm_grpc.add_AgentServicer_to_server(compat, server)  # type: ignore[no-untyped-call]
        ext = ExtensionServicer(self.table, decoder, self.providers, self._serving.is_set)
        ext_grpc.add_AgentServicer_to_server(ext, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (COMPAT_SERVICE, EXTENSION_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        return server

    @property
    def serving(self) -> bool:
        return self._serving.is_set()

    def _bind(self, addr: str) -> None:
        socket_path = unix_socket_path(addr)
        if socket_path is not None:
            socket_path.parent.mkdir(parents=True, exist_ok=True)
            if socket_path.is_socket():
                socket_path.unlink()  # left by a killed agent; nobody can be listening on it now
        tls = self.settings.server_tls() if socket_path is None else None
        try:
            if tls is not None:
                self._server.add_secure_port(addr, tls.credentials())
            else:
                self._server.add_insecure_port(addr)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot listen on {addr!r}: {exc}", hint="check EI_AGENT_ADDR / EI_AGENT_TCP_ADDR"
            ) from exc

    def start(self) -> AgentServer:
        """Bind every address, start serving and report SERVING to health checks."""
        addrs = [a for a in (self.settings.agent_addr, self.settings.agent_tcp_addr) if a]
        for addr in addrs:
            self._bind(addr)
        self._server.start()
        if self.fast_path is not None:
            self.fast_path.start()  # after gRPC bound its socket, whose file mode it copies
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self._serving.set()
        log.info(
            "agent_serving",
            addrs=addrs,
            providers=self.providers,
            threads=self.settings.grpc_threads,
            tcp_tls=self.settings.server_tls() is not None,
            mtls=self.settings.agent_tls_client_ca_file is not None,
            fast_path=str(self.fast_path.path) if self.fast_path is not None else "",
        )
        return self

    def _set_health(self, status: int) -> None:
        for service in ("", COMPAT_SERVICE, EXTENSION_SERVICE):
            self._health.set(service, status)

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls, let calls in flight finish (up to the grace period), then release resources."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        self._serving.clear()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("agent_stopping", grace_s=grace)
        drained = self._server.stop(grace)  # refuses new calls now; in-flight ones drain meanwhile
        if self.fast_path is not None:
            self.fast_path.stop(grace)
        drained.wait()
        self.table.close()
        self.captures.close()
        self._segments.close()
        socket_path = unix_socket_path(self.settings.agent_addr)
        if socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
        log.info("agent_stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server terminates (True) or ``timeout`` passes (False)."""
        return bool(self._server.wait_for_termination(timeout))
