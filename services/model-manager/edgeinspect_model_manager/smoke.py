"""The on-device smoke test: the package's golden input through the agent, compared with its golden output.

Run on the exact version just loaded (``name:version``, never the alias), before any traffic reaches it,
and again during the rollback watch. It catches what a signature cannot: a model that loads but
computes something else on this box (a different execution provider, a broken runtime, a wrong build).
The comparison itself is shared (``edgeinspect.core.package.golden``): the pipeline's ``agent-check``
step judges a package the same way before it is registered. A version the agent runs as int8 (the
package's default when it passed compile's int8 gates) is judged as every int8 check judges it: by its
image scores, within ``INT8_SMOKE_ATOL`` of the (fp32) golden output.
"""

from __future__ import annotations

from pathlib import Path

from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.package import INT8_SMOKE_ATOL, Manifest, compare_outputs, load_golden

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
    if _runs_int8(agent, ref):
        problem = compare_outputs(
            result.outputs, golden_outputs, 0.0, max(atol, INT8_SMOKE_ATOL), per_image_score=True
        )
    else:
        problem = compare_outputs(result.outputs, golden_outputs, rtol, atol)
    if problem is not None:
        raise SmokeTestError(
            f"smoke test failed: {problem}",
            hint="the package computes something else on this device; rebuild or check the runtime",
        )


def _runs_int8(agent: AgentClient, ref: str) -> bool:
    """Whether the agent runs ``name:version`` from its int8 model file (ListVersions' ``variant``)."""
    name, _, version = ref.partition(":")
    try:
        versions = agent.list_versions()
    except AgentError as exc:
        raise SmokeTestError(f"smoke test failed: the agent could not list its versions: {exc}") from exc
    return any(v.name == name and v.version == version and v.variant == "int8" for v in versions)
