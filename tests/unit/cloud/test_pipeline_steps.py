"""Pipeline options are checked before anything slow runs; data joins datasets; steps name what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core.package import write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.pipeline import PipelineError, PipelineOptions, RunLayout, run_pipeline


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("datasets")
    folders = [root / "a", root / "b"]
    for seed, folder in enumerate(folders):
        write_dataset(folder, count=10, defect_ratio=0.4, seed=seed, height=64, width=32)
    return folders


def test_a_missing_key_or_registry_fails_before_any_training(
    datasets: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    base = ["pipeline", "run", "--dataset", str(datasets[0]), "--quick", "--out", str(run)]
    assert main([*base, "--registry", (tmp_path / "reg").as_uri()]) == 1
    assert "packaging needs a signing key" in capsys.readouterr().err
    key, _ = write_keypair(tmp_path / "keys")
    assert main([*base, "--key", str(key)]) == 1
    assert "the register step needs a registry" in capsys.readouterr().err
    assert main([*base, "--key", str(key), "--steps", "data,trian"]) == 1
    assert "unknown step(s) ['trian']" in capsys.readouterr().err
    assert main(["pipeline", "run", "--out", str(run), "--steps", "data"]) == 1
    assert "the data step needs --dataset" in capsys.readouterr().err
    assert not run.exists()  # nothing ran


def test_the_data_step_joins_several_datasets_and_fingerprints_the_union(
    datasets: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["pipeline", "run", "--dataset", str(datasets[0]), "--dataset", str(datasets[1])]
    assert main([*args, "--out", str(run), "--steps", "data"]) == 0
    assert "[1/1] data done in" in capsys.readouterr().out
    data = json.loads((run / "data" / "data.json").read_text())
    union = run / "data" / "union"
    assert data["root"] == str(union)
    first = sorted((datasets[0] / "train").iterdir())[0]
    assert (union / "train" / f"d0-{first.name}").resolve() == first.resolve()
    per_dataset = [data["counts"][str(d)]["train"]["images"] for d in datasets]
    assert data["total"]["train"]["images"] == sum(per_dataset)
    assert data["fingerprint"] == dataset_fingerprint(union)
    assert data["fingerprint"] not in {dataset_fingerprint(d) for d in datasets}

    assert main([*args, "--out", str(run), "--steps", "data"]) == 0  # idempotent: links already there
    assert json.loads((run / "data" / "data.json").read_text())["fingerprint"] == data["fingerprint"]


def test_a_step_run_alone_says_which_earlier_step_is_missing(datasets: list[Path], tmp_path: Path) -> None:
    options = PipelineOptions(run_dir=tmp_path / "run", tasks=["classification"], datasets=[datasets[0]])
    with pytest.raises(PipelineError, match="the data step has not run") as caught:
        run_pipeline(options, ["train"])
    assert "--steps data" in caught.value.hint
    run_pipeline(options, ["data"])
    with pytest.raises(PipelineError, match="the train step has not run"):
        run_pipeline(options, ["compile"])
    summary = json.loads(RunLayout(tmp_path / "run").summary_json.read_text())
    assert set(summary["steps"]) == {"data"}


def test_the_package_asks_devices_to_tile_big_frames_at_the_training_frame_size(
    datasets: list[Path], tmp_path: Path
) -> None:
    """Frames shrunk to the input in training: a bigger camera frame must be cut into frame-sized tiles."""
    from dataclasses import replace

    from edgeinspect.core.package import TilingHint
    from edgeinspect_cloud.pipeline.steps_release import tiling_hint

    from tests.helpers.manifests import manifest

    options = PipelineOptions(run_dir=tmp_path / "run", tasks=["classification"], datasets=[datasets[0]])
    layout = RunLayout(options.run_dir)
    run_pipeline(options, ["data"])
    assert json.loads(layout.data_json.read_text())["frame_size"] == [64, 32]
    shrunk = ModelSpec.from_manifest(manifest(height=32, width=16, batch=-1, output="score", image=0.5))
    assert tiling_hint(options, layout, shrunk) == TilingHint(mode="auto", tile_height=64, tile_width=32)
    assert tiling_hint(replace(options, tiling_hint=False), layout, shrunk) is None
    same = ModelSpec.from_manifest(manifest(height=64, width=32, batch=-1, output="score", image=0.5))
    assert tiling_hint(options, layout, same) is None  # trained at camera resolution: the default tile


def test_pipeline_run_rehearse_reaches_the_trainer_and_its_record(
    datasets: list[Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = ["pipeline", "run", "--dataset", str(datasets[0]), "--rehearse", str(datasets[1]), "--quick"]
    assert main([*args, "--task", "classification", "--steps", "data,train", "--out", str(run)]) == 0
    trained = json.loads((run / "train" / "classification" / "result.json").read_text())
    assert trained["config"]["rehearse"] == [str(datasets[1])]


def test_a_rehearsed_line_may_be_a_url_as_an_engine_passes_it(
    datasets: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["pipeline", "run", "--dataset", str(datasets[0]), "--quick", "--task", "classification"]
    args += ["--steps", "data,train", "--out", str(run)]
    assert main([*args, "--rehearse", f",{datasets[1].as_uri()}"]) == 0  # "" entries: the engine default
    trained = json.loads((run / "train" / "classification" / "result.json").read_text())
    (fetched,) = trained["config"]["rehearse"]
    assert Path(fetched).is_relative_to(run) and (Path(fetched) / "train").is_dir()
    rehearsed = sorted(p.name for p in (Path(fetched) / "train").iterdir())
    assert rehearsed == sorted(p.name for p in (datasets[1] / "train").iterdir())
    capsys.readouterr()

    assert main([*args, "--rehearse", str(tmp_path / "no-such-line")]) == 1  # before any step runs
    err = capsys.readouterr().err
    assert "no train/ folder there" in err and "s3:// URL" in err
