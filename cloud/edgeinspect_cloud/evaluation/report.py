"""The report folder of an evaluation: ``metrics.json``, PNG plots, ``report.html`` and ``report.md``.

One folder per run, readable without any tool: the HTML and Markdown pages show the metrics table,
the precision-recall and ROC curves, the confusion matrix at the operating threshold and a grid of
example images with true and predicted masks. Plots use matplotlib's Agg backend (no display needed),
selected inside :func:`write_report`, never at import time.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.evaluation import metrics as m
from edgeinspect_cloud.evaluation.evaluate import Evaluation, Example, json_ready

PLOTS = {
    "pr_curve": "pr_curve.png",
    "roc_curve": "roc_curve.png",
    "confusion_matrix": "confusion_matrix.png",
    "examples": "examples.png",
}


def write_report(evaluation: Evaluation, out_dir: str | Path, *, title: str, context: dict[str, Any]) -> Path:
    """Write the report folder and return it; ``context`` (model, dataset, ...) is shown and saved too."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "title": title,
        "task": evaluation.task,
        "context": context,
        "metrics": json_ready(evaluation.metrics),
        "confusion": {"threshold": evaluation.confusion_threshold, **evaluation.confusion.as_dict()},
        "per_image": [
            {"id": i, "defective": bool(label), "score": round(float(score), 6)}
            for i, label, score in zip(evaluation.ids, evaluation.labels, evaluation.scores, strict=True)
        ],
    }
    (folder / "metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    _curve_plot(evaluation, folder / PLOTS["pr_curve"], roc=False)
    _curve_plot(evaluation, folder / PLOTS["roc_curve"], roc=True)
    _confusion_plot(evaluation, folder / PLOTS["confusion_matrix"])
    _examples_plot(evaluation.examples, evaluation.pixel_threshold, folder / PLOTS["examples"])
    rows = _rows(evaluation, context)
    (folder / "report.md").write_text(_markdown(title, rows))
    (folder / "report.html").write_text(_html(title, rows))
    return folder


def _curve_plot(evaluation: Evaluation, path: Path, *, roc: bool) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.5, 4.0), dpi=100)
    if evaluation.labels.any() and not evaluation.labels.all():
        curve = (m.roc_curve if roc else m.pr_curve)(evaluation.labels, evaluation.scores)
        value = evaluation.metrics["image_auroc" if roc else "image_ap"]
        axes.step(curve.x, curve.y, where="post", label=f"{'AUROC' if roc else 'AP'} = {value:.4f}")
        axes.legend(loc="lower right" if roc else "lower left")
    else:
        axes.text(0.5, 0.5, "needs good and defective images", ha="center")
    if roc:
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set_xlabel("false positive rate" if roc else "recall")
    axes.set_ylabel("true positive rate" if roc else "precision")
    axes.set_title("ROC curve (image level)" if roc else "Precision-recall (image level)")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _confusion_plot(evaluation: Evaluation, path: Path) -> None:
    import matplotlib.pyplot as plt

    table = evaluation.confusion
    counts = np.array([[table.tn, table.fp], [table.fn, table.tp]])
    figure, axes = plt.subplots(figsize=(4.0, 3.6), dpi=100)
    axes.imshow(counts, cmap="Blues")
    for (row, col), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        axes.text(col, row, str(value), ha="center", va="center", color=colour, fontsize=14)
    axes.set_xticks([0, 1], ["ok", "defect"])
    axes.set_yticks([0, 1], ["good", "defective"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"threshold {evaluation.confusion_threshold:.4f}")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _overlay(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], colour: tuple[int, int, int]) -> Any:
    """The image with ``mask`` tinted in ``colour`` (half transparent)."""
    out = image.astype(np.float32)
    out[mask] = 0.5 * out[mask] + 0.5 * np.array(colour, np.float32)
    return out.astype(np.uint8)


def _examples_plot(examples: list[Example], pixel_threshold: float | None, path: Path) -> None:
    import matplotlib.pyplot as plt

    columns = max(1, len(examples))
    rows = 3 if any(e.probabilities is not None for e in examples) else 1
    figure, grid = plt.subplots(rows, columns, figsize=(1.6 * columns, 3.6 * rows), dpi=100, squeeze=False)
    for col, example in enumerate(examples):
        kind = "defective" if example.truth.any() else "good"
        grid[0][col].imshow(example.image)
        grid[0][col].set_title(
            f"{Path(example.sample_id).stem}\n{kind}\nscore {example.score:.3f}", fontsize=7
        )
        if rows == 3:
            grid[1][col].imshow(_overlay(example.image, example.truth, (0, 255, 0)))
            grid[1][col].set_title("true mask", fontsize=7)
            predicted = np.zeros_like(example.truth)
            if example.probabilities is not None:
                predicted = example.probabilities >= (pixel_threshold or 0.5)
            grid[2][col].imshow(_overlay(example.image, predicted, (255, 0, 0)))
            grid[2][col].set_title("predicted mask", fontsize=7)
    for axes in grid.ravel():
        axes.axis("off")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _rows(evaluation: Evaluation, context: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(key, _fmt(value)) for key, value in evaluation.metrics.items()]
    table = evaluation.confusion
    rows.append(("confusion (tp/fp/tn/fn)", f"{table.tp}/{table.fp}/{table.tn}/{table.fn}"))
    rows.extend((f"context: {key}", _fmt(value)) for key, value in context.items())
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if np.isfinite(value) else "n/a"
    return str(value)


def _markdown(title: str, rows: list[tuple[str, str]]) -> str:
    lines = [f"# {title}", "", "| metric | value |", "| --- | --- |"]
    lines.extend(f"| {key} | {value} |" for key, value in rows)
    lines.append("")
    lines.extend(f"![{name}]({file})" for name, file in PLOTS.items())
    return "\n".join(lines) + "\n"


def _html(title: str, rows: list[tuple[str, str]]) -> str:
    cells = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    images = "\n".join(
        f'<figure><img src="{file}" alt="{name}"><figcaption>{name}</figcaption></figure>'
        for name, file in PLOTS.items()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:4px 10px}figure{display:inline-block;margin:1em}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{cells}</table>{images}</body></html>\n"
    )
