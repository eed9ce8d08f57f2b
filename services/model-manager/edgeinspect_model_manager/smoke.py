"""The on-device smoke test: the package's golden input through the agent, compared with its golden output.

Run on the exact version just loaded (``name:version``, never the alias), before any traffic reaches it,
and again during the rollback watch. It catches what a signature cannot: a model that loads but
computes something else on this box (a different execution provider, a broken runtime, a wrong build).
The comparison itself is shared (``edgeinspect.core.package.golden``): the pipeline's ``agent-check``
step judges a package the same way before it is registered.
"""

from __future__ import annotations

from pathlib import Path

from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.package import Manifest, compare_outputs, load_golden

from edgeinspect_model_manager.errors import SmokeTestError


def smoke_test(
    agent: AgentClient, folder: Path, manifest: Manifest, ref: str, rtol: float, atol: float
) -> None:
    """Raise ``SmokeTestError`` unless ``ref`` maps the golden input to the golden outputs."""
    golden_input, golden_outputs = load_golden(folder, manifest)
    try:
        result = agent.predict(ref, {manifest.input.name: golden_input}, frame_id="smoke-test")
    except AgentError as exc:
        raise SmokeTestError(f"smoke test failed: the agent could not run {ref}: {exc}") from exc
    problem = compare_outputs(result.outputs, golden_outputs, rtol, atol)
    if problem is not None:
        raise SmokeTestError(
            f"smoke test failed: {problem}",
            hint="the package computes something else on this device; rebuild or check the runtime",
        )
