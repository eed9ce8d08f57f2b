"""Compile the pipeline graph to Kubeflow Pipelines IR YAML (kfp v2), in the export tool environment.

Run by ``edgeinspect pipeline export --engine kubeflow`` as ``.venv-pipelines/bin/python kubeflow_export.py
OUT`` with the graph JSON (``edgeinspect_cloud.pipeline.graph.graph_spec``) on standard input; it
imports only the standard library and kfp, never edgeinspect (whose environment kfp cannot share).

Every node becomes a container component running the cloud image with the node's ``edgeinspect``
arguments; the gated nodes sit under one ``dsl.If`` on the gate's ``passed`` output; training nodes
request ``nvidia.com/gpu`` from a run-time parameter; S3 credentials and the signing key come from
Kubernetes secrets (``use_secret_as_env``, ``use_secret_as_volume``), never from parameters.

``--local`` builds the same graph from Python components that run the same command line in a
subprocess, for ``kfp.local``'s SubprocessRunner (which runs no containers); ``--run`` then runs it.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

S3_SECRET = "edgeinspect-s3"
S3_SECRET_KEYS = {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY"}
KEY_SECRET = "edgeinspect-signing-key"
TYPES = {"str": "String", "int": "Integer", "float": "Float"}
PY_TYPES: dict[str, type] = {"str": str, "int": int, "float": float}


def component_yaml(step: dict[str, Any], image: str, parameters: dict[str, Any]) -> str:
    """A container component for one node, in the component YAML kfp loads (inputs, outputs, args)."""
    inputs = sorted({arg["param"] for arg in step["args"] if isinstance(arg, dict) and "param" in arg})
    outputs = sorted({arg["output"] for arg in step["args"] if isinstance(arg, dict) and "output" in arg})
    spec_types = {name: TYPES[parameters[name]["type"]] for name in inputs}
    args = [
        {"inputValue": arg["param"]} if "param" in (arg if isinstance(arg, dict) else {}) else
        {"outputPath": arg["output"]} if isinstance(arg, dict) else arg
        for arg in step["args"]
    ]  # fmt: skip
    component = {
        "name": step["name"],
        "inputs": [{"name": name, "type": spec_types[name]} for name in inputs],
        "outputs": [{"name": name, "type": "String"} for name in outputs],
        "implementation": {"container": {"image": image, "command": step["command"], "args": args}},
    }
    return json.dumps(component)  # JSON is YAML


def build_pipeline(
    spec: dict[str, Any], *, local: bool = False, cli: list[str] | None = None, key: str | None = None
) -> Any:
    """The kfp pipeline function of the graph (container components, or subprocess ones when ``local``)."""
    from kfp import dsl

    parameters = spec["parameters"]
    names = list(parameters)
    factories = {
        step["name"]: _local_component(_with_key(step, spec, key), cli or ["edgeinspect"], parameters)
        if local
        else _container(step, spec["image"], parameters)
        for step in spec["steps"]
    }

    def body(*values: Any) -> None:
        bound = dict(zip(names, values, strict=True))
        tasks: dict[str, Any] = {}
        gate_task = None
        gated = [step for step in spec["steps"] if step["gated"]]
        for step in spec["steps"]:
            if step["gated"]:
                continue
            tasks[step["name"]] = _task(factories[step["name"]], step, bound, tasks, local)
            if step["step"] == "gate":
                gate_task = tasks[step["name"]]
        if gate_task is None:
            raise SystemExit("the graph has no gate step")
        # kfp.local resolves a condition on a task output only for a return value ("Output")
        passed = gate_task.outputs["Output" if local else "passed"]
        with dsl.If(passed == "true", name="quality-gate-passed"):
            for step in gated:
                tasks[step["name"]] = _task(factories[step["name"]], step, bound, tasks, local)

    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=parameters[name]["default"],
                annotation=PY_TYPES[parameters[name]["type"]],
            )
            for name in names
        ]
    )
    body.__annotations__ = {name: PY_TYPES[parameters[name]["type"]] for name in names}
    body.__name__ = spec["name"].replace("-", "_")
    return dsl.pipeline(name=spec["name"], description="edgeinspect: train, gate, compile, sign, register")(
        body
    )


def _task(
    factory: Callable[..., Any],
    step: dict[str, Any],
    bound: dict[str, Any],
    tasks: dict[str, Any],
    local: bool,
) -> Any:
    from kfp import kubernetes

    inputs = sorted({arg["param"] for arg in step["args"] if isinstance(arg, dict) and "param" in arg})
    task = factory(**{name: bound[name] for name in inputs})
    task.set_display_name(step["name"])
    task.set_caching_options(False)  # steps read and write the run in object storage: never skip one
    for name in step["after"]:
        task.after(tasks[name])
    if local:
        return task
    if step["gpu_param"]:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(bound[step["gpu_param"]])
    if "s3" in step["secrets"]:
        kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env=S3_SECRET_KEYS)
    if "signing_key" in step["secrets"]:
        kubernetes.use_secret_as_volume(task, secret_name=KEY_SECRET, mount_path=_key_dir(step))
    return task


def _key_dir(step: dict[str, Any]) -> str:
    key = next(arg for arg in step["args"] if isinstance(arg, str) and arg.endswith(".key"))
    return key.rsplit("/", 1)[0]


def _container(step: dict[str, Any], image: str, parameters: dict[str, Any]) -> Callable[..., Any]:
    from kfp import components

    return components.load_component_from_text(component_yaml(step, image, parameters))  # type: ignore[no-any-return]


def _with_key(step: dict[str, Any], spec: dict[str, Any], key: str | None) -> dict[str, Any]:
    """The node with the mounted key's path replaced by a local file (kfp.local mounts no secrets)."""
    mounted = f"{spec['key_dir']}/{spec['key_file']}"
    args = [key if key and arg == mounted else arg for arg in step["args"]]
    return {**step, "args": args}


def _local_component(step: dict[str, Any], cli: list[str], parameters: dict[str, Any]) -> Callable[..., Any]:
    """A Python component that runs the node's command line in a subprocess (kfp.local, no containers).

    Its source is generated so that kfp sees a plain function with the node's inputs and outputs; the
    command line is the container's, with ``edgeinspect`` replaced by ``cli``.
    """
    from kfp import dsl

    inputs = sorted({arg["param"] for arg in step["args"] if isinstance(arg, dict) and "param" in arg})
    outputs = sorted({arg["output"] for arg in step["args"] if isinstance(arg, dict) and "output" in arg})
    files = [name for name in outputs if name != "passed"]  # the verdict is the return value locally
    signature = ", ".join(
        [f"{name}: {parameters[name]['type']}" for name in inputs]
        + [f"{name}: dsl.OutputPath(str)" for name in files]
    )
    parts = []
    for arg in step["args"]:
        if isinstance(arg, dict):
            parts.append(f"str({arg.get('param') or arg['output']})")
        else:
            parts.append(repr(arg))
    verdict = "passed" in outputs
    source = (
        f"def {step['name'].replace('-', '_')}({signature}){' -> str' if verdict else ''}:\n"
        "    import os, subprocess, tempfile\n"
        + ("    passed = os.path.join(tempfile.mkdtemp(), 'passed')\n" if verdict else "")
        + f"    subprocess.run({cli!r} + [{', '.join(parts)}], check=True)\n"
        + ("    return open(passed).read().strip()\n" if verdict else "")
    )
    name = step["name"].replace("-", "_")
    folder = Path(tempfile.mkdtemp(prefix="ei-kfp-components-"))
    path = folder / f"{name}.py"  # kfp reads a component's source back: it must live in a file
    path.write_text("from kfp import dsl\n\n\n" + source)
    loader = importlib.util.spec_from_file_location(name, path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return dsl.component(getattr(module, name))  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """``OUT`` compiles to OUT; ``--run CLI... -- name=value ...`` runs the graph with kfp.local."""
    spec = json.load(sys.stdin)
    if argv[0] == "--run":
        return run_local(spec, argv[1:])
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(spec), package_path=argv[0])
    return 0


def run_local(spec: dict[str, Any], cli: list[str]) -> int:
    """Run the graph with kfp.local's SubprocessRunner; arguments are ``CLI... -- name=value ...``."""
    from kfp import local

    split = cli.index("--")
    command, pairs = cli[:split], cli[split + 1 :]
    arguments = dict(pair.split("=", 1) for pair in pairs)
    root = arguments.pop("pipeline_root", "/tmp/kfp-local")
    key = arguments.pop("key", None)
    typed = {name: PY_TYPES[spec["parameters"][name]["type"]](value) for name, value in arguments.items()}
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=root,
    )  # type: ignore[arg-type]
    pipeline = build_pipeline(spec, local=True, cli=command, key=key)
    pipeline(**typed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
