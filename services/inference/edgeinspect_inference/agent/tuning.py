"""Choose the fastest correct execution provider and thread settings for one model on this box.

At load the agent builds a session per candidate (each available execution provider, and for the
CPU provider a few thread layouts sized to the cores this process may really use), runs the
package's golden input a few times, rejects a candidate whose answer differs from the golden output
beyond the tolerance (with the reason), and keeps the session of the fastest. The first candidate is
what the agent would have used without measuring; another replaces it only when clearly faster
(:data:`MARGIN`), so a noisy shared box does not flip between equals. Measuring stops at a time
budget so loading stays fast, and the decision is cached on disk per (model, variant, box), so a
restart loads the chosen layout without measuring again. A change of model, ONNX Runtime version,
available providers, CPU or usable cores changes the key, so a stale decision is never reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger, percentile
from edgeinspect.core.package import compare_outputs, max_abs_diff

from edgeinspect_inference.agent.errors import ModelLoadError
from edgeinspect_inference.agent.providers import CPU, PROVIDERS, ExecutionProvider
from edgeinspect_inference.agent.session import ModelSession, available_providers, runtime_version

log = get_logger(__name__)
MARGIN = 0.05
"""A candidate replaces the default layout only when its p50 is at least this fraction faster."""
CACHE_SCHEMA = 1
Feeds = Mapping[str, np.ndarray]
Outputs = Mapping[str, np.ndarray]


class Runner(Protocol):
    """What a candidate is measured through: the agent's ``ModelSession`` in production."""

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ThreadConfig:
    """ONNX Runtime thread layout: intra-op threads, inter-op threads, parallel execution mode or not."""

    intra_op: int
    inter_op: int = 1
    parallel: bool = False

    @property
    def label(self) -> str:
        """``2`` (sequential) or ``2x2p`` (2 intra-op, 2 inter-op, parallel): the metrics label."""
        return f"{self.intra_op}x{self.inter_op}p" if self.parallel else str(self.intra_op)


@dataclass(frozen=True)
class Candidate:
    """One execution provider with one thread layout."""

    provider: ExecutionProvider
    threads: ThreadConfig

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.threads.label}"


@dataclass(frozen=True)
class Measurement:
    """One candidate's figures on the golden input; ``rejected`` says why it was not eligible."""

    provider: str
    threads: ThreadConfig
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    runs: int = 0
    rejected: str = ""


@dataclass(frozen=True)
class ProviderChoice:
    """The kept provider and threads, every candidate's figures, and how the choice was made."""

    provider: str
    threads: ThreadConfig
    measurements: tuple[Measurement, ...] = ()
    cached: bool = False
    measure_ms: float = 0.0
    reason: str = ""

    @property
    def selected_p50_ms(self) -> float:
        for m in self.measurements:
            if m.provider == self.provider and m.threads == self.threads and not m.rejected:
                return m.p50_ms
        return 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProviderChoice:
        return cls(
            provider=str(data["provider"]),
            threads=ThreadConfig(**data["threads"]),
            measurements=tuple(
                Measurement(**{**m, "threads": ThreadConfig(**m["threads"])}) for m in data["measurements"]
            ),
            cached=bool(data.get("cached", False)),
            measure_ms=float(data.get("measure_ms", 0.0)),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class TuningOptions:
    """``EI_PROVIDER_TUNING*`` settings: whether to measure, how long at most, how to judge answers."""

    enabled: bool = True
    budget_s: float = 10.0
    warmup_runs: int = 2
    timed_runs: int = 10
    cache_dir: Path | None = None
    rtol: float = 1e-3
    atol: float = 1e-4
    int8_atol: float = 0.02


@dataclass(frozen=True)
class Golden:
    """The golden input and expected outputs, and how to compare (image scores for int8).

    ``slack`` widens the int8 tolerance by how far the CPU provider's own int8 answer is from the
    fp32 golden output: an int8 candidate must be as right as the CPU provider, within the tolerance.
    """

    feeds: Feeds
    expected: Outputs
    per_image_score: bool = False
    slack: float = 0.0


# ---- the box ------------------------------------------------------------------------------------


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the cgroup may use (v2 ``cpu.max`` or v1 ``cfs_quota/period``); None when unlimited."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def thread_configs(cores: int, fixed_intra_op: int = 0) -> list[ThreadConfig]:
    """The thread layouts worth measuring on ``cores`` cores; the first is the agent's old default.

    All cores, half of them (a second model or the worker keeps the rest), one (on two cores the
    fork/join cost of a small model can exceed its gain), and from four cores on a parallel layout
    (two inter-op threads, for graphs with independent branches). ``EI_INTRA_OP_THREADS`` pins one.
    """
    if fixed_intra_op:
        return [ThreadConfig(fixed_intra_op)]
    intra = [cores, max(1, cores // 2)]
    if cores <= 2:
        intra.append(1)
    configs = [ThreadConfig(n) for n in dict.fromkeys(intra)]
    if cores >= 4:
        configs.append(ThreadConfig(max(1, cores // 2), inter_op=2, parallel=True))
    return configs


def candidates(providers: Sequence[ExecutionProvider], configs: Sequence[ThreadConfig]) -> list[Candidate]:
    """Every provider with the first layout; the CPU provider also with the others.

    Accelerator providers run the graph on their device (OpenVINO sizes its own thread pool), so
    ONNX Runtime's thread layout matters only for what falls back to the CPU.
    """
    ordered = [p for p in providers if p.name != CPU.name] + [CPU]
    out = [Candidate(p, configs[0]) for p in ordered]
    out += [Candidate(CPU, c) for c in configs[1:]]
    return out


def box_fingerprint(available: Sequence[str], cores: int) -> dict[str, Any]:
    """What a measured decision depends on, apart from the model: runtime, providers, CPU, cores."""
    return {
        "onnxruntime": runtime_version(),
        "available": sorted(available),
        "cores": cores,
        "cpu": _cpu_model(),
        "machine": platform.machine(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ---- measuring ----------------------------------------------------------------------------------


def check_answer(outputs: Outputs, golden: Golden, options: TuningOptions) -> str:
    """Why ``outputs`` are not the golden answer ("" when they are), by the smoke test's rule."""
    atol = options.int8_atol + golden.slack if golden.per_image_score else options.atol
    problem = compare_outputs(
        dict(outputs), dict(golden.expected), options.rtol, atol, per_image_score=golden.per_image_score
    )
    return problem or ""


def measure(
    runner: Runner, candidate: Candidate, golden: Golden, options: TuningOptions, deadline: float
) -> Measurement:
    """Warm up, check the answer, then time runs until ``timed_runs`` or the deadline (3 at least)."""
    outputs: dict[str, np.ndarray] = {}
    for _ in range(max(1, options.warmup_runs)):
        outputs = runner.run(golden.feeds)
    problem = check_answer(outputs, golden, options)
    if problem:
        return Measurement(candidate.provider.name, candidate.threads, rejected=f"wrong answer: {problem}")
    times: list[float] = []
    while len(times) < options.timed_runs and (len(times) < 3 or time.monotonic() < deadline):
        started = time.perf_counter()
        runner.run(golden.feeds)
        times.append((time.perf_counter() - started) * 1000.0)
    return Measurement(
        candidate.provider.name,
        candidate.threads,
        p50_ms=round(percentile(times, 50), 3),
        p99_ms=round(percentile(times, 99), 3),
        runs=len(times),
    )


def with_cpu_slack(
    build: Callable[[Candidate], Runner], cands: Sequence[Candidate], golden: Golden
) -> Golden:
    """``golden`` with ``slack`` = the CPU provider's image-score distance from it (int8 vs fp32).

    The golden output is fp32's; an int8 model differs from it on every provider. Judging each
    candidate against the CPU provider's own distance keeps a faster provider that is as right as
    the CPU one, and still rejects one that is further off by more than the tolerance.
    """
    cpu = next((c for c in cands if c.provider.name == CPU.name), None)
    if cpu is None:
        return golden
    try:
        outputs = build(cpu).run(golden.feeds)
    except Exception:  # the CPU candidate's own measurement will report why
        return golden
    slack = max(
        (max_abs_diff(outputs[name], want, per_image_score=True) for name, want in golden.expected.items()
         if name in outputs),
        default=0.0,
    )  # fmt: skip
    return replace(golden, slack=slack if math.isfinite(slack) else 0.0)


def choose(measurements: Sequence[Measurement]) -> Measurement | None:
    """The fastest accepted candidate; the first accepted one (the default) unless beaten by MARGIN."""
    accepted = [m for m in measurements if not m.rejected]
    if not accepted:
        return None
    best = accepted[0]
    for m in accepted[1:]:
        if m.p50_ms < best.p50_ms * (1.0 - MARGIN):
            best = m
    return best


def select(
    build: Callable[[Candidate], Runner],
    cands: Sequence[Candidate],
    golden: Golden,
    options: TuningOptions,
) -> tuple[Runner | None, ProviderChoice]:
    """Measure the candidates in order (within the budget) and return the fastest's runner and figures.

    A candidate that cannot be built or run is rejected with its error, never fails the load; the
    runner of the best candidate so far is kept and the others released as soon as they lose. Returns
    no runner when no candidate answered correctly (the caller falls back to the defaults).
    """
    started = time.monotonic()
    deadline = started + options.budget_s
    if golden.per_image_score:
        golden = with_cpu_slack(build, cands, golden)
    measurements: list[Measurement] = []
    best: tuple[Measurement, Runner] | None = None
    for candidate in cands:
        if measurements and time.monotonic() >= deadline:
            budget = (
                f"skipped: the tuning budget ({options.budget_s:g}s, EI_PROVIDER_TUNING_BUDGET_S) was spent"
            )
            measurements.append(Measurement(candidate.provider.name, candidate.threads, rejected=budget))
            continue
        try:
            runner = build(candidate)
            m = measure(runner, candidate, golden, options, deadline)
        except Exception as exc:  # a provider's failure is a rejected candidate, never a failed load
            m = Measurement(candidate.provider.name, candidate.threads, rejected=f"failed: {str(exc)[:300]}")
            runner = None
        measurements.append(m)
        if runner is not None and not m.rejected and choose([best[0], m] if best else [m]) is m:
            best = (m, runner)
    elapsed_ms = (time.monotonic() - started) * 1000.0
    if best is None:
        return None, ProviderChoice(
            CPU.name, cands[0].threads, tuple(measurements), measure_ms=round(elapsed_ms, 1),
            reason="no candidate matched the golden outputs; using the configured defaults",
        )  # fmt: skip
    winner = best[0]
    reason = "fastest" if len([m for m in measurements if not m.rejected]) > 1 else "only correct candidate"
    choice = ProviderChoice(
        winner.provider, winner.threads, tuple(measurements), measure_ms=round(elapsed_ms, 1), reason=reason
    )
    return best[1], choice


# ---- the cache ----------------------------------------------------------------------------------


@dataclass
class DecisionCache:
    """Decisions as small JSON files, one per (model, variant, candidates, box) key."""

    folder: Path | None
    _warned: bool = field(default=False, repr=False)

    @staticmethod
    def key(model_sha256: str, variant: str, cands: Sequence[Candidate], box: Mapping[str, Any]) -> str:
        material = {
            "schema": CACHE_SCHEMA,
            "model": model_sha256,
            "variant": variant,
            "candidates": [c.label for c in cands],
            "options": [sorted(c.provider.options.items()) for c in cands],
            "box": dict(box),
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, key: str) -> ProviderChoice | None:
        """The cached decision for ``key``, or None (absent, unreadable or from another schema)."""
        if self.folder is None:
            return None
        path = self.folder / f"{key[:40]}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            return ProviderChoice.from_json(data["choice"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("provider_cache_unreadable", path=str(path), error=str(exc)[:200])
            return None

    def put(self, key: str, choice: ProviderChoice) -> None:
        """Store a decision atomically; a read-only disk only costs a re-measure at the next start."""
        if self.folder is None:
            return
        path = self.folder / f"{key[:40]}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "choice": choice.to_json()}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "provider_cache_not_written",
                    path=str(path),
                    error=str(exc)[:200],
                    hint="make EI_PROVIDER_TUNING_CACHE_DIR writable, or every start measures again",
                )


def candidates_for(providers: Sequence[ExecutionProvider], intra_op_threads: int) -> list[Candidate]:
    """The candidates for these providers on this box (``intra_op_threads`` > 0 pins the threads)."""
    return candidates(providers, thread_configs(usable_cores(), intra_op_threads))


def known_provider(name: str) -> ExecutionProvider:
    """The provider a cached decision names (CPU if the table no longer has it)."""
    return PROVIDERS.get(name, CPU)


# ---- the loader's entry point -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRequest:
    """What :func:`open_session` needs to know about one model being loaded."""

    ref: str
    model_path: Path
    model_sha256: str
    variant: str
    providers: tuple[ExecutionProvider, ...]
    max_batch: int
    intra_op_threads: int
    allow_spinning: bool
    golden: Callable[[], Golden] | None
    measure: bool


def _builder(request: SessionRequest) -> Callable[[Candidate], ModelSession]:
    def build(candidate: Candidate) -> ModelSession:
        chosen = [candidate.provider] if candidate.provider.name == CPU.name else [candidate.provider, CPU]
        session = ModelSession(
            request.model_path,
            chosen,
            candidate.threads.intra_op,
            request.allow_spinning,
            request.max_batch,
            inter_op_threads=candidate.threads.inter_op,
            parallel=candidate.threads.parallel,
        )
        if session.provider != candidate.provider.name:  # ORT falls back silently when a provider fails
            raise ModelLoadError(
                f"ONNX Runtime could not start {candidate.provider.name} for this model "
                f"(it fell back to {session.provider})",
                hint="check the provider's libraries and drivers on this box",
            )
        return session

    return build


def open_session(
    request: SessionRequest, options: TuningOptions
) -> tuple[ModelSession, ProviderChoice | None]:
    """The session the loader keeps: the cached or measured choice, or the configured defaults.

    Tuning off: exactly the old behaviour (first available provider of ``EI_EXECUTION_PROVIDERS``,
    ``EI_INTRA_OP_THREADS``). A cache hit builds the cached layout without running the model; a load
    without warm-up (``measure`` false) or without golden data uses the defaults.
    """
    if not options.enabled:
        return _default(request), None
    cands = candidates_for(request.providers, request.intra_op_threads)
    key = DecisionCache.key(
        request.model_sha256, request.variant, cands, box_fingerprint(available_providers(), usable_cores())
    )
    cache = DecisionCache(options.cache_dir)
    build = _builder(request)
    cached = cache.get(key)
    if cached is not None:
        try:
            session = build(Candidate(known_provider(cached.provider), cached.threads))
            return session, replace(cached, cached=True)
        except EdgeInspectError as exc:
            log.warning("provider_cache_stale", error=str(exc)[:300], hint="measuring again")
    if not request.measure or request.golden is None:
        return build(cands[0]), None
    runner, choice = select(build, cands, request.golden(), options)
    log_choice(request.ref, choice)
    if runner is None or not isinstance(runner, ModelSession):
        session = _default(request)
        return session, replace(
            choice, provider=session.provider, threads=ThreadConfig(request.intra_op_threads)
        )
    cache.put(key, choice)
    return runner, choice


def log_choice(ref: str, choice: ProviderChoice | None) -> None:
    """One structured line with every candidate's figures (a warning when none answered right)."""
    if choice is None:
        return
    figures = {
        f"{m.provider}/{m.threads.label}": (m.rejected[:200] if m.rejected else m.p50_ms)
        for m in choice.measurements
    }
    emit = log.info if choice.selected_p50_ms else log.warning
    emit(
        "provider_selected",
        model=ref,
        provider=choice.provider,
        threads=choice.threads.label,
        p50_ms=choice.selected_p50_ms,
        candidates=figures,
        measure_ms=choice.measure_ms,
        reason=choice.reason,
    )


def _default(request: SessionRequest) -> ModelSession:
    """The session the agent built before tuning existed: preference order, configured threads."""
    return ModelSession(
        request.model_path,
        request.providers,
        request.intra_op_threads,
        request.allow_spinning,
        request.max_batch,
    )
