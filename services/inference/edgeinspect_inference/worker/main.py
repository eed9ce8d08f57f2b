"""``edgeinspect-inference``: settings, health server, wait for Redis and the agent, judge frames, stop.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT: frames in flight are finished and acknowledged
first), 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import redis
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError, ConfigError
from edgeinspect.core.lifecycle import install_signal_handlers, retry_until
from edgeinspect.core.observability import Health, HealthServer, configure_logging, get_logger
from edgeinspect.core.streams import Streams

from edgeinspect_inference.worker.service import WorkerService
from edgeinspect_inference.worker.settings import WorkerSettings

log = get_logger("edgeinspect_inference.worker")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edgeinspect-inference",
        description="The inference worker: frames from Redis -> agent (classification + segmentation) -> "
        "results, captures and alerts. Configured by EI_ environment variables; "
        "see services/inference/README.md.",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse_args(argv)
    try:
        settings = WorkerSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-inference: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=WorkerSettings.service_name)
    if args.check_config:
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    health = Health()
    stop = install_signal_handlers(health)
    streams = Streams.from_url(settings.redis_url, maxlen=settings.stream_maxlen)
    agent = AgentClient(settings.agent_addr, timeout_s=settings.agent_timeout_s)
    service = WorkerService(settings, streams, agent)
    health.add_check("redis", streams.ping)
    health.add_check("agent", service.agent_ready)
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
