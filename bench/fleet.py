"""A fleet of simulated devices against the real jobs service: rollouts measured at scale.

What runs: PostgreSQL, Mosquitto and ``edgeinspect fleet serve`` (bench/fleet_stack.py), a model
registry on a local folder with a signed package per version, registered and approved the way a
person does it (``registry approve``), and ``--devices`` simulated devices (bench/fleet_sim.py: the
model manager's own jobs code, the agent stubbed). Each scenario deploys a new approved version to
every thing group, in waves of 1%, 10%, 50% and 100% that stop when more than 10% of a wave fails:

- ``waves``: every device succeeds;
- ``smoke_fail_5pct``: 5% of the devices fail their smoke test (below the threshold: the rollout goes on);
- ``abort``: half of the devices fail (the first wave trips the threshold: nothing else is touched);
- ``offline_20pct``: 20% of the devices are offline when the job is created and come back later;
- ``service_restart``: the fleet service is stopped (SIGTERM) and started again mid-rollout.

Figures per scenario: time to 99% and 100% of the expected successes, broker messages per second
(Mosquitto's ``$SYS`` counters), fleet service CPU and peak RSS, database rows, statement p99 (the
service's histogram) and the costliest statements (``pg_stat_statements``), jobs lost (an execution
never finished), devices inconsistent (the cloud and the device disagree on what it serves or how its
job ended) and jobs run twice. A table, PNG plots under ``--out``, and the JSON as the last line.

    .venv/bin/python -m bench.fleet --quick          # 100 devices, a smoke run (~2 min)
    .venv/bin/python -m bench.fleet                  # 1,000 devices
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeinspect_cloud.fleet import FleetStore, Rollout
from edgeinspect_cloud.fleet.deploy import approved_version, deploy_document
from edgeinspect_cloud.registry import ModelRegistry

from bench import report
from bench.fleet_sim import Fleet, SimDevice
from bench.fleet_stack import FleetProcess, Postgres, Stack, temp_root
from bench.stack import LOOPBACK

MODEL = "bench-cls"
PREFIX = "ei"
WAVE_PCT = (1.0, 10.0, 50.0, 100.0)
ABORT_PCT = 10.0
SCENARIOS = ("waves", "smoke_fail_5pct", "abort", "offline_20pct", "service_restart")
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED")


def progress(message: str) -> None:
    print(f"[fleet] {message}", file=sys.stderr, flush=True)


# ---- the registry: versions registered and approved as a person would ---------------------------


class Versions:
    """A file-backed registry with one signed package per version (the devices never download it)."""

    def __init__(self, root: Path) -> None:
        from tests.helpers.models import make_keys

        self.root = root
        self.keys = make_keys(root / "keys")
        self.registry = ModelRegistry.open(f"file://{root / 'registry'}")

    def approve_next(self) -> tuple[str, dict[str, Any]]:
        """Register the next version, approve it, and build its job document through the deploy path."""
        from tests.helpers.models import make_package

        mv = self.registry.register(
            MODEL, lambda n: make_package(self.root / "packages", MODEL, str(n), "classification", self.keys)
        )
        self.registry.approve(MODEL, mv.version, by="bench", comment="bench rollout")
        approved = approved_version(self.registry, MODEL, mv.version)
        return str(mv.version), deploy_document(approved)


# ---- measuring ---------------------------------------------------------------------------------


class SysCounters:
    """Mosquitto's ``$SYS/broker/messages/{received,sent}`` as they are published (every second)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.values: dict[str, float] = {}
        self._lock = threading.Lock()
        self.mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sys")
        self.mqtt.on_message = self._on
        self.mqtt.on_connect = lambda client, *_: client.subscribe("$SYS/broker/messages/+")
        self.mqtt.connect(LOOPBACK, port)
        self.mqtt.loop_start()

    def _on(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            value = float(message.payload)
        except ValueError:
            return
        with self._lock:
            self.values[message.topic.rsplit("/", 1)[1]] = value

    def total(self) -> float:
        with self._lock:
            return self.values.get("received", 0.0) + self.values.get("sent", 0.0)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def histogram_quantile(metrics_text: str, name: str, q: float, labels: str = "") -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of a Prometheus histogram (seconds)."""
    buckets: list[tuple[float, float]] = []
    for match in re.finditer(rf'^{name}_bucket\{{{labels}[^}}]*le="([^"]+)"\}} (\S+)$', metrics_text, re.M):
        buckets.append((math.inf if match[1] == "+Inf" else float(match[1]), float(match[2])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = max(count for _, count in buckets)
    for bound, count in sorted(buckets):
        if count >= q * total:
            return bound
    return None


def histogram_diff(after: str, before: str) -> str:
    """``after`` with every ``_bucket`` sample reduced by its value in ``before`` (one scenario only)."""
    old = dict(re.findall(r"^(\S+_bucket\{[^}]*\}) (\S+)$", before, re.M))
    lines = []
    for line in after.splitlines():
        key, _, value = line.rpartition(" ")
        if key in old:
            line = f"{key} {float(value) - float(old[key])}"
        lines.append(line)
    return "\n".join(lines)


def pg_top_statements(url: str, limit: int = 3) -> list[dict[str, Any]]:
    """The statements with the most total time (pg_stat_statements), with calls and mean/max ms."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time FROM pg_stat_statements"
                " WHERE query ILIKE '%%fleet_%%' ORDER BY total_exec_time DESC LIMIT %s",
                (limit,),
            ).fetchall()
    except psycopg.Error:
        return []
    return [
        {"query": " ".join(str(r[0]).split())[:90], "calls": int(r[1]), "total_ms": round(r[2], 1),
         "mean_ms": round(r[3], 3), "max_ms": round(r[4], 1)}
        for r in rows
    ]  # fmt: skip


def pg_reset(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error:
        pass


def db_rows(store: FleetStore) -> dict[str, int]:
    out = {}
    with store.db.transaction() as tx:
        for table in (
            "fleet_jobs",
            "fleet_executions",
            "fleet_things",
            "fleet_group_members",
            "fleet_notifications",
        ):
            row = tx.one(f"SELECT COUNT(*) AS n FROM {table}")
            out[table] = int(row["n"]) if row else 0
    return out


def execution_counts(store: FleetStore, job_id: str) -> dict[str, int]:
    with store.db.transaction() as tx:
        rows = tx.query(
            "SELECT status, COUNT(*) AS n FROM fleet_executions WHERE job_id = ? GROUP BY status", (job_id,)
        )
    return {r["status"]: int(r["n"]) for r in rows}


# ---- one scenario ------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    failing: set[str] = field(default_factory=set)
    offline: list[str] = field(default_factory=list)
    back_after_s: float = 0.0
    restart_at_pct: float | None = None


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    store: FleetStore
    fleet_service: FleetProcess
    fleet: Fleet
    versions: Versions
    sys_counters: SysCounters
    pg: Postgres
    targets: list[str]

    def scenarios(self) -> list[Scenario]:
        things = [d.thing for d in self.fleet.devices]
        n = len(things)
        every = {
            "waves": Scenario("waves"),
            # device 13 of every 20 fails: none in the 1% canary, 5% everywhere else
            "smoke_fail_5pct": Scenario(
                "smoke_fail_5pct", failing={t for i, t in enumerate(things) if i % 20 == 13}
            ),
            "abort": Scenario("abort", failing={t for i, t in enumerate(things) if i % 2 == 1}),
            "offline_20pct": Scenario(
                "offline_20pct", offline=[t for i, t in enumerate(things) if i % 5 == 2],
                back_after_s=self.args.offline_s,
            ),
            "service_restart": Scenario("service_restart", restart_at_pct=30.0),
        }  # fmt: skip
        chosen = [every[name] for name in self.args.scenarios]
        progress(f"{n} devices, scenarios: {', '.join(s.name for s in chosen)}")
        return chosen

    def run(self, scenario: Scenario) -> dict[str, Any]:
        devices = {d.thing: d for d in self.fleet.devices}
        for device in devices.values():
            device.fail_smoke = device.thing in scenario.failing
        previous = {t: d.serving for t, d in devices.items()}
        version, document = self.versions.approve_next()
        if scenario.offline:
            self.fleet.offline(scenario.offline)
            time.sleep(1.0)
        pg_reset(self.pg.url)
        metrics_before = self.fleet_service.metrics()
        cpu0, msgs0 = self.fleet_service.cpu(), self.sys_counters.total()
        job_id = f"bench-{scenario.name.replace('_', '-')}-{version}"
        start = time.time()
        self.store.jobs.create_job(
            job_id, document, self.targets, Rollout(abort_threshold_pct=ABORT_PCT, wave_pct=WAVE_PCT),
            description=f"bench {scenario.name}", created_by="bench",
        )  # fmt: skip
        expected = len(devices) - len(scenario.failing) if scenario.name != "abort" else 0
        timeline: list[dict[str, float]] = []
        t99 = t100 = None
        came_back = restarted = False
        deadline = start + self.args.timeout_s
        while time.time() < deadline:
            time.sleep(0.5)
            now = time.time() - start
            counts = execution_counts(self.store, job_id)
            self.fleet_service.sample()
            timeline.append({"t": round(now, 2), **{k: float(v) for k, v in counts.items()}})
            done = counts.get("SUCCEEDED", 0)
            if expected and t99 is None and done >= 0.99 * expected:
                t99 = now
            if expected and t100 is None and done >= expected:
                t100 = now
            if scenario.offline and not came_back and now >= scenario.back_after_s:
                progress(f"{scenario.name}: {len(scenario.offline)} devices come back at {now:.1f}s")
                self.fleet.online(scenario.offline)
                came_back = True
            if (
                scenario.restart_at_pct is not None
                and not restarted
                and done >= scenario.restart_at_pct / 100 * len(devices)
            ):
                progress(f"{scenario.name}: restarting the fleet service at {now:.1f}s ({done} succeeded)")
                self.fleet_service.restart(self.args.restart_down_s)
                restarted = True
            pending = sum(v for k, v in counts.items() if k not in TERMINAL)
            if pending == 0 and (not scenario.offline or came_back):
                break
        elapsed = time.time() - start
        cpu = self.fleet_service.cpu() - cpu0
        msgs = self.sys_counters.total() - msgs0
        time.sleep(2.0)  # the last state documents and final reports settle
        # after a restart the service's histograms start from zero: the new process's figures only
        metrics_now = histogram_diff(self.fleet_service.metrics(), "" if restarted else metrics_before)
        counts = execution_counts(self.store, job_id)
        checks = self.check(job_id, version, previous)
        job = self.store.jobs.get_job(job_id)
        row = {
            "scenario": scenario.name,
            "devices": len(devices),
            "job_status": job.status,
            "waves_released": job.released_wave + 1,
            "succeeded": counts.get("SUCCEEDED", 0),
            "failed": counts.get("FAILED", 0),
            "canceled": counts.get("CANCELED", 0),
            "t99_s": None if t99 is None else round(t99, 1),
            "t100_s": None if t100 is None else round(t100, 1),
            "elapsed_s": round(elapsed, 1),
            "broker_msgs_per_s": round(msgs / elapsed, 1) if elapsed else 0.0,
            "fleet_cpu_s": round(cpu, 1),
            "fleet_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed else 0.0,
            "fleet_rss_peak_mb": round(self.fleet_service.peak_rss_mb, 1),
            "request_p99_ms": _ms(histogram_quantile(metrics_now, "ei_fleet_request_seconds", 0.99)),
            "statement_p99_ms": _ms(histogram_quantile(metrics_now, "ei_fleet_db_statement_seconds", 0.99)),
            "db_rows": db_rows(self.store),
            "top_statements": pg_top_statements(self.pg.url),
            **checks,
            "timeline": timeline,
        }
        progress(
            f"{scenario.name}: {row['job_status']} in {elapsed:.1f}s, t99 {row['t99_s']}"
            f" t100 {row['t100_s']}, lost {checks['jobs_lost']}, inconsistent {checks['inconsistent']}"
        )
        return row

    def check(self, job_id: str, version: str, previous: Mapping[str, str]) -> dict[str, Any]:
        """Jobs lost and devices inconsistent: the cloud's view against each device's own."""
        for _ in range(20):  # the registry's copy of each state document may lag by a message or two
            result = self._check_once(job_id, version, previous)
            if result["inconsistent"] == 0:
                break
            time.sleep(0.5)
        return result

    def _check_once(self, job_id: str, version: str, previous: Mapping[str, str]) -> dict[str, Any]:
        executions = {e.thing: e for e in self.store.jobs.executions(job_id)}
        registry = {d.thing: d for d in self.store.devices.devices()}
        lost = inconsistent = twice = 0
        examples: list[str] = []
        for device in self.fleet.devices:
            execution = executions.get(device.thing)
            status = execution.status if execution else "MISSING"
            mine = device.jobs.get(job_id)
            twice += device.runs.get(job_id, 0) > 1
            if status not in TERMINAL:
                lost += 1
                examples.append(f"{device.thing}: {status} (device: {mine.status if mine else 'never ran'})")
                continue
            should_serve = version if status == "SUCCEEDED" else previous[device.thing]
            my_status = mine.status if mine else "CANCELED"
            agrees = device.serving == should_serve and (my_status == status or status == "CANCELED")
            seen = registry.get(device.thing)
            served = [m for m in (seen.state or {}).get("models", [])] if seen else []
            registry_ok = any(m.get("version") == device.serving for m in served)
            if not (agrees and registry_ok):
                inconsistent += 1
                examples.append(
                    f"{device.thing}: cloud {status}, device {my_status} serving {device.serving}"
                    f" (should {should_serve}), registry {'ok' if registry_ok else 'stale'}"
                )
        return {
            "jobs_lost": lost,
            "inconsistent": inconsistent,
            "ran_twice": int(twice),
            "problems": examples[:5],
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else (math.inf if seconds == math.inf else round(seconds * 1000, 1))


# ---- output ------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", "scenario", "{}"),
    ("job", "job_status", "{}"),
    ("ok", "succeeded", "{}"),
    ("fail", "failed", "{}"),
    ("cancel", "canceled", "{}"),
    ("t99 s", "t99_s", "{}"),
    ("t100 s", "t100_s", "{}"),
    ("msg/s", "broker_msgs_per_s", "{:.0f}"),
    ("cpu %", "fleet_cpu_pct", "{:.0f}"),
    ("rss MB", "fleet_rss_peak_mb", "{:.0f}"),
    ("req p99 ms", "request_p99_ms", "{}"),
    ("sql p99 ms", "statement_p99_ms", "{}"),
    ("lost", "jobs_lost", "{}"),
    ("incons.", "inconsistent", "{}"),
    ("twice", "ran_twice", "{}"),
)


def render(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    cells = [[title for title, _, _ in COLUMNS]]
    for row in rows:
        cells.append([("-" if row[key] is None else fmt.format(row[key])) for _, key, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(
        f"{summary['devices']} devices, waves {'/'.join(f'{p:g}%' for p in WAVE_PCT)}, abort above "
        f"{ABORT_PCT:g}% failed per wave, load {summary['load_s']}s; fleet service on PostgreSQL, "
        f"label {summary['label']!r}"
    )
    lines.append(f"db rows at the end: {summary['db_rows']}")
    for row in rows:
        for statement in row.get("top_statements", [])[:2]:
            lines.append(
                f"  {row['scenario']}: {statement['calls']} x {statement['mean_ms']} ms"
                f" (max {statement['max_ms']}) {statement['query']}"
            )
        for problem in row.get("problems", []):
            lines.append(f"  {row['scenario']} problem: {problem}")
    return "\n".join(lines)


def plot_fleet(data: Any, folder: Path) -> list[Path]:
    """Succeeded executions over time per scenario, and the cost figures side by side."""
    rows = data["scenarios"]
    fig, axes = report._figure(11, 4.2, panels=2)
    for row in rows:
        xs = [p["t"] for p in row["timeline"]]
        axes[0].plot(xs, [p.get("SUCCEEDED", 0) for p in row["timeline"]], label=row["scenario"])
    axes[0].set_xlabel("seconds since the job was created")
    axes[0].set_ylabel("executions SUCCEEDED")
    axes[0].set_title(f"{data['devices']} devices, label {data['label']}")
    axes[0].legend(fontsize=8)
    names = [r["scenario"] for r in rows]
    xs = list(range(len(rows)))
    bars = axes[1].bar([x - 0.2 for x in xs], [r["fleet_cpu_pct"] for r in rows], 0.4, label="fleet CPU %")
    report._label_bars(axes[1], bars, "{:.0f}")
    twin = axes[1].twinx()
    bars = twin.bar(
        [x + 0.2 for x in xs],
        [r["broker_msgs_per_s"] for r in rows],
        0.4,
        color="#e67e22",
        label="broker msg/s",
    )
    report._label_bars(twin, bars, "{:.0f}")
    axes[1].set_xticks(xs, names, rotation=20, fontsize=8)
    axes[1].set_ylabel("fleet service CPU % of one core")
    twin.set_ylabel("broker messages / s")
    axes[1].legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    return [report._save(fig, folder / "fleet.png")]


report.PLOTTERS["fleet"] = plot_fleet


# ---- main --------------------------------------------------------------------------------------


def make_devices(
    count: int, load_s: float, serving: str, line_size: int, lines_per_plant: int
) -> list[SimDevice]:
    devices = []
    for i in range(count):
        line = i // line_size
        plant = line // lines_per_plant
        groups = [f"plant-{plant:02d}", f"plant-{plant:02d}-line-{line % lines_per_plant}"]
        devices.append(SimDevice(f"box-{i:04d}", groups, MODEL, serving, load_s=load_s))
    return devices


def wait_registered(store: FleetStore, count: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with store.db.transaction() as tx:
            row = tx.one("SELECT COUNT(*) AS n FROM fleet_things WHERE state IS NOT NULL")
        if row and int(row["n"]) >= count:
            return
        time.sleep(0.5)
    raise SystemExit(f"only {row['n'] if row else 0} of {count} devices registered within {timeout:.0f}s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--devices", type=int, default=1000, help="simulated devices (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 devices, shorter waits")
    parser.add_argument("--load-s", type=float, default=0.5, help="the stub agent's load time per device")
    parser.add_argument("--offline-s", type=float, default=30.0, help="when the offline 20%% come back")
    parser.add_argument("--restart-down-s", type=float, default=3.0, help="fleet service downtime")
    parser.add_argument(
        "--reply-timeout-s", type=float, default=15.0, help="device's EI_JOBS_REPLY_TIMEOUT_S"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="give up on a scenario after this")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--label", default="", help="kept in the figures (e.g. before / after)")
    parser.add_argument(
        "--out", type=Path, default=report.DEFAULT_OUT, help="where table.md and the plots go"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.devices = min(args.devices, 100) if "--devices" in (argv or sys.argv) else 100
        args.offline_s = min(args.offline_s, 10.0)
        args.timeout_s = min(args.timeout_s, 180.0)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}: use {', '.join(SCENARIOS)}")
    return args


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop every server we started, whatever stops us
    logging.basicConfig(level=logging.ERROR)
    root = temp_root()
    stack = Stack(root, progress, PREFIX)
    closers = stack.closers
    try:
        pg, broker, service, store = stack.start()
        sys_counters = SysCounters(broker.port)
        closers.append(sys_counters.close)
        versions = Versions(root)
        first, _ = versions.approve_next()  # what every device serves before the first rollout
        devices = make_devices(args.devices, args.load_s, first, line_size=20, lines_per_plant=5)
        progress(f"starting {len(devices)} simulated devices")
        fleet = Fleet(LOOPBACK, broker.port, PREFIX, PREFIX, devices, args.reply_timeout_s)
        fleet.start()
        closers.append(fleet.stop)
        wait_registered(store, len(devices), 120)
        targets = sorted({d.groups[0] for d in devices})
        bench = Bench(args, root, store, service, fleet, versions, sys_counters, pg, targets)
        rows = [bench.run(scenario) for scenario in bench.scenarios()]
        summary = {
            "label": args.label,
            "devices": len(devices),
            "load_s": args.load_s,
            "db_rows": db_rows(store),
            "jobs_lost": sum(r["jobs_lost"] for r in rows),
            "inconsistent": sum(r["inconsistent"] for r in rows),
            "ran_twice": sum(r["ran_twice"] for r in rows),
            "fleet_rss_peak_mb": round(service.peak_rss_mb, 1),
            "fleet_restarts": service.restarts,
        }
        table = render(rows, summary)
        figures = {**summary, "scenarios": rows}
        folder = report.write_report("fleet", figures, args.out, table)
        print(table)
        print(f"\nreport: {folder / 'table.md'}")
        compact = {
            **summary,
            "scenarios": [{k: v for k, v in r.items() if k not in ("timeline", "problems")} for r in rows],
        }
        print(json.dumps(compact, separators=(",", ":")))
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
