"""Run the local stack until Ctrl-C or SIGTERM: the body of ``edgeinspect up``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from edgeinspect_cloud.stack.lifecycle import FolderLifecycle
from edgeinspect_cloud.stack.logfile import RotatingLog
from edgeinspect_cloud.stack.supervisor import Supervisor
from edgeinspect_cloud.stack.topology import StackConfig, mqtt_spec, redis_spec, service_specs


def start_stack(cfg: StackConfig, supervisor: Supervisor) -> None:
    """Start servers, then services, each waiting for the previous to be ready; then watch them."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    supervisor.say("stack", f"state in {cfg.state_dir}")
    for spec in (redis_spec(cfg), mqtt_spec(cfg), *service_specs(cfg)):
        supervisor.say("stack", f"starting {spec.name}")
        supervisor.start(spec)
    supervisor.watch()
    supervisor.say("stack", f"redis {cfg.redis_url} | mqtt {cfg.mqtt_url} | agent {cfg.agent_addr}")
    if not cfg.verbose:
        supervisor.say("stack", f"service logs in {cfg.log_dir} (--verbose streams them here)")
    supervisor.say("stack", f"UI: http://localhost:{cfg.ui_port}   (Ctrl-C stops everything)")


def install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to ``stop``; returns a function restoring the previous handlers."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, _handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def run_stack(
    cfg: StackConfig,
    after_start: Callable[[Supervisor], None] | None = None,
    stop_after_start: bool = False,
) -> int:
    """Start everything, run ``after_start`` (the demo's steps), then wait for a stop signal
    (or stop at once with ``stop_after_start``, for tests)."""
    stop = threading.Event()
    restore = install_stop_signals(stop)
    supervisor = Supervisor(log_dir=cfg.log_dir, verbose=cfg.verbose)
    lifecycle_log = RotatingLog(cfg.log_dir / "lifecycle.log")
    lifecycle = FolderLifecycle(cfg.storage_dir, cfg.bucket_max_mb * 1024 * 1024, note=lifecycle_log.write)
    try:
        start_stack(cfg, supervisor)
        lifecycle.start()
        if after_start is not None:
            after_start(supervisor)
        while not stop_after_start and not stop.wait(0.5):
            pass
        supervisor.say("stack", "stopping")
        return 0
    except RuntimeError as exc:
        supervisor.say("stack", f"error: {exc}", 91)
        return 1
    finally:
        lifecycle.stop()
        lifecycle_log.close()
        supervisor.stop()
        restore()
