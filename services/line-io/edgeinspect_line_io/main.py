"""``edgeinspect-line-io``: the line's PLC I/O - triggers in, verdicts and reject pulses out (README).

edgeinspect-line-io                 run until SIGTERM/SIGINT
edgeinspect-line-io --check-config  validate the EI_ settings, print them, exit 0 (or 2)
"""

from __future__ import annotations

import logging
import sys

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.observability import Health, HealthServer, get_logger
from edgeinspect.core.service_main import ServiceCli, refuse, run_service

from edgeinspect_line_io.build import build_service
from edgeinspect_line_io.settings import LineIoSettings

log = get_logger("edgeinspect_line_io")
GIL_SWITCH_S = 0.0005

CLI = ServiceCli(
    prog="edgeinspect-line-io",
    description=__doc__.split("\n")[0],
    settings=LineIoSettings,
    url_fields=("redis_url", "camera_url", "opcua_plc_url"),
    sort_keys=True,
)


def main(argv: list[str] | None = None) -> int:
    """Run the line I/O; returns the process exit code (0 after a clean shutdown)."""
    return run_service(CLI, argv, serve)


def serve(settings: LineIoSettings) -> int:
    """Serve the PLC connections until SIGTERM, with health, metrics and /status alongside."""
    # asyncua logs every node of the standard address space it loads at INFO: keep its warnings only
    logging.getLogger("asyncua").setLevel(max(logging.WARNING, logging.getLogger().level))
    # a thread woken for a due pulse waits at most this long for the GIL (the default is 5 ms)
    sys.setswitchinterval(GIL_SWITCH_S)
    health = Health()
    stop = install_signal_handlers(health)
    try:
        line = build_service(settings)
    except (EdgeInspectError, ValueError) as exc:
        return refuse(CLI.prog, exc)
    line.service.add_health_checks(health)
    server = HealthServer(
        health, settings.http_host, settings.http_port, line.service.registry, {"/status": line.status_route}
    )
    server.start()
    try:
        line.start()
    except EdgeInspectError as exc:
        server.stop()
        return refuse(CLI.prog, exc)
    log.info("line_io_ready", http_port=server.port, line=settings.line)
    stop.wait()
    log.info("line_io_stopping", line=settings.line)
    line.stop()
    server.stop()
    log.info("line_io_stopped", **line.service.metrics.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
