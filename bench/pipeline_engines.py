"""The same quick pipeline run locally and as the exported Kubeflow graph under kfp.local: time and figures.

Both runs train on one small synthetic dataset with the same seed, register into their own folder
registry, and are compared on wall time, on the registered versions' evaluation figures (which
must match: the same CLI runs the same steps), and on the agent-check each version records: the real
edge agent loaded that very signed package (its sha256 is the registered one) and answered the golden
input within tolerance, per variant. The kfp.local run uses the export tool environment
(``make pipelines-venv``) and its SubprocessRunner: each node is a Python component that runs the
node's ``edgeinspect`` command line. The gate minimums are 0 in both runs (quick models on a tiny set
are not the point; the gate is tested elsewhere), so both register a signed package.

    .venv/bin/python bench/pipeline_engines.py [--count 60] [--epochs 2]

Prints a table, then one JSON line of the same figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeinspect.core.package import load_public_keys, write_keypair
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.packaging import check_package
from edgeinspect_cloud.pipeline.export import ENGINES_DIR, _offline_env, ensure_venv, tool_venv
from edgeinspect_cloud.pipeline.graph import RUN_DIR, graph_spec
from edgeinspect_cloud.registry import ModelRegistry

EDGEINSPECT = str(Path(sys.executable).with_name("edgeinspect"))
GATE_OFF = {"gate_min_ap": "0", "gate_min_recall": "0", "gate_min_dice": "0"}
FIGURES = ("image_ap", "image_auroc", "operating_recall", "dice")


def run_local(dataset: Path, work: Path, key: Path, epochs: int) -> float:
    argv = [EDGEINSPECT, "pipeline", "run", "--dataset", str(dataset), "--quick", "--epochs", str(epochs)]
    argv += ["--out", str(work / "local-run"), "--key", str(key), "--registry", (work / "reg-local").as_uri()]
    argv += [
        "--seed",
        "0",
        "--no-progress",
        "--gate-min-ap",
        "0",
        "--gate-min-recall",
        "0",
        "--gate-min-dice",
        "0",
    ]
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_kfp(dataset: Path, work: Path, key: Path, epochs: int) -> float:
    python = ensure_venv(tool_venv())
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    spec = json.dumps(graph_spec("edgeinspect-cloud:bench", quick=True, epochs=epochs))
    pairs = {
        "dataset_url": dataset.as_uri(),
        "run_url": (work / "kfp-store").as_uri(),
        "registry_url": (work / "reg-kfp").as_uri(),
        "seed": "0",
        "key": str(key),
        "pipeline_root": str(work / "kfp-root"),
        **GATE_OFF,
    }
    argv = [str(python), str(ENGINES_DIR / "kubeflow_export.py"), "--run", EDGEINSPECT, "--"]
    argv += [f"{name}={value}" for name, value in pairs.items()]
    started = time.monotonic()
    done = subprocess.run(argv, input=spec, text=True, capture_output=True, env=_offline_env(), check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-6000:])
        raise SystemExit(f"the kfp.local run failed (exit {done.returncode})")
    return seconds


def registered(registry_dir: Path, public_key: Path, work: Path) -> dict[str, dict[str, Any]]:
    """Per group: version, verified package, and the held-out figures the registry recorded."""
    registry = ModelRegistry.open(registry_dir.as_uri())
    keys = load_public_keys(public_key)
    found = {}
    for group in registry.groups():
        mv = registry.latest(group, status=None)
        assert mv is not None
        package = work / f"{registry_dir.name}-{group}.tar.gz"
        registry.store.download(
            mv.registration.package.key, package, expected_sha256=mv.registration.package.sha256
        )
        check_package(package, keys)  # signature, hashes, and the golden input through ONNX Runtime; raises
        figures = {k: round(v, 6) for k, v in mv.registration.metrics.items() if k in FIGURES}
        found[group] = {
            "version": mv.version,
            "verified": True,
            "figures": figures,
            "agent_check": agent_check(
                mv.registration.extra.get("agent_check"), mv.registration.package.sha256
            ),
        }
    return found


def agent_check(record: Any, sha256: str) -> dict[str, Any]:
    """What the pipeline's agent-check recorded for this version: passed on the registered bytes, diffs."""
    if not isinstance(record, dict):
        return {"passed": False, "why": "no agent-check recorded"}
    variants = record.get("variants", {})
    return {
        "passed": record.get("package_sha256") == sha256 and all(v.get("passed") for v in variants.values()),
        "same_package": record.get("package_sha256") == sha256,
        "max_abs_diff": {name: v.get("max_abs_diff") for name, v in variants.items()},
        "providers": record.get("agent", {}).get("execution_providers"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="synthetic images (train + test)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ei-engines-"))
    dataset = work / "dataset"
    write_dataset(dataset, count=args.count, defect_ratio=0.4, seed=7, height=256, width=96)
    key, public = write_keypair(work / "keys")
    kfp_s = run_kfp(dataset, work, key, args.epochs)
    local_s = run_local(dataset, work, key, args.epochs)
    local, kfp = registered(work / "reg-local", public, work), registered(work / "reg-kfp", public, work)
    header = f"{'run':<10} {'wall s':>8}  {'group':<11} {'version':>7}  {'verified':<8}"
    print(f"{header}  {'agent-check':<30}  figures")
    for name, seconds, result in (("local", local_s, local), ("kfp.local", kfp_s, kfp)):
        for group, row in result.items():
            shown = " ".join(f"{k}={v:.4f}" for k, v in row["figures"].items())
            check = row["agent_check"]
            diffs = " ".join(f"{k}:{v:.1e}" for k, v in check.get("max_abs_diff", {}).items())
            agent = f"{'passed' if check['passed'] else 'FAILED'} {diffs}"
            print(
                f"{name:<10} {seconds:>8.1f}  {group:<11} {row['version']:>7}"
                f"  {row['verified']!s:<8}  {agent:<30}  {shown}"
            )
    same = {group: local[group]["figures"] == kfp.get(group, {}).get("figures") for group in local}
    print(f"figures identical per group: {same}")
    checked = all(row["agent_check"]["passed"] for result in (local, kfp) for row in result.values())
    print(f"every registered package loaded by the edge agent: {checked}")
    print(
        json.dumps(
            {
                "images": args.count,
                "epochs": args.epochs,
                "local_wall_s": round(local_s, 1),
                "kfp_local_wall_s": round(kfp_s, 1),
                "local": local,
                "kfp_local": kfp,
                "figures_identical": same,
                "agent_check_passed": checked,
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
