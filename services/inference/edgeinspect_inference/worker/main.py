"""``edgeinspect-inference``: settings, health server, wait for Redis and the agent, judge frames, stop.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT: frames in flight are finished and acknowledged
first), 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import sys
import threading

import redis
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.lifecycle import install_signal_handlers, retry_until
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, run_service
from edgeinspect.core.streams import Streams

from edgeinspect_inference.worker.service import WorkerService
from edgeinspect_inference.worker.settings import WorkerSettings

log = get_logger("edgeinspect_inference.worker")

CLI = ServiceCli(
    prog="edgeinspect-inference",
    description="The inference worker: frames from Redis -> agent (classification + segmentation) -> "
    "results, captures and alerts. Configured by EI_ environment variables; "
    "see services/inference/README.md.",
    settings=WorkerSettings,
    url_fields=("redis_url", "mqtt_url", "webhook_url"),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    return run_service(CLI, argv, serve)


def serve(settings: WorkerSettings) -> int:
    """Wait for Redis and the agent, judge frames until SIGTERM, then finish what is in flight."""
    health = Health()
    stop = install_signal_handlers(health)
    streams = Streams.from_url(settings.redis_url, maxlen=settings.stream_maxlen, block_ms=settings.block_ms)
    agent = AgentClient(settings.agent_addr, timeout_s=settings.agent_timeout_s, tls=settings.agent_tls())
    service = WorkerService(settings, streams, agent)
    health.add_check("redis", streams.ping)
    health.add_check("agent", service.agent_ready)
    health.add_check("frames_stream", service.worker.consuming)
    http = HealthServer(health, settings.http_host, settings.http_port, service.metrics.registry).start()
    log.info("worker_starting", http_port=http.port, line=settings.line, agent=settings.agent_addr)
    try:
        if _wait_for_dependencies(streams, agent, stop):
            service.run(stop)
    finally:
        service.close()
        http.stop()
        agent.close()
        streams.close()
    return 0


def _wait_for_dependencies(streams: Streams, agent: AgentClient, stop: threading.Event) -> bool:
    """Block (with backoff, logging each retry) until Redis and the agent answer; False if stopped."""
    redis_ok = retry_until(streams.client.ping, stop, what="redis", errors=(redis.RedisError,))
    agent_ok = retry_until(lambda: agent.wait_ready(5.0), stop, what="agent", errors=(AgentError,))
    return redis_ok is not None and agent_ok is not None


if __name__ == "__main__":
    sys.exit(main())
