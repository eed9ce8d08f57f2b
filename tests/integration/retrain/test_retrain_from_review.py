"""Closing the loop: field captures of a shifted line, reviewed, retrained on, compared in the registry.

The line went darker and grew a new defect kind (blisters). Its frames are captured and put in a
``file://`` store by the real uploader; an operator labels them through the review app's API (the
ground truth of the generator stands in for the operator's eyes; the browser test drives the page
itself); the pipeline trains version 1 on the original data and version 2 on the original plus the
reviewed data (quick mode, classifier only, tiny images); ``registry compare`` then shows version 2
scoring higher on held-out frames of the shifted line.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from edgeinspect.core import images
from edgeinspect.core.messages import now_ns
from edgeinspect.core.package import write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.dataset import list_split, read_labels
from edgeinspect_cloud.data.synth import render_sample, write_dataset
from edgeinspect_cloud.monitor.baseline import load_baseline
from edgeinspect_cloud.registry import ModelRegistry

from tests.fixtures.redis_server import RedisServer
from tests.helpers.captures import capture_of, store_captures
from tests.helpers.review import bearer, review_process

pytestmark = pytest.mark.slow

HEIGHT, WIDTH = 128, 48  # the quick classifier's own input size: nothing is resized
SHIFT: dict[str, Any] = {"brightness_shift": -40.0, "defect_kinds": ("blister",)}
CAPTURED = 60
EPOCHS = "8"


def review_everything(url: str, truth: dict[str, np.ndarray]) -> None:
    """What the operator decides for each capture: its true label and mask, sent as the page would."""
    items = httpx.get(f"{url}/api/captures", headers=bearer("retrain-test"), timeout=30).json()["items"]
    assert len(items) == CAPTURED
    for item in items:
        mask = truth[item["frame_id"]]
        data_url = "data:image/png;base64," + base64.b64encode(images.encode_mask(mask)).decode()
        body = {"label": "defect" if mask.any() else "ok", "mask": data_url}
        response = httpx.post(
            f"{url}/api/captures/{item['key']}/review", json=body, headers=bearer("retrain-test"), timeout=30
        )
        assert response.status_code == 200, response.text


def test_the_version_trained_with_reviewed_captures_scores_higher_on_the_shifted_line(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    base, shifted = tmp_path / "base", tmp_path / "shifted-holdout"
    write_dataset(base, count=60, defect_ratio=0.35, seed=0, height=HEIGHT, width=WIDTH, test_fraction=0.25)
    write_dataset(shifted, count=60, defect_ratio=0.5, seed=9, height=HEIGHT, width=WIDTH, test_fraction=0.5,
                  **SHIFT)  # fmt: skip

    # the shifted line's frames, as the edge captured them (the current model calls them all good)
    truth: dict[str, np.ndarray] = {}
    captures = []
    start = now_ns()
    for index in range(CAPTURED):
        pixels, mask = render_sample(
            np.random.default_rng([5, index]), HEIGHT, WIDTH, index % 2 == 0, **SHIFT
        )
        frame_id = f"s{index:03d}"
        truth[frame_id] = mask > 0
        captures.append(capture_of(line_id, frame_id, pixels, ts_ns=start + index, verdict="ok", score=0.3))
    store_url = f"file://{tmp_path / 'captures'}"
    store_captures(redis_server.url, redis_client, store_url, tmp_path / "spool", captures)

    reviewed = tmp_path / "reviewed"
    with review_process(store_url, reviewed) as url:
        review_everything(url, truth)
    labels = read_labels(list_split(reviewed, "train"))
    assert labels.size == CAPTURED and int(labels.sum()) == CAPTURED // 2
    assert len((reviewed / "provenance.jsonl").read_text().splitlines()) == CAPTURED

    private_key, public_key = write_keypair(tmp_path / "keys")
    registry_url = f"file://{tmp_path / 'registry'}"
    common = ["--task", "classification", "--quick", "--epochs", EPOCHS, "--no-int8", "--no-progress",
              "--gate-min-ap", "0", "--gate-min-recall", "0",  # v1 is meant to be weak on the shifted line
              "--registry", registry_url, "--key", str(private_key), "--by", "ci"]  # fmt: skip
    assert main(["pipeline", "run", "--dataset", str(base), "--out", str(tmp_path / "v1"), *common]) == 0
    union = ["--dataset", str(base), "--dataset", str(reviewed)]
    assert main(["pipeline", "run", *union, "--out", str(tmp_path / "v2"), *common]) == 0
    capsys.readouterr()

    datasets = ["--dataset", str(base), "--dataset", str(shifted)]
    keys = ["--registry", registry_url, "--trusted-keys", str(public_key)]
    compare = ["registry", "compare", "defect-cls", "1", "2", *datasets, *keys]
    assert main([*compare, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    on_base, on_shifted = body["datasets"]
    assert (on_base["split"], on_shifted["split"]) == ("test", "test")
    before, after = on_shifted["metrics"]["1"], on_shifted["metrics"]["2"]
    print(json.dumps({"shifted": {"v1": before, "v2": after}, "base": on_base["metrics"]}, sort_keys=True))
    assert after["image_ap"] > before["image_ap"] + 0.15
    assert after["image_auroc"] > before["image_auroc"]

    assert main(compare) == 0
    table = capsys.readouterr().out
    assert "defect-cls v1" in table and "defect-cls v2" in table and "image_ap" in table

    # version 2 carries its drift baseline in its manifest, in the telemetry schema
    registry = ModelRegistry.open(registry_url)
    package = tmp_path / "v2.tar.gz"
    registration = registry.get("defect-cls", 2).registration
    registry.store.download(registration.package.key, package, expected_sha256=registration.package.sha256)
    baseline = load_baseline(package)
    assert baseline.kind == "baseline" and baseline.frames > 0
    assert {"brightness", "contrast", "sharpness", "cls_score"} <= set(baseline.features)
    assert "cls_defect_rate" in baseline.rates
