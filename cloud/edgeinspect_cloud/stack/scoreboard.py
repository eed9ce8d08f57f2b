"""The demo's live scoreboard: the line's verdicts scored against the ground truth the demo generated.

A page full of verdicts proves nothing by itself: the first wave's demo showed confident, wrong ones.
The demo replays a synthetic line whose every frame has a ground-truth mask (``<name>_GT.png``), so it
can say, once a minute, how right the live verdicts are: precision and recall of the line's verdict
and of each model, and the end-to-end latency (capture to result in Redis).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from edgeinspect.core import images, names
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Result
from edgeinspect.core.streams import Entry, Streams

GT_SUFFIX = "_GT.png"


def ground_truth(folder: Path) -> dict[str, bool]:
    """``{"10003.png": True, ...}``: whether each frame of a KolektorSDD2-style folder is defective."""
    truth: dict[str, bool] = {}
    for mask_path in sorted(folder.glob(f"*{GT_SUFFIX}")):
        frame_name = mask_path.name[: -len(GT_SUFFIX)] + ".png"
        truth[frame_name] = bool(images.decode_mask(mask_path.read_bytes()).any())
    return truth


@dataclass
class Tally:
    """Confusion counts of one judge (the line's verdict, or one model) against the ground truth."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted_defect: bool, truly_defect: bool) -> None:
        if predicted_defect and truly_defect:
            self.tp += 1
        elif predicted_defect:
            self.fp += 1
        elif truly_defect:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def text(self) -> str:
        return f"P {_ratio(self.precision)} R {_ratio(self.recall)}"

    def figures(self) -> dict[str, float | int | None]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


@dataclass
class Scoreboard:
    """Running scores of one line's results; ``add`` every result, ``line()`` to print."""

    truth: Mapping[str, bool]
    verdict: Tally = field(default_factory=Tally)
    models: dict[str, Tally] = field(default_factory=dict)
    e2e_ms: list[float] = field(default_factory=list)
    judged: int = 0
    unscored: int = 0
    errors: int = 0
    waiting: int = 0

    def add(self, result: Result) -> None:
        """Score one result (its ``e2e_ms`` is capture to result, measured by the worker)."""
        if result.verdict == "error":
            self.errors += 1
            return
        primaries = [p for p in result.predictions if p.role == "primary"]
        if result.verdict == "no_model" or not primaries:
            self.waiting += 1
            return
        truly = self.truth.get(Path(result.source).name)
        if truly is None:
            self.unscored += 1
            return
        self.judged += 1
        self.verdict.add(result.verdict == "defect", truly)
        for prediction in primaries:
            self.models.setdefault(prediction.task, Tally()).add(prediction.label == "defect", truly)
        self.e2e_ms.append(result.e2e_ms)

    def e2e_p50(self) -> float | None:
        return float(np.percentile(self.e2e_ms, 50)) if self.e2e_ms else None

    def line(self) -> str:
        """One line for the console."""
        parts = [f"{self.judged} frames scored", f"verdict {self.verdict.text()}"]
        parts += [f"{task} {tally.text()}" for task, tally in sorted(self.models.items())]
        p50 = self.e2e_p50()
        parts.append(f"e2e p50 {'-' if p50 is None else f'{p50:.0f} ms'}")
        parts.append(f"errors {self.errors}")
        if self.waiting:
            parts.append(f"not inspected (no model) {self.waiting}")
        return " | ".join(parts)

    def figures(self) -> dict[str, object]:
        return {
            "frames_scored": self.judged,
            "verdict": self.verdict.figures(),
            "models": {task: tally.figures() for task, tally in sorted(self.models.items())},
            "e2e_p50_ms": self.e2e_p50(),
            "errors": self.errors,
            "waiting_for_model": self.waiting,
            "unscored": self.unscored,
        }


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def score_entries(board: Scoreboard, entries: Iterable[Entry]) -> None:
    """Add each results-stream entry to ``board`` (a malformed one is counted as unscored)."""
    for entry in entries:
        try:
            board.add(entry.parse(Result))
        except MessageError:
            board.unscored += 1


class LiveScoreboard:
    """Follows ``ei:results:{line}`` from now on and reports the board every ``every_s`` seconds."""

    def __init__(
        self,
        redis_url: str,
        line: str,
        truth: Mapping[str, bool],
        report: Callable[[Scoreboard], None],
        every_s: float = 60.0,
    ) -> None:
        self.board = Scoreboard(truth)
        self._streams = Streams.from_url(redis_url)
        self._stream = names.results_stream(line)
        self._report = report
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scoreboard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._streams.close()

    def _run(self) -> None:
        position = "$"
        next_report = time.monotonic() + self._every_s
        while not self._stop.is_set():
            try:
                entries = self._streams.read({self._stream: position}, count=500, block_ms=1000)
            except Exception:  # Redis restarting: the board keeps what it has and tries again
                entries = []
                self._stop.wait(1.0)
            if entries:
                position = entries[-1].id
                score_entries(self.board, entries)
            if time.monotonic() >= next_report:
                next_report += self._every_s
                self._report(self.board)
