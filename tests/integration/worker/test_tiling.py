"""Large frames through the real worker and agent: tiles find what resizing to the input loses.

The test models judge brightness (``tests.helpers.models``): the segmenter per pixel, the classifier
on the mean of its input. On a dark 640x2000 frame, a 2-pixel bright crack and a 256-pixel bright
blob vanish when the frame is resized to the 128x128 input (the area filter averages them into the
dark surface), and are found when the frame goes as 128x128 tiles at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from edgeinspect.core import images
from edgeinspect.core.messages import Result
from edgeinspect_inference.worker.service import WorkerService

from tests.integration.worker.conftest import BRIGHT, DARK, LineKit

ByFrame = Callable[[list[Result]], dict[str, Result]]
MODEL = 128
HEIGHT, WIDTH = 640, 2000
CRACK = (300, 302, 500, 1500)  # rows 300..302, cols 500..1500: 2 pixels thick, 1000 long
BLOB = (200, 456, 1600, 1856)  # a 256x256 bright area


def large(kind: str) -> np.ndarray:
    """A dark 640x2000 frame, with a thin crack, a blob, or nothing."""
    pixels = np.full((HEIGHT, WIDTH, 3), DARK, dtype=np.uint8)
    if kind in ("crack", "blob"):
        y0, y1, x0, x1 = CRACK if kind == "crack" else BLOB
        pixels[y0:y1, x0:x1] = BRIGHT
    return pixels


def deploy(line: LineKit, *names: str) -> None:
    """Load the 128x128 test models (``cls``, ``seg`` and/or ``mt``) and point their aliases."""
    client = line.agent_client()
    tasks = {"cls": "classification", "seg": "segmentation", "mt": "multitask"}
    for name in names:
        package = line.agent.package(name, "1", tasks[name], height=MODEL, width=MODEL)  # type: ignore[arg-type]
        client.load_version(str(package))
        client.set_alias(f"defect-{name}", name, "1")


def calls(service: WorkerService, alias: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "ei_worker_agent_round_trip_seconds_count", {"alias": alias}
    )
    return value or 0.0


def labels(result: Result) -> list[tuple[str, str]]:
    return [(p.task, p.label) for p in result.predictions]


def test_tiles_find_a_2px_crack_and_a_small_blob_that_resizing_loses(
    line: LineKit, by_frame: ByFrame
) -> None:
    deploy(line, "cls", "seg")
    with line.worker(tiling="off"):
        for kind in ("crack", "blob"):
            line.send(f"resized-{kind}", large(kind))
        resized = by_frame(line.wait_results(2))
    assert labels(resized["resized-crack"]) == [("classification", "ok"), ("segmentation", "ok")]
    assert labels(resized["resized-blob"])[0] == ("classification", "ok")  # 5% of the frame's mean
    assert resized["resized-crack"].predictions[1].score < 0.5  # softened below the pixel threshold

    with line.worker(tiling_batch=16) as service:  # auto: 2000 px is over 4 tiles of 128
        for kind in ("crack", "blob", "good"):
            line.send(f"tiled-{kind}", large(kind))
        tiled = by_frame(line.wait_results(5))
        assert calls(service, "defect-seg") == 3  # one judged call per frame, however many tiles
    crack, blob, good = tiled["tiled-crack"], tiled["tiled-blob"], tiled["tiled-good"]
    assert (crack.verdict, labels(crack)) == (
        "defect",
        [("classification", "ok"), ("segmentation", "defect")],
    )
    seg = crack.predictions[1]
    y0, y1, x0, x1 = CRACK
    assert seg.defect_area_px == (y1 - y0) * (x1 - x0)  # full-frame pixels, no seam lost or doubled
    assert seg.bbox == (x0, y0, x1, y1)
    assert seg.score > 0.9
    assert crack.mask is not None
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(images.decode_mask(crack.mask), expected)
    assert (blob.verdict, labels(blob)[0]) == ("defect", ("classification", "defect"))  # max over tiles
    assert good.verdict == "ok" and good.error == "" and good.mask is None


def test_a_multitask_model_is_tiled_small_frames_go_whole_and_huge_ones_are_refused(
    line: LineKit, by_frame: ByFrame
) -> None:
    deploy(line, "mt")
    small = np.full((100, 90, 3), DARK, dtype=np.uint8)
    small[40:42, 10:80] = BRIGHT
    with line.worker(tiling="on", tiling_max_pixels=2_000_000, tiling_blend="mean") as service:
        line.send("crack", large("crack"))
        line.send("small", small)
        line.send("huge", np.full((1500, 1500, 3), DARK, dtype=np.uint8))
        results = by_frame(line.wait_results(3))
        assert calls(service, "defect-mt") == 2  # the huge frame never reached the agent
    crack = results["crack"]
    assert labels(crack) == [("classification", "ok"), ("segmentation", "defect")]
    assert crack.predictions[1].bbox == (CRACK[2], CRACK[0], CRACK[3], CRACK[1])
    assert labels(results["small"])[1] == ("segmentation", "defect")  # resized up as one input
    huge = results["huge"]
    assert huge.verdict == "error"
    assert "over the tiling bound of 2000000 pixels" in huge.error
    assert "EI_TILING_MAX_PIXELS" in huge.error  # and what to do about it
