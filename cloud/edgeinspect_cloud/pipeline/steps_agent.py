"""The agent-check step: the signed package loaded by the real edge agent, before it is registered.

``package`` already checks the package through ONNX Runtime (signature, hashes, golden input). That
proves the files, not that a device takes them: the agent has its own rules (manifest limits, input
and output contracts, providers, warm-up) and refuses a package in ways ONNX Runtime alone never
would. So this step starts the project's own agent (``edgeinspect-agent``, as ``python -m``) on a
private unix socket in a temporary folder, trusting only the public half of ``--key``, and takes the
model manager's path through it: unpack and verify with the trusted key, ``LoadVersion`` of the
verified folder, ``Predict`` of the golden input on that exact ``name:version``, the same comparison
as the device's smoke test (``edgeinspect.core.package.golden``), ``UnloadVersion``; then the int8
variant the same way (judged by image score, as compile and ``package`` judge it); then a load that
names no variant, which must pick the package's default precision (``manifest.precision``). The agent is
stopped with SIGTERM and must exit cleanly. ``agent-check/{task}.json`` records the outcome and the
hashes of the models it loaded; the agent's own log is kept beside it.

Why between ``package`` and ``register`` rather than after ``register``: a registered version is a
candidate a reviewer may approve and an OTA job may ship, so only a package a real agent has loaded
should get there; a refused package stops the run with nothing registered (like the quality gate).
``register`` refuses a run folder whose check is missing, failed, or was made on other model files
than the draft it signs: it may rebuild the package for a later version number (another run took
this one), and such a rebuild changes only the manifest's version and the signature, never the
checked models, which the recorded hashes prove.

The agent runs on CPU (``EI_EXECUTION_PROVIDERS=cpu``): the golden output was computed there, a GPU
training node's accelerator is not a device's, and the device runs its own smoke test on its own
providers at deployment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from edgeinspect.core.agent_client import AgentClient, HealthInfo
from edgeinspect.core.errors import AgentError, EdgeInspectError
from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.package import (
    INT8_MODEL_FILE,
    MODEL_FILE,
    SMOKE_ATOL,
    SMOKE_RTOL,
    Manifest,
    compare_outputs,
    load_golden,
    load_public_keys,
    max_abs_diff,
    unpack_package,
)

from edgeinspect_cloud.packaging.verify import INT8_TOLERANCE
from edgeinspect_cloud.pipeline.layout import GROUPS, PipelineError, PipelineOptions, RunLayout, Task

START_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 120.0
"""A load (verify, open, warm up) of a full-size model on a busy training node may take a while."""
STOP_TIMEOUT_S = 30.0
"""Beyond the agent's own exit deadline (its drain grace + 10 s): a stuck agent dumps its stacks first."""
SOCKET_NAME = "agent.sock"
MAX_SOCKET_PATH = 100
"""A unix socket path is limited to ~107 bytes; a longer temporary folder falls back to /tmp."""
VARIANTS: dict[str, tuple[str, float, float, bool]] = {
    "fp32": (MODEL_FILE, SMOKE_RTOL, SMOKE_ATOL, False),
    "int8": (INT8_MODEL_FILE, 0.0, INT8_TOLERANCE, True),
}
"""variant -> (model file, rtol, atol, judged by image score)."""


class AgentCheckError(PipelineError):
    """The edge agent refused the package, or answered its golden input wrongly: nothing is registered."""


def step_agent_check(options: PipelineOptions, layout: RunLayout, task: Task) -> dict[str, Any]:
    """Load ``task``'s signed package into a private agent and smoke-test it; write the report."""
    package = built_package(layout, task)
    report: dict[str, Any] = {
        "task": task,
        "package": package.name,
        "package_sha256": sha256_file(package),
        "passed": False,
    }
    log_path = layout.agent_check_log(task)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ei-agent-", dir=_short_tmp()) as work:
            folder, manifest = _verified_folder(options, package, Path(work))
            report |= {"name": manifest.name, "version": manifest.version, "models": _model_hashes(folder)}
            with private_agent(Path(work), log_path) as (agent, health):
                report["agent"] = {"execution_providers": list(health.execution_providers)}
                report["variants"] = {
                    variant: _check_variant(agent, folder, manifest, variant)
                    for variant in VARIANTS
                    if variant == "fp32" or manifest.has_int8
                }
                report["default"] = _check_default(agent, folder, manifest)
    except EdgeInspectError as exc:
        report["error"] = str(exc)
        layout.write(layout.agent_check_json(task), report)
        raise AgentCheckError(
            f"{package.name} failed the agent check: {exc}; it will not be registered",
            hint=f"see {layout.agent_check_json(task)} and the agent's log {log_path}; rebuild the "
            "package (re-run compile and package) or fix what the agent names",
        ) from exc
    report["passed"] = True
    layout.write(layout.agent_check_json(task), report)
    return report


def built_package(layout: RunLayout, task: Task) -> Path:
    """The ``.tar.gz`` the package step built and checked for ``task`` (named by its check.json)."""
    check = layout.read(layout.package_dir(task) / "check.json", "package")
    return layout.require(layout.package_dir(task) / f"{check['name']}-{check['version']}.tar.gz", "package")


def _verified_folder(options: PipelineOptions, package: Path, work: Path) -> tuple[Path, Manifest]:
    """Trust the public half of ``--key`` only, and unpack the package as the model manager does."""
    trusted = work / "trusted"
    trusted.mkdir()
    public = options.signing_key().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (trusted / "pipeline.pub").write_bytes(pem)
    keys = load_public_keys(trusted)
    return unpack_package(package, work / "models" / package.name.removesuffix(".tar.gz"), keys)


def _model_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each model file the agent will load (``register`` compares them with its draft)."""
    files = [model_file for model_file, *_ in VARIANTS.values()]
    return {name: sha256_file(folder / name) for name in files if (folder / name).is_file()}


def _check_default(agent: AgentClient, folder: Path, manifest: Manifest) -> dict[str, Any]:
    """A load naming no variant runs the package's default precision here, without a fallback."""
    info = agent.load_version(str(folder))
    agent.unload_version(info.name, info.version)
    if info.variant != manifest.default_variant:
        raise AgentCheckError(
            f"a default load ran {info.variant}, but the package's default is {manifest.default_variant}"
            + (f": {info.variant_fallback}" if info.variant_fallback else "")
        )
    reason = manifest.precision.reason if manifest.precision is not None else None
    return {"variant": info.variant, "package_default": manifest.default_variant, "reason": reason}


def _check_variant(agent: AgentClient, folder: Path, manifest: Manifest, variant: str) -> dict[str, Any]:
    """LoadVersion, Predict the golden input on ``name:version``, compare, UnloadVersion."""
    _, rtol, atol, by_score = VARIANTS[variant]
    info = agent.load_version(str(folder), variant)
    try:
        if (info.name, info.version) != (manifest.name, manifest.version):
            raise AgentCheckError(
                f"the agent loaded {info.ref}, but the package is {manifest.name}:{manifest.version}"
            )
        golden_input, golden_outputs = load_golden(folder, manifest)
        result = agent.predict(info.ref, {manifest.input.name: golden_input}, frame_id="agent-check")
        problem = compare_outputs(result.outputs, golden_outputs, rtol, atol, per_image_score=by_score)
        worst = max(
            (
                max_abs_diff(result.outputs[name], want, per_image_score=by_score)
                for name, want in golden_outputs.items()
                if name in result.outputs and result.outputs[name].shape == want.shape
            ),
            default=None,
        )
        if problem is not None:
            raise AgentCheckError(f"smoke test of the {variant} variant failed: {problem}")
    except BaseException:
        with contextlib.suppress(AgentError):  # the first error is the one to report
            agent.unload_version(info.name, info.version)
        raise
    agent.unload_version(info.name, info.version)  # a version the agent cannot unload fails the check
    return {
        "loaded": True,
        "execution_provider": info.execution_provider,
        "load_ms": round(info.load_ms, 2),
        "max_abs_diff": worst,
        "judged_by": "image score" if by_score else "every element",
        "rtol": rtol,
        "atol": atol,
        "passed": True,
    }


@contextlib.contextmanager
def private_agent(work: Path, log_path: Path) -> Iterator[tuple[AgentClient, HealthInfo]]:
    """The real agent on ``work/agent.sock`` (no TCP listener, no Redis), stopped with SIGTERM after.

    Yields a client and the agent's health. ``AgentCheckError`` if it does not become ready, or does
    not exit cleanly when asked to stop.
    """
    address = f"unix://{work / SOCKET_NAME}"
    argv = [sys.executable, "-m", _agent_module()]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, env=_agent_env(work, address), stdout=log, stderr=subprocess.STDOUT)
    try:
        with AgentClient(address, timeout_s=CALL_TIMEOUT_S) as client:
            health = _wait_ready(client, proc, log_path)
            yield client, health
    finally:
        code = _stop(proc)
    if code != 0:
        raise AgentCheckError(
            f"the agent exited with code {code} when stopped (log {log_path}): {_tail(log_path, 4000)}"
        )


def _agent_module() -> str:
    """The agent's entry module; a clear error where this environment lacks the agent."""
    try:
        from edgeinspect_inference.agent import main as agent_main
    except ImportError as exc:
        raise PipelineError(
            f"the agent-check step needs the edge agent (edgeinspect_inference) here: {exc}",
            hint="install the project with its cloud extra (pip install '.[cloud]'; the edgeinspect-cloud "
            "image has it), or leave the step out: --steps ... package (nothing is registered then)",
        ) from exc
    return agent_main.__name__


def _agent_env(work: Path, address: str) -> dict[str, str]:
    """Only what this check needs: the private socket, a free health port, the temporary key and models."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    own = {
        "EI_AGENT_ADDR": address,
        "EI_AGENT_TCP_ADDR": "",
        "EI_HTTP_HOST": "127.0.0.1",
        "EI_HTTP_PORT": "0",
        "EI_MODEL_DIR": str(work / "agent-models"),
        "EI_TRUSTED_KEYS_DIR": str(work / "trusted"),
        "EI_REDIS_URL": "",
        "EI_EXECUTION_PROVIDERS": "cpu",
        "EI_INTRA_OP_THREADS": "1",
        "EI_WARMUP_RUNS": "1",
        "EI_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    return inherited | own


def _wait_ready(client: AgentClient, proc: subprocess.Popen[bytes], log_path: Path) -> HealthInfo:
    """Poll Health until the agent serves; fail at once if it exits (bad settings), or after the timeout."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AgentCheckError(
                f"the agent exited with code {proc.returncode} before serving: {_tail(log_path)}"
            )
        try:
            health = client.health(timeout_s=1.0)
            if health.serving:
                return health
        except AgentError:
            pass
        if time.monotonic() >= deadline:
            raise AgentCheckError(f"the agent did not serve within {START_TIMEOUT_S:.0f}s: {_tail(log_path)}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait (the agent's clean stop); SIGKILL if it ignores that."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _tail(log_path: Path, chars: int = 1500) -> str:
    text = log_path.read_text(errors="replace") if log_path.is_file() else ""
    return text[-chars:].strip() or "(the agent wrote no log)"


def _short_tmp() -> str | None:
    """The temporary folder, unless the socket path in it would be too long for a unix socket."""
    base = tempfile.gettempdir()
    return None if len(base) + len("/ei-agent-xxxxxxxx/") + len(SOCKET_NAME) < MAX_SOCKET_PATH else "/tmp"


def passed_agent_check(layout: RunLayout, task: Task, draft_models: dict[str, Path]) -> dict[str, Any]:
    """The agent-check record for ``register``; ``PipelineError`` unless it passed on these model files."""
    report = layout.read(layout.agent_check_json(task), "agent-check")
    if not report.get("passed"):
        raise AgentCheckError(
            f"{report.get('package')} failed the agent check ({report.get('error')}): "
            "it will not be registered",
            hint=f"see {layout.agent_check_json(task)}; rebuild the package and re-run agent-check",
        )
    checked = report.get("models", {})
    drafted = {name: sha256_file(path) for name, path in draft_models.items()}
    if checked != drafted:
        raise AgentCheckError(
            f"the agent checked other model files than the {GROUPS[task]} draft holds now",
            hint="the package was rebuilt after the check: re-run --steps agent-check, then register",
        )
    return {
        k: report[k]
        for k in ("package", "package_sha256", "version", "agent", "variants", "default")
        if k in report
    }
