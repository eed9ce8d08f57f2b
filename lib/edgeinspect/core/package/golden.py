"""Judging a model's answer to a package's golden input: the one comparison every smoke test makes.

A device's model manager runs it on the version it just loaded into the agent (``smoke.py``), the
pipeline's ``agent-check`` step runs it against a private agent before a version is registered, and
the packaging check runs it through ONNX Runtime directly; sharing it keeps all three judging alike.
The fp32 model is compared element by element; the int8 model by its *image scores* (each output's
maximum per image), because the golden output is fp32's and one steep mask-edge pixel may move much
further than the verdict ever does.
"""

from __future__ import annotations

import numpy as np

SMOKE_RTOL = 1e-3
"""Relative tolerance of the smoke test (the model manager's default ``EI_SMOKE_RTOL``)."""
SMOKE_ATOL = 1e-4
"""Absolute tolerance of the smoke test (the model manager's default ``EI_SMOKE_ATOL``)."""
INT8_SMOKE_ATOL = 0.25
"""How far an int8 model's image scores may be from the (fp32) golden outputs: compile's int8 gate
bound (``int8_max_diff``); used by the package check, ``agent-check``, the agent's int8 load check and
the model manager's smoke test of an int8 version."""


def image_scores(output: np.ndarray) -> np.ndarray:
    """Each image's score: the maximum of its output (a probability, or a mask's peak)."""
    return output.reshape(output.shape[0], -1).max(axis=1) if output.ndim > 1 else output


def max_abs_diff(got: np.ndarray, want: np.ndarray, *, per_image_score: bool = False) -> float:
    """The largest absolute difference (of image scores when ``per_image_score``), in float64.

    NaN where the other side is a number counts as infinitely far (a model that answers NaN must never
    pass a tolerance); NaN on both sides counts as equal.
    """
    have64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if per_image_score:
        have64, want64 = image_scores(have64), image_scores(want64)
    if not have64.size:
        return 0.0
    diff = np.abs(have64 - want64)
    diff[np.isnan(have64) & np.isnan(want64)] = 0.0
    diff[np.isnan(diff)] = np.inf
    return float(diff.max())


def compare_outputs(
    got: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
    rtol: float,
    atol: float,
    *,
    per_image_score: bool = False,
) -> str | None:
    """Why ``got`` differs from ``expected`` beyond the tolerance, or None when every output matches."""
    for name, want in sorted(expected.items()):
        have = got.get(name)
        if have is None:
            return f"output {name!r} is missing (the model returned {sorted(got)})"
        if have.shape != want.shape:
            return f"output {name!r} has shape {list(have.shape)}, the golden output {list(want.shape)}"
        have64, want64 = have.astype(np.float64), want.astype(np.float64)
        if per_image_score:
            have64, want64 = image_scores(have64), image_scores(want64)
        if not np.allclose(have64, want64, rtol=rtol, atol=atol, equal_nan=True):
            worst = max_abs_diff(have64, want64)
            what = "image score" if per_image_score else "output"
            return (
                f"{what} {name!r} differs from the golden output by up to {worst:.4g} "
                f"(tolerance rtol={rtol:g}, atol={atol:g})"
            )
    return None
