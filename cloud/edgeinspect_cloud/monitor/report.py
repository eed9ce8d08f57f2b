"""The drift report folder: ``metrics.json``, ``report.md``, ``report.html`` and PNG plots per group.

Per group (device on a line, or a line's captured frames):

- ``{group}-scores.png``: each model's score histogram, field against baseline, and beside it the
  field's histogram window by window over time (a heatmap: time left to right, score bottom to top);
- ``{group}-features.png``: brightness, contrast, sharpness and mask area, field against baseline.

matplotlib's Agg backend is selected inside :func:`write_report`, never at import time.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from edgeinspect.core.telemetry import (
    CLS_SCORE,
    FEATURES,
    IMAGE_FEATURES,
    MASK_AREA,
    SEG_SCORE,
    Histogram,
    TelemetrySummary,
)

from edgeinspect_cloud.monitor.analysis import GroupReport, Thresholds
from edgeinspect_cloud.monitor.field import FieldGroup

SCORES = (CLS_SCORE, SEG_SCORE)
PANELS = (*IMAGE_FEATURES, MASK_AREA)


def slug(report: GroupReport) -> str:
    """A file-name-safe name for a group."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{report.line}-{report.device}")


def write_report(
    out_dir: Path,
    baseline: TelemetrySummary,
    groups: list[FieldGroup],
    reports: list[GroupReport],
    limits: Thresholds,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Write the folder and return the ``metrics.json`` body."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, list[str]] = {}
    for group, report in zip(groups, reports, strict=True):
        plots[report.line + "/" + report.device] = _plots(out_dir, baseline, group, report)
    body: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "thresholds": {"psi": limits.psi, "p_value": limits.p_value, "min_frames": limits.min_frames},
        "baseline": {"models": baseline.models, "frames": baseline.frames},
        "context": context,
        "drifted": any(r.drifted for r in reports),
        "groups": [{**r.to_json(), "plots": plots[r.line + "/" + r.device]} for r in reports],
    }
    (out_dir / "metrics.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    (out_dir / "report.md").write_text(_markdown(body))
    (out_dir / "report.html").write_text(_html(body))
    return body


def _plots(out_dir: Path, baseline: TelemetrySummary, group: FieldGroup, report: GroupReport) -> list[str]:
    written = []
    total = group.total()
    scores = [n for n in SCORES if n in baseline.features and n in total.features]
    if scores:
        written.append(_scores_plot(out_dir / f"{slug(report)}-scores.png", baseline, group, scores))
    panels = [n for n in PANELS if n in baseline.features and n in total.features]
    if panels:
        written.append(
            _features_plot(out_dir / f"{slug(report)}-features.png", baseline, total, panels, report)
        )
    return written


def _shares(hist: Histogram) -> np.ndarray:
    return hist.counts / max(1, int(hist.counts.sum()))


def _scores_plot(path: Path, baseline: TelemetrySummary, group: FieldGroup, names: list[str]) -> str:
    import matplotlib.pyplot as plt

    total = group.total()
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        edges = np.asarray(FEATURES[name])
        left, right = axes[row]
        left.stairs(_shares(baseline.features[name]), edges, fill=True, alpha=0.5, label="baseline")
        left.stairs(
            _shares(total.features[name]), edges, fill=True, alpha=0.5, label=f"field ({total.frames})"
        )
        left.set_title(f"{name}: field vs baseline")
        left.set_xlabel("score")
        left.set_ylabel("share of frames")
        left.legend()
        columns = [
            _shares(w.features[name]) if name in w.features else np.zeros(len(edges) - 1)
            for w in group.windows
        ]
        image = np.stack([_shares(baseline.features[name]), *columns], axis=1)
        vmax = max(1e-9, 2.0 * float(image[:, 0].max()))  # a window of a few frames saturates, not the rest
        extent = (-0.5, len(columns) + 0.5, 0.0, 1.0)
        right.imshow(image, origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=vmax)
        right.axvline(0.5, color="white", linewidth=2)
        right.set_title(f"{name} over time (column 0: baseline)")
        right.set_xlabel("window")
        right.set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name


def _features_plot(
    path: Path, baseline: TelemetrySummary, total: TelemetrySummary, names: list[str], report: GroupReport
) -> str:
    import matplotlib.pyplot as plt

    verdicts = {f.feature: f for f in report.features}
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        edges = np.asarray(FEATURES[name])
        if name == MASK_AREA:  # log-spaced bins: draw them evenly, bin index on the axis
            edges = np.arange(len(edges), dtype=float)
        ax.stairs(_shares(baseline.features[name]), edges, fill=True, alpha=0.5, label="baseline")
        ax.stairs(_shares(total.features[name]), edges, fill=True, alpha=0.5, label="field")
        found = verdicts.get(name)
        status = (
            f"PSI {found.psi:.2f}, p {found.p_value:.1g}" + (" DRIFT" if found.drifted else "")
            if found
            else ""
        )
        ax.set_title(f"{name}\n{status}", color="crimson" if found and found.drifted else "black", fontsize=9)
        ax.set_xlabel("bin (log area)" if name == MASK_AREA else name)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name


def _table(group: dict[str, Any]) -> list[list[str]]:
    rows = []
    for f in group["features"]:
        flag = "DRIFT" if f["drifted"] else ("too few frames" if not f["enough_data"] else "ok")
        rows.append(
            [
                f["feature"],
                _num(f["baseline_value"]),
                _num(f["field_value"]),
                _num(f["psi"]),
                _num(f["p_value"]),
                flag,
            ]
        )
    return rows


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def _markdown(body: dict[str, Any]) -> str:
    verdict = "DRIFT DETECTED" if body["drifted"] else "no drift"
    lines = [
        f"# Drift report: {verdict}",
        "",
        f"Generated {body['generated_at']}; thresholds {body['thresholds']}.",
        "",
    ]
    lines.append(
        f"Baseline: {body['baseline']['frames']} validation images, models {body['baseline']['models']}."
    )
    for group in body["groups"]:
        lines += [
            "",
            f"## {group['line']} / {group['device']} ({group['source']}, {group['frames']} frames)",
            "",
        ]
        lines.append(f"Drifted: {', '.join(group['drifted']) or 'nothing'}. Models: {group['models']}.")
        lines += [
            "",
            "| feature | baseline | field | PSI | p | verdict |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in _table(group)]
        lines += ["", *[f"![{name}]({name})" for name in group["plots"]]]
    return "\n".join(lines) + "\n"


def _html(body: dict[str, Any]) -> str:
    verdict = "DRIFT DETECTED" if body["drifted"] else "no drift"
    limits = body["thresholds"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Drift report: {verdict}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}"
        "table{border-collapse:collapse}td,th{border:1px solid #444;padding:.25rem .6rem;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.drift{color:#ff6b6b;font-weight:bold}"
        "img{max-width:100%;background:#fff;margin:.5rem 0}</style></head><body>",
        f"<h1>Drift report: <span class='{'drift' if body['drifted'] else ''}'>{verdict}</span></h1>",
        f"<p>Generated {html.escape(body['generated_at'])}. Drift: PSI &ge; {limits['psi']} "
        f"and p &lt; {limits['p_value']}, with at least {limits['min_frames']} frames.</p>",
    ]
    for group in body["groups"]:
        title = f"{group['line']} / {group['device']} ({group['source']}, {group['frames']} frames)"
        parts.append(f"<h2>{html.escape(title)}</h2>")
        drifted = ", ".join(group["drifted"]) or "nothing"
        parts.append(f"<p>Drifted: <span class='drift'>{html.escape(drifted)}</span></p>")
        parts.append(
            "<table><tr><th>feature</th><th>baseline</th><th>field</th><th>PSI</th><th>p</th><th></th></tr>"
        )
        for row in _table(group):
            cls = " class='drift'" if row[-1] == "DRIFT" else ""
            parts.append("<tr>" + "".join(f"<td{cls}>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
        parts += [f"<img src='{html.escape(name)}' alt='{html.escape(name)}'>" for name in group["plots"]]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
