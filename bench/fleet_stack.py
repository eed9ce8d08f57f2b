"""The cloud side for ``bench.fleet``: PostgreSQL, Mosquitto and ``edgeinspect fleet serve`` on loopback.

Started like the test fixtures start them (tests/fixtures/postgres_server.py, mqtt_broker.py): a fresh
cluster in a temporary folder (as the ``postgres`` user when we are root), a broker without
persistence, each on a free port; the fleet service is the real console command in a child process,
so its CPU time and memory are its own and it can be restarted mid-rollout. PostgreSQL preloads
``pg_stat_statements`` when the server has it, for per-statement timings.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from edgeinspect_cloud.fleet import FleetStore

from bench.stack import LOOPBACK, free_port, rss_mb

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True) or [shutil.which(name) or ""]
    if not found[0]:
        raise SystemExit(f"PostgreSQL's {name} is not installed: sudo apt-get install -y postgresql")
    return found[0]


def _pg_user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {timeout:.0f}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Postgres:
    """A throwaway cluster; ``url`` is its ``fleet`` database."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    stat_statements: bool = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/fleet"

    def start(self) -> None:
        import psycopg

        user = _pg_user()
        work = self.root / "pg"
        work.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(work, user, user)
        subprocess.run(
            [_pg_binary("initdb"), "-D", str(work / "data"), "-U", "postgres", "-A", "trust", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            capture_output=True, check=True, user=user, group=user, cwd=work,
        )  # fmt: skip
        lib = Path(_pg_binary("postgres")).parent.parent / "lib" / "pg_stat_statements.so"
        self.stat_statements = lib.exists()
        extra = ["-c", "shared_preload_libraries=pg_stat_statements"] if self.stat_statements else []
        with open(work / "postgres.log", "ab") as log:
            self.proc = subprocess.Popen(
                [_pg_binary("postgres"), "-D", str(work / "data"), "-p", str(self.port), "-h", LOOPBACK,
                 "-k", str(work), "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "synchronous_commit=off", "-c", "max_connections=100", *extra],
                stdout=log, stderr=subprocess.STDOUT, user=user, group=user, cwd=work,
            )  # fmt: skip

        def accepting() -> bool:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        _wait(accepting, 60, "PostgreSQL")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE fleet")
        if self.stat_statements:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Mosquitto:
    """A broker without persistence that publishes its ``$SYS`` counters every second."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed: sudo apt-get install -y mosquitto")
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} {LOOPBACK}",
                    "allow_anonymous true",
                    "persistence false",
                    f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                    f"log_dest file {self.root / 'mosquitto.log'}",
                    "log_type error",
                    "log_type warning",
                    "set_tcp_nodelay true",
                    "max_queued_messages 100000",
                    "sys_interval 1",
                ]
            )
            + "\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        import socket

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, self.port)) == 0

        _wait(listening, 20, "Mosquitto")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@dataclass
class FleetProcess:
    """``python -m edgeinspect_cloud.cli fleet serve``; restartable, its CPU summed over every run."""

    root: Path
    db_url: str
    broker_url: str
    prefix: str
    extra_env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    client_id: str = field(default_factory=lambda: f"fleet-{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen[bytes] | None = None
    cpu_done: float = 0.0
    peak_rss_mb: float = 0.0
    restarts: int = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        env.update(
            {
                "EI_FLEET_DB": self.db_url,
                "EI_MQTT_URL": self.broker_url,
                "EI_MQTT_CLIENT_ID": self.client_id,  # the same id across restarts: its session survives
                "EI_JOBS_PREFIX": self.prefix,
                "EI_STATE_TOPIC_ROOT": self.prefix,
                "EI_FLEET_POLL_INTERVAL_S": "0.5",
                "EI_HTTP_HOST": LOOPBACK,
                "EI_HTTP_PORT": str(self.http_port),
                "EI_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        with open(self.root / "fleet.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeinspect_cloud.cli", "fleet", "serve"],
                env=self.env(), stdout=log, stderr=log,
            )  # fmt: skip
        _wait(self.ready, 60, "the fleet service")

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemExit(f"the fleet service exited: {(self.root / 'fleet.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"http://{LOOPBACK}:{self.http_port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def sample(self) -> None:
        """Record the peak RSS so far (call it now and then)."""
        if self.proc is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.proc.pid, "VmHWM"))

    def cpu(self) -> float:
        """CPU seconds of every run so far."""
        return self.cpu_done + (cpu_seconds(self.proc.pid) if self.proc is not None else 0.0)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.sample()
        cpu = cpu_seconds(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cpu_done += cpu
        self.proc = None

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.restarts += 1
        self.start()

    def metrics(self) -> str:
        try:
            return httpx.get(f"http://{LOOPBACK}:{self.http_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""


def temp_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="ei-bench-fleet-", dir="/tmp"))
    if os.geteuid() == 0:
        os.chmod(root, 0o755)  # the postgres user must reach its folder
    return root


@dataclass
class Stack:
    """PostgreSQL, Mosquitto, the fleet service and a store connection, started in that order.

    ``close()`` stops what was started in reverse order, whatever happened; a stop that fails is
    reported through ``report`` rather than raised, so the servers after it are still stopped.
    """

    root: Path
    report: Callable[[str], None]
    prefix: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> tuple[Postgres, Mosquitto, FleetProcess, FleetStore]:
        pg, broker = Postgres(self.root), Mosquitto(self.root)
        pg.start()
        self.closers.append(pg.stop)
        broker.start()
        self.closers.append(broker.stop)
        service = FleetProcess(self.root, pg.url, f"mqtt://{LOOPBACK}:{broker.port}", self.prefix)
        service.start()
        self.closers.append(service.stop)
        store = FleetStore.open(pg.url)
        self.closers.append(store.close)
        return pg, broker, service, store

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:
                self.report(f"cleanup: {exc}")
