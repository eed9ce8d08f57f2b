"""Execution providers on a GPU box: CPU vs CUDA vs TensorRT on the benchmark models, one short run.

Two steps, because the GPU box has Python, numpy, ONNX Runtime and torch but not this project's
dependencies (no ``onnx`` to build models, no internet):

1. here, in the project venv, build the models and their golden answers (CPU provider) into
   ``bench/out/gpu_providers/`` (git-ignored, ~25 MB)::

       .venv/bin/python -m bench.gpu_providers --prepare

2. on the GPU box, with that folder carried along (and, if it fits, an ``onnxruntime-gpu`` wheel in
   ``.whl/`` at the repository root), standard library + numpy + onnxruntime only::

       python3 bench/gpu_providers.py            # ~1-3 minutes; prints a table, then one JSON line

What it does there: installs ``.whl/onnxruntime_gpu-*.whl`` into a throwaway venv that sees the
system packages (``--no-index --no-deps``) when present, calls ``onnxruntime.preload_dlls()`` so the
CUDA/cuDNN libraries of the installed torch are used, then for each model measures every available
provider (TensorRT with fp16 as the agent configures it, CUDA, CPU at all cores and half) with
warm-up, p50/p99 over timed runs and the agent's answer check (fp32: rtol 1e-3/atol 1e-4 against the
CPU golden; int8: image scores within 0.02). When no GPU provider is available it says exactly why
(no wheel carried; the cp312 manylinux ``onnxruntime-gpu`` wheel is ~244 MiB, over the 64 MiB a
device run may carry) and still measures the CPU thread layouts on that box's cores.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "bench" / "out" / "gpu_providers"
WHEELS = ROOT / ".whl"
SIZE = (232, 640)
GPU_WHEEL_NOTE = (
    "onnxruntime-gpu is not installed and no .whl/onnxruntime_gpu-*.whl was carried: its cp312 "
    "manylinux_2_28 wheel (1.31.1) is ~244 MiB, over the 64 MiB a device run may carry"
)


def prepare() -> int:
    """Build the models (segmenter fp32/int8 at 240x640, classifier int8 at 232x640) and goldens."""
    import numpy as np
    import onnxruntime as ort

    from bench import models as bench_models
    from bench.agent_latency import quantize

    MODELS.mkdir(parents=True, exist_ok=True)
    height, width = SIZE
    specs = {
        # fp32 ResNet18 is ~45 MB: with it the folder would pass the 64 MiB carry limit
        "segmenter": (bench_models.unet_onnx(height=240, width=width), (1, 3, 240, width)),
        "classifier": (bench_models.resnet18_onnx(height, width), (1, 3, height, width)),
    }
    rng = np.random.default_rng(5)
    for name, (onnx_bytes, shape) in specs.items():
        fp32 = MODELS / f"{name}.fp32.onnx"
        fp32.write_bytes(onnx_bytes)
        int8 = MODELS / f"{name}.int8.onnx"
        quantize(fp32, int8, shape)
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        np.save(MODELS / f"{name}.input.npy", frame)
        for path in (fp32, int8):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (out,) = session.run(None, {"image": frame})
            np.save(path.with_suffix(".golden.npy"), out)
        if name == "classifier":
            fp32.unlink()
            fp32.with_suffix(".golden.npy").unlink()
    total = sum(p.stat().st_size for p in MODELS.iterdir())
    print(f"wrote {MODELS} ({total / 2**20:.1f} MiB); carry it: bench/out/gpu_providers")
    return 0


def _maybe_install_gpu_wheel() -> str:
    """Re-run this script in a venv with the carried onnxruntime-gpu wheel (once); "" when none."""
    wheels = sorted(glob.glob(str(WHEELS / "onnxruntime_gpu-*.whl")))
    if not wheels or os.environ.get("EI_GPU_BENCH_VENV"):
        return ""
    venv = Path(tempfile.mkdtemp(prefix="ei-gpu-venv-"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    subprocess.run([*pip, wheels[-1]], check=True)
    env = {**os.environ, "EI_GPU_BENCH_VENV": str(venv)}
    code = subprocess.run([str(venv / "bin" / "python"), *sys.argv], env=env).returncode
    shutil.rmtree(venv, ignore_errors=True)
    raise SystemExit(code)


def _check(out: Any, golden: Any, int8: bool) -> str:
    import numpy as np

    got, want = np.asarray(out, np.float64), np.asarray(golden, np.float64)
    if int8:
        got, want = got.reshape(got.shape[0], -1).max(1), want.reshape(want.shape[0], -1).max(1)
        ok, tol = bool(np.all(np.abs(got - want) <= 0.02)), "image scores within 0.02"
    else:
        ok, tol = bool(np.allclose(got, want, rtol=1e-3, atol=1e-4)), "rtol 1e-3, atol 1e-4"
    return "" if ok else f"wrong answer: max |diff| {float(np.max(np.abs(got - want))):.4g} ({tol})"


def _candidates(available: list[str], cores: int) -> list[tuple[str, list[Any], int]]:
    engine_cache = str(MODELS / "trt-cache")
    trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": engine_cache}
    cuda = {"cudnn_conv_algo_search": "HEURISTIC"}
    table: list[tuple[str, list[Any]]] = [
        ("tensorrt", [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("cuda", [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]),
    ]
    out = [(name, providers, cores) for name, providers in table if _ort_name(providers[0]) in available]
    for threads in dict.fromkeys([cores, max(1, cores // 2)]):
        out.append(("cpu", ["CPUExecutionProvider"], threads))
    return out


def _ort_name(provider: Any) -> str:
    return provider[0] if isinstance(provider, tuple) else str(provider)


def measure(runs: int) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()  # CUDA/cuDNN from the installed torch's nvidia-* packages
        except Exception as exc:  # reported; the CPU rows still come
            print(f"preload_dlls failed: {exc}", file=sys.stderr)
    available = list(ort.get_available_providers())
    cores = len(os.sched_getaffinity(0))
    rows: list[dict[str, Any]] = []
    for model in sorted(MODELS.glob("*.onnx")):
        name, precision = model.name.split(".")[:2]
        frame = np.load(MODELS / f"{name}.input.npy")
        golden = np.load(model.with_suffix(".golden.npy"))
        for provider, providers, threads in _candidates(available, cores):
            row: dict[str, Any] = {
                "model": name,
                "precision": precision,
                "provider": provider,
                "threads": threads,
            }
            try:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                started = time.perf_counter()
                session = ort.InferenceSession(str(model), options, providers=providers)
                for _ in range(3):  # TensorRT builds its engine on the first run
                    (out,) = session.run(None, {"image": frame})
                row["load_s"] = round(time.perf_counter() - started, 2)
                row["ran_on"] = session.get_providers()[0]
                problem = _check(out, golden, precision == "int8")
                if problem:
                    row["rejected"] = problem
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    session.run(None, {"image": frame})
                    times.append((time.perf_counter() - t0) * 1000.0)
                times.sort()
                row["p50_ms"] = round(statistics.median(times), 3)
                row["p99_ms"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)
            except Exception as exc:  # a provider that cannot run: a row saying why
                row["rejected"] = f"failed: {str(exc)[:200]}"
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return {"available": available, "cores": cores, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepare", action="store_true", help="build the models here (project venv)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per provider")
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare()
    if not MODELS.is_dir():
        print(f"{MODELS} is missing: run `python -m bench.gpu_providers --prepare` first and carry it")
        return 2
    _maybe_install_gpu_wheel()
    import onnxruntime as ort

    figures = measure(args.runs)
    gpu = [p for p in figures["available"] if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    note = "" if gpu else GPU_WHEEL_NOTE
    cpu: dict[tuple[str, str], float] = {}
    for r in figures["rows"]:
        if r["provider"] == "cpu" and r["threads"] == figures["cores"] and "p50_ms" in r:
            cpu[(r["model"], r["precision"])] = r["p50_ms"]
    print(f"{'model':<11}{'prec':<6}{'provider':<10}{'threads':>8}{'p50/p99 ms':>20}{'vs cpu':>8}  note")
    for r in figures["rows"]:
        base = cpu.get((r["model"], r["precision"]))
        ratio = f"{r['p50_ms'] / base:.3f}" if base and "p50_ms" in r else "-"
        timing = f"{r.get('p50_ms', 0):.2f}/{r.get('p99_ms', 0):.2f}"
        print(
            f"{r['model']:<11}{r['precision']:<6}{r['provider']:<10}{r['threads']:>8}{timing:>20}{ratio:>8}  "
            f"{r.get('rejected', r.get('ran_on', ''))[:80]}"
        )
    if note:
        print(f"note: {note}")
    summary = {
        "bench": "gpu_providers",
        "machine": f"{platform.machine()} {figures['cores']} cpus",
        "onnxruntime": ort.__version__,
        "gpu_providers": gpu,
        "note": note,
        **figures,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
