"""The monitor on hand-made telemetry: exactly the moved features drift, reports and exit codes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.package import build_package
from edgeinspect.core.telemetry import ImageFeatures, TelemetrySummary
from edgeinspect.core.telemetry_window import FrameObservation, ModelAnswer, TelemetryWindows
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.monitor.baseline import combine_baselines, load_baseline

from tests.helpers.models import classifier_onnx, image, make_keys, manifest_for, run_onnx

MODELS = {"classification": "defect-cls:1", "segmentation": "defect-seg:1"}


def frames(seed: int, count: int, *, darker: float = 0.0, share: float = 0.1) -> list[FrameObservation]:
    """Frames whose brightness and classifier score move with ``darker``; nothing else does."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        brightness = rng.normal(120 - darker, 12)
        defect = bool(rng.random() < share)
        score = float(np.clip(rng.beta(2, 8) + (0.5 if defect else 0.0) - darker / 200, 0, 1))
        seg = float(np.clip(rng.beta(2, 6) + (0.4 if defect else 0.0), 0, 1))
        out.append(
            FrameObservation(
                verdict="defect" if defect else "ok",
                answers={
                    "classification": ModelAnswer(score, score >= 0.5),
                    "segmentation": ModelAnswer(seg, seg >= 0.5),
                },
                models=MODELS,
                image=ImageFeatures(brightness, rng.normal(22, 3), rng.normal(2.4, 0.1)),
                mask_area=float(rng.uniform(1e-3, 1e-2)) if defect else 0.0,
                latency_ms=float(rng.uniform(10, 30)),
            )
        )
    return out


def summaries(line: str, thing: str, seed: int, windows: int, per_window: int, **shift: float) -> list[dict]:
    recorder = TelemetryWindows(line, thing)
    out = []
    for w in range(windows):
        for i, frame in enumerate(frames(seed * 100 + w, per_window, **shift)):
            recorder.add(frame, now_ns=1_767_225_600_000_000_000 + (w * 300 + i) * 1_000_000_000)
        out += [s.to_json() for s in recorder.flush(1_767_225_600_000_000_000 + (w + 1) * 300 * 10**9)]
    return out


def baseline_file(tmp_path: Path) -> Path:
    total = TelemetrySummary(kind="baseline", models=MODELS)
    recorder = TelemetryWindows("validation")
    for frame in frames(1, 600):
        recorder.add(frame, now_ns=1)
    (summary,) = recorder.flush(2)
    total.merge(summary)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(total.to_json()))
    return path


def write_jsonl(path: Path, bodies: list[dict]) -> Path:
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def test_the_shifted_device_drifts_on_exactly_the_moved_features_and_the_control_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = summaries("line-a", "press-1", 2, 4, 80) + summaries("line-b", "press-2", 3, 4, 80, darker=40)
    telemetry = write_jsonl(tmp_path / "telemetry.jsonl", bodies)
    out = tmp_path / "report"
    code = main(["monitor", "--baseline", str(baseline_file(tmp_path)), "--telemetry", str(telemetry),
                 "--out", str(out)])  # fmt: skip
    assert code == 3
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["drifted"] and set(last["groups"]) == {"line-b/press-2"}
    metrics = json.loads((out / "metrics.json").read_text())
    by_line = {g["line"]: g for g in metrics["groups"]}
    assert by_line["line-a"]["drifted"] == []
    # 10% -> ~4% defects is a real but small move (two-bin PSI ~0.06): reported, not called drift
    assert set(by_line["line-b"]["drifted"]) == {"brightness", "cls_score"}
    assert by_line["line-b"]["frames"] == 320 and len(by_line["line-b"]["windows"]) == 4
    for name in ("report.md", "report.html", "line-b-press-2-scores.png", "line-b-press-2-features.png"):
        assert (out / name).stat().st_size > 0, name
    assert "DRIFT DETECTED" in (out / "report.md").read_text()


def test_no_drift_exits_zero_and_too_few_frames_never_drift(tmp_path: Path) -> None:
    baseline = baseline_file(tmp_path)
    control = write_jsonl(tmp_path / "control.jsonl", summaries("line-a", "press-1", 5, 2, 60))
    assert (
        main(
            [
                "monitor",
                "--baseline",
                str(baseline),
                "--telemetry",
                str(control),
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    tiny = write_jsonl(tmp_path / "tiny.jsonl", summaries("line-b", "press-2", 6, 1, 12, darker=60))
    assert (
        main(["monitor", "--baseline", str(baseline), "--telemetry", str(tiny), "--out", str(tmp_path / "b")])
        == 0
    )
    (group,) = json.loads((tmp_path / "b" / "metrics.json").read_text())["groups"]
    assert not any(f["enough_data"] for f in group["features"])


def test_missing_inputs_are_errors_with_hints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = baseline_file(tmp_path)
    assert main(["monitor", "--baseline", str(baseline), "--out", str(tmp_path / "r")]) == 1
    assert "no field data" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema": "edgeinspect.telemetry", "v": 7}\n')
    assert (
        main(["monitor", "--baseline", str(baseline), "--telemetry", str(bad), "--out", str(tmp_path / "r")])
        == 1
    )
    assert "this code reads" in capsys.readouterr().err


def test_a_baseline_is_read_from_the_package_manifest_and_two_are_combined(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    cls_base = json.loads(baseline_file(tmp_path).read_text())
    manifest = manifest_for("defect-cls", "3", "classification", 64, 64).model_copy(
        update={"baseline": cls_base}
    )
    model = tmp_path / "model.onnx"
    model.write_bytes(classifier_onnx())
    golden_in = image(seed=1)
    tar = build_package(tmp_path / "pkg", manifest, model, golden_in, run_onnx(model.read_bytes(), golden_in),
                        keys.private_key)  # fmt: skip
    loaded = load_baseline(tar)
    assert loaded.frames == 600 and loaded.features["brightness"].n == 600
    plain = tmp_path / "plain.json"
    plain.write_text(manifest.model_copy(update={"baseline": None}).to_json_bytes().decode())
    with pytest.raises(Exception, match="has no drift baseline"):
        load_baseline(plain)
    both = combine_baselines([loaded, load_baseline(tmp_path / "baseline.json")])
    assert both.features["brightness"].n == 600  # the same images are not counted twice
    assert both.features["cls_score"].n == 1200


class Hook:
    """A loopback HTTP endpoint that records the JSON bodies POSTed to it (the webhook's receiver)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/drift"


def test_drift_is_posted_to_the_webhook_and_a_dead_webhook_still_exits_3(tmp_path: Path) -> None:
    hook = Hook()
    try:
        telemetry = write_jsonl(tmp_path / "t.jsonl", summaries("line-b", "press-2", 3, 2, 80, darker=40))
        base = ["monitor", "--baseline", str(baseline_file(tmp_path)), "--telemetry", str(telemetry)]
        assert main([*base, "--out", str(tmp_path / "r1"), "--webhook", hook.url]) == 3
        (alert,) = hook.bodies
        assert (alert["type"], alert["line"], alert["device"]) == ("drift", "line-b", "press-2")
        assert {f["feature"] for f in alert["features"]} == {"brightness", "cls_score"}
        assert alert["report"].endswith("r1")
    finally:
        hook.server.shutdown()
        hook.server.server_close()
    assert main([*base, "--out", str(tmp_path / "r2"), "--webhook", hook.url]) == 3  # receiver gone
