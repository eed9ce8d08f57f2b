"""A private edge stack for benchmarks: redis-server, the agent and a worker as real processes (loopback).

Shared by the benchmarks (import ``bench.stack``). Everything lives in one temporary directory and
is stopped by :meth:`BenchStack.close` (SIGTERM, then SIGKILL after a grace period), so a benchmark
never touches a developer's own Redis or agent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.package import load_private_key, write_keypair

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory (``VmRSS``) or its peak (``VmHWM``) of a process in MiB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update({f"EI_{k.upper()}": v for k, v in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class BenchStack:
    """Start with :meth:`start`; ``redis_url``, ``agent_addr`` and the processes are then set."""

    agent_settings: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ei-bench-", dir="/tmp")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_url: str = ""
    agent_addr: str = ""

    @property
    def trusted_dir(self) -> Path:
        return self.root / "keys" / "trusted"

    def signing_key(self) -> Ed25519PrivateKey:
        """A fresh ed25519 key whose public half the agent trusts."""
        private, public = write_keypair(self.root / "keys" / "private", "bench")
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(public, self.trusted_dir / public.name)
        return load_private_key(private)

    def start(self) -> BenchStack:
        self._start_redis()
        self._start_agent()
        return self

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: sudo apt-get install -y redis-server")
        port = free_port()
        args = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        self.procs["redis"] = subprocess.Popen(
            [*args, "--dir", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.redis_url = f"redis://{LOOPBACK}:{port}/0"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((LOOPBACK, port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def _start_agent(self) -> None:
        self.agent_addr = f"unix://{self.root / 'agent.sock'}"
        settings = {
            "agent_addr": self.agent_addr,
            "model_dir": str(self.root / "models"),
            "trusted_keys_dir": str(self.trusted_dir),
            "http_port": "0",
            "log_level": "WARNING",
            "redis_url": self.redis_url,
        }
        settings.update(self.agent_settings)
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        self.procs["agent"] = self._spawn("agent", "edgeinspect_inference.agent", settings)
        with AgentClient(self.agent_addr) as probe:
            probe.wait_ready(60)

    def start_worker(self, name: str = "worker", **settings: str) -> subprocess.Popen[bytes]:
        values = {
            "redis_url": self.redis_url,
            "agent_addr": self.agent_addr,
            "http_port": "0",
            "log_level": "WARNING",
            "consumer": name,
        }
        values.update(settings)
        proc = self._spawn(name, "edgeinspect_inference.worker", values)
        self.procs[name] = proc
        return proc

    def _spawn(self, name: str, module: str, settings: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([sys.executable, "-m", module], env=_env(**settings), stdout=log, stderr=log)
        log.close()
        return proc

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def close(self) -> None:
        """Stop workers, then the agent, then Redis; remove the directory."""
        for name in [n for n in self.procs if n not in ("agent", "redis")] + ["agent", "redis"]:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
