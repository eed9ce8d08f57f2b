"""The local stack's console and logs: bounded log files, error lines that still reach people, and the
demo's scoreboard scored against a line's ground truth."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from edgeinspect.core import images
from edgeinspect.core.messages import Prediction, Result
from edgeinspect_cloud.stack import topology
from edgeinspect_cloud.stack.logfile import RotatingLog, is_error_line
from edgeinspect_cloud.stack.scoreboard import Scoreboard, ground_truth
from edgeinspect_cloud.stack.supervisor import ProcessSpec, Supervisor


def test_rotating_log_keeps_at_most_two_files_of_its_size(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "svc.log", max_bytes=1000)
    for i in range(500):
        log.write(f"line {i:04d} " + "x" * 40)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1"]
    assert all((tmp_path / name).stat().st_size <= 1000 for name in files)
    assert "line 0499" in (tmp_path / "svc.log").read_text()


def test_error_lines_are_json_errors_or_tracebacks() -> None:
    assert is_error_line('{"level": "error", "event": "agent_down"}\n')
    assert is_error_line("Traceback (most recent call last):\n")
    assert not is_error_line('{"level": "info", "event": "frame_judged"}')
    assert not is_error_line('{"level": "warning"')
    assert not is_error_line("uploader ready")


def _run_child(tmp_path: Path, verbose: bool, script: str) -> tuple[str, Path]:
    out = io.StringIO()
    supervisor = Supervisor(out=out, colour=False, log_dir=tmp_path / "logs", verbose=verbose)
    supervisor.start(ProcessSpec("chatty", [sys.executable, "-c", script], restart=False))
    supervisor.watch()
    children = supervisor._children
    assert children[0].proc is not None
    children[0].proc.wait(timeout=20)
    for _ in range(40):  # the watcher reports the exit within half a second
        if "exited with code" in out.getvalue():
            break
        supervisor.stopping.wait(0.1)
    supervisor.stop()
    return out.getvalue(), tmp_path / "logs" / "chatty.log"


CHATTY = (
    "import json\n"
    "for i in range(50): print(json.dumps({'level': 'info', 'event': 'tick', 'i': i}))\n"
    "print(json.dumps({'level': 'error', 'event': 'broken', 'hint': 'fix it'}))\n"
    "raise SystemExit(3)\n"
)


def test_quiet_console_logs_to_a_file_and_shows_errors_and_the_last_lines(tmp_path: Path) -> None:
    console, log = _run_child(tmp_path, verbose=False, script=CHATTY)
    assert log.read_text().count('"event": "tick"') == 50
    assert '"i": 10}' not in console  # info lines stay in the file
    assert '"event": "broken"' in console  # an error line reaches the console
    assert "exited with code 3" in console
    assert f"all in {log}" in console  # the exit shows the last lines and where the rest is
    assert '"i": 49}' in console


def test_verbose_console_streams_every_line(tmp_path: Path) -> None:
    console, log = _run_child(tmp_path, verbose=True, script=CHATTY)
    assert console.count('"event": "tick"') == 50
    assert log.read_text().count('"event": "tick"') == 50


def _pred(task: str, label: str, role: str = "primary") -> Prediction:
    return Prediction(
        model=f"m-{task}", version="1", task=task, label=label, score=0.9 if label == "defect" else 0.1,  # type: ignore[arg-type]
        threshold=0.5, latency_ms=3.0, role=role,  # type: ignore[arg-type]
    )  # fmt: skip


def _result(source: str, verdict: str, labels: tuple[str, str], e2e_ms: float) -> Result:
    preds = [_pred("classification", labels[0]), _pred("segmentation", labels[1])]
    return Result(
        frame_id=source, line="line-1", ts_ns=1, verdict=verdict, score=0.5,  # type: ignore[arg-type]
        predictions=preds, e2e_ms=e2e_ms, source=source,
    )  # fmt: skip


def test_ground_truth_reads_the_masks(tmp_path: Path) -> None:
    for name, defect in (("10000", False), ("10001", True)):
        mask = np.zeros((8, 8, 3), np.uint8)
        mask[2, 3] = 255 if defect else 0
        (tmp_path / f"{name}.png").write_bytes(images.encode(mask, "png"))
        (tmp_path / f"{name}_GT.png").write_bytes(images.encode(mask, "png"))
    assert ground_truth(tmp_path) == {"10000.png": False, "10001.png": True}


def test_scoreboard_scores_verdicts_and_each_model_against_the_truth() -> None:
    board = Scoreboard({"a.png": True, "b.png": False, "c.png": True, "d.png": False})
    board.add(_result("a.png", "defect", ("defect", "defect"), 40))
    board.add(_result("b.png", "defect", ("defect", "ok"), 60))  # a false reject
    board.add(_result("c.png", "ok", ("ok", "ok"), 20))  # an escape
    board.add(_result("d.png", "ok", ("ok", "ok"), 30))
    board.add(_result("zzz.png", "ok", ("ok", "ok"), 10))  # not in the truth
    board.add(
        Result(frame_id="e", line="line-1", ts_ns=1, verdict="error", score=0.0, predictions=[], e2e_ms=1)
    )
    board.add(Result(frame_id="w", line="l", ts_ns=1, verdict="no_model", score=0, predictions=[], e2e_ms=1))
    assert board.judged == 4 and board.unscored == 1 and board.errors == 1 and board.waiting == 1
    assert (board.verdict.tp, board.verdict.fp, board.verdict.fn, board.verdict.tn) == (1, 1, 1, 1)
    assert board.verdict.precision == 0.5 and board.verdict.recall == 0.5
    assert board.models["segmentation"].precision == 1.0
    assert board.e2e_p50() == 35.0
    line = board.line()
    assert "verdict P 0.50 R 0.50" in line and "e2e p50 35 ms" in line


def test_folder_lifecycle_removes_the_oldest_objects_down_to_90_percent(tmp_path: Path) -> None:
    import os

    from edgeinspect_cloud.stack.lifecycle import trim_folder

    bucket = tmp_path / "bucket" / "captures" / "line-1"
    bucket.mkdir(parents=True)
    for i in range(20):
        path = bucket / f"{i:03d}.png"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000.0 + i, 1000.0 + i))
    fresh = bucket / "fresh.png"
    fresh.write_bytes(b"x" * 1000)
    os.utime(fresh, (5000.0, 5000.0))
    trimmed = trim_folder(tmp_path / "bucket", max_bytes=10_000, min_age_s=300.0, now=5100.0)
    left = sorted(p.name for p in bucket.iterdir())
    assert trimmed.total_after <= 9_000 and trimmed.files == 12
    assert left[0] == "012.png" and "fresh.png" in left  # oldest first; nothing younger than min_age
    assert trim_folder(tmp_path / "bucket", max_bytes=10_000, now=5100.0).files == 0


def test_the_local_stack_leaves_only_a_loopback_trigger_open() -> None:
    """`edgeinspect up` may leave a camera trigger on loopback open (the UI's rule); a trigger on any
    other address keeps the camera's default, a bearer token."""
    assert topology._trigger_auth("http://127.0.0.1:8090") == {"EI_TRIGGER_AUTH": "none"}
    assert topology._trigger_auth("http://0.0.0.0:8090") == {}
    assert topology._trigger_auth("folder:///data/line-1") == {}
