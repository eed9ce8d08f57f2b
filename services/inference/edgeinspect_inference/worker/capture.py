"""The capture policy: which frames go to ``ei:capture`` for review, retraining and drift monitoring.

A frame is captured, with every reason that applies, when:

- ``error``: the frame could not be judged (always: someone must look at it);
- ``defect``: the verdict is defect (always);
- ``near_threshold``: a primary model's score lies within ``band`` of its threshold (the cases the
  model is least sure about, the most useful for retraining);
- ``shadow_disagreement``: a shadow model's label differs from its primary's (evidence for or against
  the candidate version);
- ``sample_good``: a good part picked by a seeded sample of ``good_fraction``.

The sample is a pure function of ``(seed, frame_id)``, not of a random stream: every worker of a line
picks the same frames regardless of which worker saw which frame or in what order, and a test can
predict the picks exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from edgeinspect.core.messages import Result

from edgeinspect_inference.worker.verdict import shadow_disagreements

REASONS = ("error", "defect", "near_threshold", "shadow_disagreement", "sample_good")


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """Decides the capture reasons for a result (an empty list means: do not capture)."""

    good_fraction: float = 0.01
    band: float = 0.05
    seed: int = 0

    def reasons(self, result: Result) -> list[str]:
        """Every rule that selects ``result``'s frame, in the order of :data:`REASONS`."""
        if result.verdict == "error":
            return ["error"]
        if result.verdict == "no_model":
            return []  # not inspected: nothing to learn from, and no disk to spend on it
        found: list[str] = []
        if result.verdict == "defect":
            found.append("defect")
        primaries = [p for p in result.predictions if p.role == "primary"]
        if any(abs(p.score - p.threshold) <= self.band for p in primaries):
            found.append("near_threshold")
        if shadow_disagreements(result.predictions):
            found.append("shadow_disagreement")
        if not found and self.sampled(result.frame_id):
            found.append("sample_good")
        return found

    def sampled(self, frame_id: str) -> bool:
        """Whether ``frame_id`` falls in the seeded ``good_fraction`` sample."""
        if self.good_fraction <= 0:
            return False
        if self.good_fraction >= 1:
            return True
        digest = hashlib.blake2b(f"{self.seed}:{frame_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.good_fraction
