"""int8 vs fp32 on new data: compile's int8 gates on the demo's models, and what the package carries.

The demo's shipped models (``cloud/edgeinspect_cloud/stack/demo_models``: trained by the project's own
pipeline with the ``demo`` profile) go through the pipeline's ``compile``, ``package`` and
``agent-check`` steps on a synthetic line (``data synth``, seed 11, as the demo), three times:

- ``synthetic shift``: the default int8 gates (validation, and the validation frames under the ten
  seeded shifts of ``edgeinspect_cloud.compile.shift``);
- ``darker line``: ``--shift-data`` = another synthetic line (seed 23, 40 grey levels darker), a held-out
  family the models never saw;
- ``fp32 only``: ``--no-int8``, the package without ``model.int8.onnx`` (size reference).

Per model: verdict agreement int8 vs fp32 at the shipped threshold on validation and on each shifted
set, false rejects of good parts fp32 vs int8, the package's default precision, and package sizes.
Run from the repository root (a few minutes on 2 cores; ``nice`` it):

    nice -n 10 .venv/bin/python -m bench.int8_gate [--count 400] [--out bench/out/int8_gate]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

TASKS = ("classification", "segmentation")
GROUPS = {"classification": "defect-cls", "segmentation": "defect-seg"}


def _edgeinspect(*argv: str) -> dict[str, Any]:
    """Run the CLI; its last output line is a JSON object."""
    done = subprocess.run(
        [sys.executable, "-m", "edgeinspect_cloud.cli", *argv], check=True, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _pipeline(out: Path, data: Path, key: Path, steps: list[str], *extra: str) -> Path:
    from edgeinspect_cloud.stack.demo_models import seed_run

    run = out / "run"
    if not (run / "train").is_dir():
        seed_run(run)
    argv = ["pipeline", "run", "--dataset", str(data), "--task", "both", "--profile", "demo"]
    argv += ["--steps", *steps, "--out", str(run), "--key", str(key), "--no-progress", *extra]
    _edgeinspect(*argv)
    return run


def _members(package: Path) -> dict[str, int]:
    with tarfile.open(package) as archive:
        return {m.name: m.size for m in archive.getmembers() if m.name.endswith(".onnx")}


def _figures(run: Path, task: str) -> dict[str, Any]:
    compiled = json.loads((run / "compile" / task / "compile.json").read_text())
    precision = compiled["precision"]
    row: dict[str, Any] = {"default": precision["default"], "reason": precision["reason"]}
    for gate in precision["gates"]:
        row[gate["set"]] = {
            k: gate[k]
            for k in (
                "images",
                "borderline",
                "verdict_agreement",
                "good",
                "false_rejects_fp32",
                "false_rejects_int8",
            )
        }
    row["threshold"] = precision["gates"][0]["threshold"] if precision["gates"] else None
    packages = sorted((run / "package" / task).glob("*.tar.gz"))
    if packages:
        row["package_bytes"] = packages[-1].stat().st_size
        row["model_bytes"] = _members(packages[-1])
    check = run / "agent-check" / f"{task}.json"
    if check.is_file():
        row["agent_default"] = json.loads(check.read_text()).get("default")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="frames of the synthetic line (default 400)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/int8_gate"))
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    key = out / "keys" / "edgeinspect.key"
    if not key.is_file():
        _edgeinspect("keys", "generate", "--out", str(out / "keys"))
    data, darker = out / "data", out / "darker"
    if not data.is_dir():
        _edgeinspect("data", "synth", "--out", str(data), "--count", str(args.count), "--seed", "11")
    if not darker.is_dir():
        count = str(max(100, args.count // 2))
        _edgeinspect(
            "data",
            "synth",
            "--out",
            str(darker),
            "--count",
            count,
            "--seed",
            "23",
            "--brightness-shift",
            "-40",
        )
    runs = {
        "synthetic shift": _pipeline(
            out / "synthetic", data, key, ["data", "compile", "package", "agent-check"]
        ),
        "darker line": _pipeline(
            out / "darker-line", data, key, ["data", "compile"], "--shift-data", str(darker)
        ),
        "fp32 only": _pipeline(out / "fp32", data, key, ["data", "compile", "package"], "--no-int8"),
    }
    figures = {name: {task: _figures(run, task) for task in TASKS} for name, run in runs.items()}
    print(_table(figures))
    print(json.dumps(figures, sort_keys=True))
    return 0


def _table(figures: dict[str, dict[str, dict[str, Any]]]) -> str:
    columns = ["run", "model", "agreement validation", "agreement shifted (images)"]
    columns += ["false rejects fp32/int8 (shifted)", "default", "package"]
    rows = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for name, tasks in figures.items():
        for task, row in tasks.items():
            val, shift = row.get("validation", {}), row.get("shifted", {})
            cells = [
                name,
                GROUPS[task],
                f"{val['verdict_agreement']:.3f}" if val else "-",
                f"{shift['verdict_agreement']:.3f} ({shift['images']})" if shift else "-",
                f"{shift.get('false_rejects_fp32')}/{shift.get('false_rejects_int8')} of {shift.get('good')}"
                if shift
                else "-",
                row["default"],
                f"{row['package_bytes'] / 1e6:.2f} MB" if "package_bytes" in row else "-",
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
