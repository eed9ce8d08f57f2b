"""A small process supervisor for ``edgeinspect up``: starts the stack's processes in order, writes
each one's output to its own bounded log file (and, with ``verbose``, to one coloured, prefixed
console stream), restarts a child that dies (reporting it with its last lines), and stops everything
in reverse order on Ctrl-C or SIGTERM, leaving no process behind.

The console is for people: steps, addresses, errors and the scoreboard. Services log a JSON line per
event, several a second; on the console those would bury the one line that says where the UI is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from edgeinspect.core.lifecycle import Backoff

from edgeinspect_cloud.stack.logfile import RotatingLog, is_error_line

COLOURS = (36, 32, 33, 35, 34, 91, 92, 93, 94, 95, 96)
PR_SET_PDEATHSIG = 1
TAIL_LINES = 12
"""Lines of a child's output kept in memory, shown on the console when it exits."""
ERROR_LINE_INTERVAL_S = 10.0
"""Without ``verbose``, at most one error line per child this often reaches the console."""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor itself dies (even by SIGKILL), so a
    killed ``edgeinspect up`` never leaves orphaned services holding ports (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    """One child: its name in the log, its command, its environment and how to tell it is up."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    ready_timeout_s: float = 60.0
    restart: bool = True
    cwd: str | None = None


@dataclass
class _Child:
    spec: ProcessSpec
    colour: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0))
    next_start: float = 0.0
    log: RotatingLog | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    last_error_shown: float = 0.0


class Supervisor:
    """Runs a list of ``ProcessSpec`` as one stack; thread-safe ``stop()``."""

    def __init__(
        self,
        out: IO[str] | None = None,
        colour: bool | None = None,
        log_dir: Path | None = None,
        verbose: bool = False,
    ) -> None:
        self._out = out or sys.stdout
        self._colour = self._out.isatty() if colour is None else colour
        self._log_dir = log_dir
        self._verbose = verbose or log_dir is None
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # --- output -------------------------------------------------------------------------------
    def say(self, name: str, line: str, colour: int = 37) -> None:
        width = max([len(c.spec.name) for c in self._children] + [len(name), 8])
        prefix = f"{name:<{width}} |"
        if self._colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._lock:
            self._out.write(f"{prefix} {line.rstrip()}\n")
            self._out.flush()

    def log_path(self, name: str) -> Path | None:
        """Where a child's (or a demo step's) output goes; None when everything goes to the console."""
        if self._log_dir is None:
            return None
        return self._log_dir / f"{name.replace(':', '-')}.log"

    def _pump(self, child: _Child, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            child.tail.append(line.rstrip())
            if child.log is not None:
                child.log.write(line)
            if self._verbose:
                self.say(child.spec.name, line, child.colour)
            elif is_error_line(line) and time.monotonic() - child.last_error_shown > ERROR_LINE_INTERVAL_S:
                child.last_error_shown = time.monotonic()
                self.say(child.spec.name, _clip(line), 91)

    def _show_tail(self, child: _Child) -> None:
        """A child that died: its last lines on the console, so nobody has to open the log first."""
        if self._verbose or not child.tail:
            return
        where = self.log_path(child.spec.name)
        self.say(child.spec.name, f"last {len(child.tail)} lines (all in {where}):", 91)
        for line in list(child.tail):
            self.say(child.spec.name, _clip(line), 91)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, spec: ProcessSpec) -> None:
        """Start one process and wait until its readiness check passes (or fail loudly)."""
        child = _Child(spec, COLOURS[len(self._children) % len(COLOURS)])
        path = self.log_path(spec.name)
        if path is not None:
            child.log = RotatingLog(path)
        self._children.append(child)
        self._spawn(child)
        if spec.ready is not None and not self._wait_ready(child):
            self._show_tail(child)
            raise RuntimeError(
                f"{spec.name} did not become ready within {spec.ready_timeout_s:.0f}s; "
                f"see its log lines above{self._log_hint(spec.name)}"
            )

    def _spawn(self, child: _Child) -> None:
        env = {**os.environ, **child.spec.env, "PYTHONUNBUFFERED": "1"}
        child.proc = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            cwd=child.spec.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our signals reach it only through us: clean, ordered shutdown
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._pump, args=(child, child.proc), daemon=True).start()

    def _wait_ready(self, child: _Child) -> bool:
        deadline = time.monotonic() + child.spec.ready_timeout_s
        assert child.spec.ready is not None
        while time.monotonic() < deadline and not self._stopping.is_set():
            if child.proc is not None and child.proc.poll() is not None:
                return False
            try:
                if child.spec.ready():
                    return True
            except Exception:  # a readiness probe that raises means "not yet"
                pass
            time.sleep(0.2)
        return False

    def watch(self) -> None:
        """Restart children that die (with backoff), until ``stop()``; runs on a background thread."""
        self._monitor = threading.Thread(target=self._watch_loop, name="supervisor", daemon=True)
        self._monitor.start()

    def _watch_loop(self) -> None:
        while not self._stopping.wait(0.5):
            for child in list(self._children):
                self._check(child)

    def _check(self, child: _Child) -> None:
        proc = child.proc
        if proc is None or proc.poll() is None or self._stopping.is_set():
            return
        now = time.monotonic()
        if child.next_start == 0.0:
            delay = child.backoff.next_delay()
            child.next_start = now + delay
            how = "will restart" if child.spec.restart else "not restarting"
            self.say(
                "stack", f"{child.spec.name} exited with code {proc.returncode}; {how} in {delay:.1f}s", 91
            )
            self._show_tail(child)
            if not child.spec.restart:
                child.proc = None
            return
        if now >= child.next_start and child.spec.restart:
            child.restarts += 1
            child.next_start = 0.0
            self.say("stack", f"restarting {child.spec.name} (restart #{child.restarts})", 93)
            self._spawn(child)

    def pids(self) -> dict[str, int]:
        return {
            c.spec.name: c.proc.pid for c in self._children if c.proc is not None and c.proc.poll() is None
        }

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every child in reverse start order, SIGKILL what ignores it; idempotent."""
        self._stopping.set()
        for child in reversed(self._children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.say("stack", f"{child.spec.name} ignored SIGTERM for {timeout_s:.0f}s; killing it", 91)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        for child in self._children:
            if child.log is not None:
                child.log.close()
        self.say("stack", "all processes stopped")

    def _log_hint(self, name: str) -> str:
        path = self.log_path(name)
        return "" if path is None else f" and in {path}"

    @property
    def stopping(self) -> threading.Event:
        return self._stopping


def _clip(line: str, limit: int = 400) -> str:
    """One console line, however long the logged one was."""
    line = line.rstrip()
    return line if len(line) <= limit else f"{line[:limit]}... (cut)"
