"""The on-device smoke test: the package's golden input through the agent, compared with its golden output.

Run on the exact version just loaded (``name:version``, never the alias), before any traffic reaches it,
and again during the rollback watch. It catches what a signature cannot: a model that loads but
computes something else on this box (a different execution provider, a broken runtime, a wrong build).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.package import Manifest, load_golden

from edgeinspect_model_manager.errors import SmokeTestError


def compare_outputs(
    got: dict[str, np.ndarray], expected: dict[str, np.ndarray], rtol: float, atol: float
) -> str | None:
    """Why ``got`` differs from ``expected`` beyond the tolerance, or None when every output matches."""
    for name, want in sorted(expected.items()):
        have = got.get(name)
        if have is None:
            return f"output {name!r} is missing (the model returned {sorted(got)})"
        if have.shape != want.shape:
            return f"output {name!r} has shape {list(have.shape)}, the golden output {list(want.shape)}"
        have64, want64 = have.astype(np.float64), want.astype(np.float64)
        if not np.allclose(have64, want64, rtol=rtol, atol=atol, equal_nan=True):
            worst = float(np.nanmax(np.abs(have64 - want64))) if have64.size else 0.0
            return (
                f"output {name!r} differs from the golden output by up to {worst:.4g} "
                f"(tolerance rtol={rtol:g}, atol={atol:g})"
            )
    return None


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
