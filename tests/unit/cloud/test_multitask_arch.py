"""Multi-task architecture recipes: every preset builds and exports both outputs; bad recipes say why.

Tiny widths and a 48x32 input keep each export well under a second; the figures of the recipes are
``bench.multitask_sweep``'s business, not these tests'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.package import InputSpec, Normalisation, Resize
from edgeinspect_cloud.commands.pipeline import options_from_args, register
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.pipeline.steps_model import train_config
from edgeinspect_cloud.training.config import default_config, with_arch
from edgeinspect_cloud.training.export import export_onnx
from edgeinspect_cloud.training.multitask_arch import DEFAULT_PRESET, PRESETS, parse_arch
from edgeinspect_cloud.training.multitask_net import ContractMultiTask, MultiTaskNet

HEIGHT, WIDTH = 48, 40  # neither a multiple of 32: the in-graph padding and crop are exercised


def _exported(model: ContractMultiTask, folder: Path) -> ort.InferenceSession:
    """``model`` exported at ``HEIGHT x WIDTH`` with both outputs, opened in ONNX Runtime."""
    spec = InputSpec(
        name="image", shape=[-1, 3, HEIGHT, WIDTH], dtype="uint8", colour="RGB",
        resize=Resize(height=HEIGHT, width=WIDTH, mode="stretch"),
        normalisation=Normalisation(mean=[0.5] * 3, std=[0.25] * 3), normalisation_in_graph=True,
    )  # fmt: skip
    path = export_onnx(model, folder / "m.onnx", spec, ["defect_probability", "mask_probability"])
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_exports_both_outputs_at_the_input_size(name: str, tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    arch = replace(parse_arch(name), width=4, input=None)
    model = ContractMultiTask(MultiTaskNet(arch), [0.5] * 3, [0.25] * 3).eval()
    session = _exported(model, tmp_path)
    assert [o.name for o in session.get_outputs()] == ["defect_probability", "mask_probability"]
    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, HEIGHT, WIDTH), dtype=np.uint8)
    score, mask = session.run(None, {"image": pixels})
    assert score.shape == (2, 1) and mask.shape == (2, 1, HEIGHT, WIDTH)
    assert ((mask >= 0) & (mask <= 1)).all()


def test_the_baseline_keeps_the_first_shipped_parameter_names() -> None:
    """Checkpoints of the network as first shipped still load into the baseline recipe."""
    names = set(MultiTaskNet(4).state_dict())
    assert {"encoder.3.1.0.weight", "decode8.0.weight", "decode4.0.weight", "decode2.0.weight"} <= names
    assert {"mask_head.weight", "cls_features.1.0.weight", "cls_head.weight"} <= names


def test_a_recipe_text_round_trips_and_overrides_a_preset() -> None:
    recipe = parse_arch("sep16,stages=4,skips=no,input=320x112,mask_weight=2.5")
    assert (recipe.width, recipe.block, recipe.stages, recipe.skips) == (16, "separable", 4, False)
    assert recipe.input == (320, 112) and recipe.mask_weight == 2.5
    assert parse_arch(recipe.text()) == recipe
    assert parse_arch(None) == PRESETS[DEFAULT_PRESET]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("huge", "unknown multi-task architecture preset 'huge'"),
        ("baseline,depth=3", "unknown multi-task architecture field 'depth'"),
        ("baseline,stem=3", "stem stride must be 2 or 4"),
        ("baseline,stages=9", "stages must be 1..5"),
        ("baseline,block=dense", "block must be plain or separable"),
        ("baseline,width=x", "width='x' is not valid"),
        ("baseline,skips=maybe", "skips='maybe' is not valid"),
        ("baseline,stages=5,input=40x40", "smaller than the network's stride 64"),
        ("baseline,width", "has no value"),
        ("baseline,mask_weight=0", "mask_weight must be > 0"),
        ("baseline,input_norm=local", "input_norm must be fixed or image"),
        ("baseline,views=vh", "views must be none, h or hv"),
    ],
)
def test_a_bad_recipe_says_what_was_wrong_and_what_to_do(text: str, says: str) -> None:
    with pytest.raises(TrainingError) as raised:
        parse_arch(text)
    assert says in raised.value.message
    assert raised.value.hint


def test_per_image_input_norm_makes_the_network_blind_to_gain_and_offset() -> None:
    """Colour, exposure and camera gain differ from line to line: ``input_norm=image`` cancels them."""
    import torch

    torch.manual_seed(0)
    net = MultiTaskNet(parse_arch("baseline,width=4,input_norm=image")).eval()
    fixed = MultiTaskNet(parse_arch("baseline,width=4")).eval()
    frame = torch.randn(1, 3, HEIGHT, WIDTH) * 2.0  # normalised units: well above the spread floor
    recoloured = frame * torch.tensor([1.4, 0.9, 0.5]).view(1, 3, 1, 1) + 0.3
    with torch.no_grad():
        same, moved = net(frame), net(recoloured)
        before, after = fixed(frame), fixed(recoloured)
    for a, b in zip(same, moved, strict=True):
        assert torch.allclose(a, b, atol=2e-3)
    assert not torch.allclose(before[1], after[1], atol=1e-3)
    assert "input_norm=image" in parse_arch("seg-first,input_norm=image").text().split(",")


def test_with_arch_applies_the_recipe_width_and_input() -> None:
    demo = default_config("multitask", profile="demo")
    config = with_arch(demo, "baseline,width=12,input=320x112")
    assert (config.width, config.height, config.img_width) == (12, 320, 112)
    assert config.crop_height == demo.crop_height and config.arch is not None
    assert "width=12" in config.arch and "input=320x112" in config.arch
    whole = with_arch(demo, "baseline,input=64x48")
    assert whole.crop_height is None  # a crop taller than the input is dropped


def test_an_arch_on_another_task_or_an_unknown_device_is_refused() -> None:
    with pytest.raises(TrainingError, match="for the multitask task"):
        default_config("classification").with_overrides(arch="baseline")
    with pytest.raises(TrainingError, match="unknown training device"):
        default_config("multitask", quick=True).with_overrides(device="tpu")
    with pytest.raises(TrainingError, match="multitask task only"):
        default_config("segmentation").with_overrides(device="cuda")


def _parse(add_command: Callable[[Any], None], argv: list[str]) -> object:
    """``argv`` parsed by a parser holding only the command ``add_command`` registers."""
    import argparse

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _cli(argv: list[str]) -> object:
    return _parse(register, ["pipeline", "run", *argv])


def test_pipeline_run_passes_arch_and_device_to_the_multitask_trainer(tmp_path: Path) -> None:
    args = _cli(["--task", "multitask", "--out", str(tmp_path), "--steps", "train", "--quick",
                 "--arch", "sep16,seg_warmup=1"])  # fmt: skip
    options = options_from_args(args, ["train"])  # type: ignore[arg-type]
    config = train_config(options, "multitask")
    assert config.width == 16 and config.arch is not None and "block=separable" in config.arch
    assert "seg_warmup=1" in config.arch and config.device == "cpu"


def test_pipeline_run_refuses_a_bad_arch_before_anything_runs(tmp_path: Path) -> None:
    args = _cli(["--task", "multitask", "--out", str(tmp_path), "--steps", "train", "--arch", "nope"])
    with pytest.raises(EdgeInspectError, match="unknown multi-task architecture preset"):
        options_from_args(args, ["train"])  # type: ignore[arg-type]
    args = _cli(["--task", "classification", "--out", str(tmp_path), "--steps", "train", "--arch", "sep16"])
    with pytest.raises(EdgeInspectError, match="for the multitask model"):
        options_from_args(args, ["train"])  # type: ignore[arg-type]


def test_the_demo_and_default_profiles_train_the_default_preset() -> None:
    for profile in ("demo", "default"):
        config = default_config("multitask", profile=profile)  # type: ignore[arg-type]
        assert config.arch is not None
        assert parse_arch(config.arch) == replace(PRESETS[DEFAULT_PRESET], width=config.width)


def test_the_image_weight_switches_the_image_loss_off() -> None:
    """What a recipe's ``seg_warmup`` does in its first epochs: only the masks teach the network."""
    import torch
    from edgeinspect_cloud.training.multitask import multitask_loss

    torch.manual_seed(0)
    model = ContractMultiTask(MultiTaskNet(4), [0.5] * 3, [0.25] * 3).eval()
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    masks = torch.zeros(2, 32, 32)
    masks[0, 10:14, 10:20] = 1.0
    wrong = torch.tensor([[0.0], [1.0]])  # image labels the masks contradict
    right = torch.tensor([[1.0], [0.0]])
    with torch.no_grad():
        off = [multitask_loss(model, pixels, y, masks, image_weight=0.0).item() for y in (wrong, right)]
        on = [multitask_loss(model, pixels, y, masks).item() for y in (wrong, right)]
    assert off[0] == pytest.approx(off[1])
    assert on[0] != pytest.approx(on[1])


def _views_model(views: str) -> ContractMultiTask:
    import torch

    torch.manual_seed(0)
    network = MultiTaskNet(parse_arch(f"baseline,width=4,views={views}"))
    return ContractMultiTask(network, [0.5] * 3, [0.25] * 3)


def test_mirrored_views_answer_the_mean_of_the_mirrored_frames() -> None:
    """Each view's mask is flipped back before the mean, so the mask stays where the flaw is."""
    import torch

    model = _views_model("hv").eval()
    pixels = torch.randint(0, 256, (3, 3, HEIGHT, WIDTH), dtype=torch.uint8)
    flips: list[tuple[int, ...]] = [(), (-1,), (-2,), (-2, -1)]  # written out, not taken from the module
    with torch.no_grad():
        score, mask = model(pixels)
        answers = [model.single_view(pixels.flip(axes)) for axes in flips]
    assert torch.allclose(score, torch.stack([a[0] for a in answers]).mean(0), atol=1e-6)
    mean_mask = torch.stack([a[1].flip(axes) for axes, a in zip(flips, answers, strict=True)]).mean(0)
    assert torch.allclose(mask, mean_mask, atol=1e-6)
    assert not torch.allclose(score, answers[0][0], atol=1e-4)  # the views do change the answer


@pytest.mark.parametrize("views", ["h", "hv"])
def test_mirrored_views_export_with_a_dynamic_batch(views: str, tmp_path: Path) -> None:
    import torch

    model = _views_model(views).eval()
    session = _exported(model, tmp_path)
    for batch in (1, 3):  # the exporter traced a batch of 1: a frozen batch would fail at 3
        pixels = np.random.default_rng(batch).integers(0, 256, (batch, 3, HEIGHT, WIDTH), dtype=np.uint8)
        score, mask = session.run(None, {"image": pixels})
        with torch.no_grad():
            expected = model(torch.from_numpy(pixels))
        assert score.shape == (batch, 1) and mask.shape == (batch, 1, HEIGHT, WIDTH)
        assert np.abs(score - expected[0].numpy()).max() < 1e-5
        assert np.abs(mask - expected[1].numpy()).max() < 1e-5


def test_views_are_inference_only_and_recorded_in_the_recipe() -> None:
    """The loss sees one view, so a recipe with views trains the weights it would without them;
    a recipe recorded before views existed reads back without them (as it was trained)."""
    import torch
    from edgeinspect_cloud.training.multitask import multitask_loss

    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    masks = torch.zeros(2, 32, 32)
    labels = torch.tensor([[1.0], [0.0]])
    with torch.no_grad():
        losses = [multitask_loss(_views_model(v), pixels, labels, masks).item() for v in ("none", "hv")]
    assert losses[0] == losses[1]
    default = parse_arch(DEFAULT_PRESET)
    assert default.views == "hv" and "views=hv" in default.text().split(",")
    assert parse_arch("width=12,mask_weight=3.0,seg_warmup=2,input_norm=image").views == "none"


def _train_args(argv: list[str]) -> object:
    from edgeinspect_cloud.commands.train import register as register_train

    return _parse(register_train, ["train", "--dataset", "DATA", *argv])


def test_train_crop_height_sets_the_crop_and_zero_trains_whole_frames() -> None:
    from edgeinspect_cloud.commands.train import config_from_args

    default = config_from_args(_train_args([]), "multitask")
    assert default.crop_height == 96  # the default profile's
    assert config_from_args(_train_args(["--crop-height", "160"]), "multitask").crop_height == 160
    assert config_from_args(_train_args(["--crop-height", "0"]), "multitask").crop_height is None
    assert config_from_args(_train_args(["--crop-height", "160"]), "segmentation").crop_height == 160
    assert config_from_args(_train_args(["--crop-height", "160"]), "classification").crop_height is None
    with pytest.raises(TrainingError, match="multiple of 16"):
        config_from_args(_train_args(["--crop-height", "100"]), "multitask")


def test_pipeline_run_passes_the_crop_to_the_models_that_crop(tmp_path: Path) -> None:
    base = ["--out", str(tmp_path), "--steps", "train"]
    options = options_from_args(_cli(["--task", "both", *base, "--crop-height", "160"]), ["train"])  # type: ignore[arg-type]
    assert train_config(options, "segmentation").crop_height == 160
    assert train_config(options, "classification").crop_height is None  # whole frames, always
    whole = options_from_args(_cli(["--task", "multitask", *base, "--crop-height", "0"]), ["train"])  # type: ignore[arg-type]
    assert train_config(whole, "multitask").crop_height is None
    profile = options_from_args(_cli(["--task", "multitask", *base]), ["train"])  # type: ignore[arg-type]
    assert train_config(profile, "multitask").crop_height == 96


def test_pipeline_run_refuses_a_crop_it_would_ignore_or_fail_on_before_anything_runs(tmp_path: Path) -> None:
    base = ["--out", str(tmp_path), "--steps", "train"]
    with pytest.raises(EdgeInspectError, match="for the segmentation and multitask models"):
        options_from_args(_cli(["--task", "classification", *base, "--crop-height", "160"]), ["train"])  # type: ignore[arg-type]
    with pytest.raises(EdgeInspectError, match="multiple of 16"):
        options_from_args(_cli(["--task", "multitask", *base, "--crop-height", "100"]), ["train"])  # type: ignore[arg-type]
