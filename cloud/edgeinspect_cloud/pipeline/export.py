"""``pipeline export``: hand the graph to an engine SDK that lives in its own tool environment.

kfp 2.17 needs protobuf < 7 while the main environment's gRPC code is generated for protobuf 7, so the
SDKs cannot share it (``pip install --dry-run`` says so). They live in ``.venv-pipelines`` (made on
first use, or by ``make pipelines-venv``, from ``engines/requirements.txt``); the engine scripts in
``engines/`` import only their SDK and read the graph as JSON (:func:`graph.graph_spec`) on stdin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from edgeinspect_cloud.pipeline.graph import graph_spec
from edgeinspect_cloud.pipeline.layout import TASKS, PipelineError, Task

Engine = Literal["kubeflow", "sagemaker"]
ENGINES: tuple[Engine, ...] = ("kubeflow", "sagemaker")
ENGINES_DIR = Path(__file__).with_name("engines")
REQUIREMENTS = ENGINES_DIR / "requirements.txt"
VENV_ENV = "EI_PIPELINES_VENV"
DEFAULT_IMAGE = "edgeinspect-cloud:latest"
DEFAULT_ROLE = "arn:aws:iam::123456789012:role/EdgeInspectPipeline"


def tool_venv() -> Path:
    """``$EI_PIPELINES_VENV``, else ``.venv-pipelines`` beside the repository's ``.venv``."""
    if os.environ.get(VENV_ENV):
        return Path(os.environ[VENV_ENV])
    return Path(__file__).resolve().parents[3] / ".venv-pipelines"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def venv_ready(folder: Path) -> bool:
    """Whether ``folder`` holds both SDKs (checked by import, so a half-made venv is not trusted)."""
    python = venv_python(folder)
    if not python.is_file():
        return False
    probe = [str(python), "-c", "import kfp, kfp.kubernetes, sagemaker.workflow"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def ensure_venv(folder: Path, *, out: object = sys.stderr) -> Path:
    """Make the tool environment if it is missing (a few minutes, once); return its python."""
    if venv_ready(folder):
        return venv_python(folder)
    print(f"creating the pipeline SDK environment {folder} (kfp, sagemaker; once) ...", file=out, flush=True)  # type: ignore[call-overload]
    venv.create(folder, with_pip=True, clear=folder.exists())
    pip = [str(venv_python(folder)), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    done = subprocess.run(pip, check=False)
    if done.returncode != 0 or not venv_ready(folder):
        raise PipelineError(
            f"could not install the pipeline SDKs into {folder}",
            hint=f"run it by hand to see why: {' '.join(pip)} (or make pipelines-venv)",
        )
    return venv_python(folder)


def export(
    engine: Engine,
    out: Path,
    *,
    image: str = DEFAULT_IMAGE,
    quick: bool = False,
    epochs: int | None = None,
    role_arn: str = DEFAULT_ROLE,
    venv_dir: Path | None = None,
    tasks: Sequence[Task] = TASKS,
) -> Path:
    """Compile the graph of ``tasks`` (default: the two-model layout) for ``engine`` into ``out`` with
    the tool environment's SDK."""
    if engine not in ENGINES:
        raise PipelineError(f"unknown engine {engine!r}", hint=f"engines are {', '.join(ENGINES)}")
    python = ensure_venv(venv_dir or tool_venv())
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = json.dumps(graph_spec(image, quick=quick, epochs=epochs, tasks=tasks))
    argv = [str(python), str(ENGINES_DIR / f"{engine}_export.py"), str(out.resolve())]
    if engine == "sagemaker":
        argv.append(role_arn)
    done = subprocess.run(argv, input=spec, text=True, capture_output=True, check=False, env=_offline_env())
    if done.returncode != 0 or not out.is_file():
        raise PipelineError(
            f"the {engine} SDK could not compile the pipeline: {done.stderr.strip()[-2000:]}",
            hint=f"check {ENGINES_DIR / (engine + '_export.py')} against the SDK in {python.parent.parent}",
        )
    return out


def _offline_env() -> dict[str, str]:
    """Building a definition needs no cloud: any AWS call the SDK might try goes nowhere, fast.

    The region and dummy credentials let boto3 build clients; the AWS endpoint and the HTTP(S) proxy
    point at a closed loopback port, so a call an SDK makes anyway (telemetry) fails at once and
    nothing leaves the machine.
    """
    env = dict(os.environ)
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="export-only",
        AWS_SECRET_ACCESS_KEY="export-only",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        SAGEMAKER_DISABLE_CONFIG_LOADING="1",
        KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT="true",
    )
    return env
