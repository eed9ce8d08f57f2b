"""Files a benchmark run leaves behind for people: ``<out>/<name>/table.md`` and PNG plots.

Shared by the benchmarks (import ``bench.report``). Stdout stays the machine contract (a table, then
one JSON object as the very last line); this module only adds files, so nothing parsing the JSON
changes. Plots are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``, so no global backend or display is touched and nothing happens at import time.

A run overwrites its own folder: the files always describe one run, whose timings are only
comparable with each other (see ``bench/README.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
"""``bench/out`` inside the repository, wherever the benchmark is started from (git-ignored)."""

Figures = Mapping[str, Any]
RowsOrFigures = Sequence[Mapping[str, Any]] | Mapping[str, Any]
BARE, AGENT, COMPAT = "#7f8c8d", "#2e86de", "#e67e22"


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What every figure must be read beside: cores, load average before and after, ONNX Runtime."""
    import os

    import onnxruntime as ort

    return {
        "cpus": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "onnxruntime": ort.__version__,
    }


def write_report(name: str, rows_or_figures: RowsOrFigures, out_dir: Path, table: str = "") -> Path:
    """Write ``out_dir/name/`` (table.md, figures.json, PNGs) and return that folder.

    ``rows_or_figures`` is what the benchmark measured: agent_latency's rows (one mapping per
    model/size/precision), or throughput's and uploader's figures mapping. ``table`` is the exact text
    the benchmark printed, so the file and the terminal never disagree. A name without a plotter
    still gets its table and figures.
    """
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    pngs = [path.name for path in PLOTTERS.get(name, _no_plots)(rows_or_figures, folder)]
    (folder / "figures.json").write_text(json.dumps(rows_or_figures, indent=2, default=str) + "\n")
    (folder / "table.md").write_text(_markdown(name, table, pngs))
    return folder


def _markdown(name: str, table: str, pngs: list[str]) -> str:
    images = "".join(f"\n![{png.removesuffix('.png')}]({png})\n" for png in pngs)
    return (
        f"# {name}\n\nOne run's figures. On a shared or loaded machine only the ratios between figures "
        f"of this run mean anything; see `bench/README.md`.\n\n```text\n{table.strip(chr(10))}\n```\n{images}"
    )


def _no_plots(_data: RowsOrFigures, _folder: Path) -> list[Path]:
    return []


def _figure(width: float, height: float, panels: int = 1, stacked: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas with ``panels`` axes side by side, or one above the other when ``stacked``.

    No pyplot, so no global backend, display or figure registry is involved.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = (
        fig.subplots(panels, 1, squeeze=False)[:, 0] if stacked else fig.subplots(1, panels, squeeze=False)[0]
    )
    return fig, list(axes)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path


def _label_bars(
    ax: Axes, bars: Any, fmt: str = "{:.1f}", position: Literal["edge", "center"] = "edge"
) -> None:
    """Each bar's value on it: at its top (``edge``) or inside it (``center``, for a bar in front)."""
    labels = [fmt.format(bar.get_height()) for bar in bars]
    ax.bar_label(bars, labels=labels, fontsize=7, padding=2, label_type=position)


def _latency_bars(ax: Axes, rows: Sequence[Mapping[str, Any]]) -> None:
    """Per row, three paths side by side: a light bar up to p99 with the dark p50 bar in front of it."""
    width = 0.26
    paths = (
        ("bare", "bare session.run", BARE),
        ("ext", "agent (ext)", AGENT),
        ("compat", "agent (compat)", COMPAT),
    )
    for i, (key, label, colour) in enumerate(paths):
        xs = [x + (i - 1) * width for x in range(len(rows))]
        tails = ax.bar(
            xs, [r[f"{key}_p99_ms"] for r in rows], width, color=colour, alpha=0.35, label=f"{label} p99"
        )
        bars = ax.bar(xs, [r[f"{key}_p50_ms"] for r in rows], width, color=colour, label=f"{label} p50")
        _label_bars(ax, bars, position="center")
        _label_bars(ax, tails)
    for x, row in enumerate(rows):
        top = max(row["ext_p99_ms"], row["compat_p99_ms"], row["bare_p99_ms"])
        ax.annotate(
            f"ext / bare = {row['agent_overhead_ratio']:.3f}",
            (x, top),
            xytext=(0, 14),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            weight="bold",
        )
    ax.set_xticks(range(len(rows)), [f"{r['size']}\n{r['precision']}" for r in rows])
    ax.set_ylabel("ms per call (p50 solid, p99 light)")
    ax.margins(y=0.25)


def plot_agent_latency(rows_or_figures: RowsOrFigures, folder: Path) -> list[Path]:
    """latency.png: p50/p99 bare vs through the agent, one panel per model; ratios.png: the ratios."""
    rows = _rows(rows_or_figures)
    models = sorted({r["model"] for r in rows})
    per_model = max(sum(r["model"] == model for r in rows) for model in models)
    fig, axes = _figure(max(7.0, 2.6 * per_model), 0.6 + 3.8 * len(models), len(models), stacked=True)
    for ax, model in zip(axes, models, strict=True):
        _latency_bars(ax, [r for r in rows if r["model"] == model])
        ax.set_title(model)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("Agent latency: bare ONNX Runtime vs the agent's unix socket (batch 1)")
    paths = [_save(fig, folder / "latency.png")]
    paths.append(_ratio_plot(rows, folder / "ratios.png"))
    return paths


def _ratio_plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Each ratio per row against the 1.10 target, which is what the benchmark is judged by."""
    fig, (ax,) = _figure(max(6.0, 1.6 * len(rows)), 4.2)
    width = 0.26
    kinds = (
        ("agent_overhead_ratio", "ext / bare", AGENT),
        ("compat_overhead_ratio", "compat / bare", COMPAT),
        ("transport_overhead_ratio", "(bare + transport) / bare", BARE),
    )
    for i, (key, label, colour) in enumerate(kinds):
        bars = ax.bar(
            [x + (i - 1) * width for x in range(len(rows))],
            [r[key] for r in rows],
            width,
            color=colour,
            label=label,
        )
        _label_bars(ax, bars, "{:.2f}")
    ax.axhline(1.10, color="#c0392b", linestyle="--", linewidth=1, label="target 1.10")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [f"{r['model']}\n{r['size']}\n{r['precision']}" for r in rows])
    ax.set_ylabel("ratio at p50 (1.0 = no overhead)")
    ax.set_ylim(bottom=min(0.9, *(r[k] for r in rows for k, _, _ in kinds)) - 0.05)
    ax.margins(y=0.15)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    ax.set_title("Agent overhead ratios (lower is better)")
    return _save(fig, path)


def plot_throughput(rows_or_figures: RowsOrFigures, folder: Path) -> list[Path]:
    """throughput.png: e2e p50/p99 against the bare cls + seg sum, and frames/s against bare sequential."""
    f = _figures(rows_or_figures)
    fig, (lat, fps) = _figure(10.0, 4.8, 2)
    bottom = 0.0
    shades = iter([BARE, "#b2bec3", "#dfe6e9"])
    for short in ("cls", "seg", "mt"):  # the bare p50 of each model the layout ran, stacked
        key = f"bare_{short}_p50_ms"
        if key in f:
            part = lat.bar([0], [f[key]], 0.6, bottom=[bottom], color=next(shades), label=f"bare {short} p50")
            lat.bar_label(part, labels=[f"{f[key]:.1f}"], fontsize=7, label_type="center")
            bottom += f[key]
    lat.annotate(f"sum {f['bare_sum_p50_ms']:.1f}", (0, bottom), xytext=(0, 2), textcoords="offset points",
                 ha="center", fontsize=7)  # fmt: skip
    e2e = lat.bar([1, 2], [f["e2e_p50_ms"], f["e2e_p99_ms"]], 0.6, color=[AGENT, "#9ecbf0"])
    _label_bars(lat, e2e)
    lat.annotate(
        f"e2e p50 / bare sum = {f['e2e_overhead_ratio']:.3f}\n(target <= 1.25)",
        (1.0, f["e2e_p99_ms"]),
        xytext=(0, 22),
        textcoords="offset points",
        ha="center",
        fontsize=9,
        weight="bold",
    )
    lat.set_xticks([0, 1, 2], ["bare models\np50 sum", "end to end\np50", "end to end\np99"])
    lat.set_ylabel("ms per frame")
    lat.margins(y=0.3)
    lat.legend(fontsize=8, loc="upper left")
    lat.set_title("Latency (XADD -> result readable)")
    rates = fps.bar([0, 1], [f["fps"], f["bare_sequential_fps"]], 0.6, color=[AGENT, BARE])
    _label_bars(fps, rates, "{:.2f}")
    fps.set_xticks([0, 1], ["sustained\n(line, pipelined)", "bare sequential\n1000 / bare sum"])
    fps.set_ylabel("frames/s")
    fps.margins(y=0.2)
    fps.set_title(f"Throughput over {f['throughput_seconds']:.0f} s, depth {f['pipeline_depth']}")
    layout = f"{f.get('layout', 'two-model')} {f.get('variant', '')}, {f.get('transport', 'grpc')}"
    fig.suptitle(
        f"One line, verdict + mask ({layout}), {f['frame']} {f['encoding']} ({f['execution_provider']})"
    )
    return [_save(fig, folder / "throughput.png")]


def plot_uploader(rows_or_figures: RowsOrFigures, folder: Path) -> list[Path]:
    """uploader.png: MB/s and captures/s of spool write, frame upload and multipart upload."""
    f = _figures(rows_or_figures)
    phases = [
        ("spool write\n(fsync)", f["spool_write"]),
        ("upload\n232x640 frames", f["upload_frames"]),
        (f"upload {f['large_bytes'] / 1e6:.1f} MB\nmultipart", f["upload_multipart"]),
    ]
    fig, axes = _figure(10.0, 4.4, 2)
    colours = [BARE, AGENT, COMPAT]
    for ax, key, label, fmt in (
        (axes[0], "mb_per_s", "MB/s (10^6 bytes)", "{:.2f}"),
        (axes[1], "captures_per_s", "captures/s", "{:.1f}"),
    ):
        bars = ax.bar(range(len(phases)), [p[key] for _, p in phases], 0.6, color=colours)
        _label_bars(ax, bars, fmt)
        ax.set_xticks(range(len(phases)), [name for name, _ in phases])
        ax.set_ylabel(label)
        ax.margins(y=0.15)
        ax.set_title(label)
    fig.suptitle("Uploader on loopback (moto S3 shares the CPU; a real uplink sets its own limit)")
    return [_save(fig, folder / "uploader.png")]


def _grouped_bars(
    ax: Axes, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str
) -> None:
    """One bar per (group, series), series side by side within each group, values on the bars."""
    step = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series):
        bars = ax.bar([i + index * step for i in range(len(groups))], values, step, label=label)
        _label_bars(ax, bars, "{:.2f}")
    ax.set_xticks([i + 0.4 - step / 2 for i in range(len(groups))], list(groups))
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=7, loc="upper left", ncols=min(4, max(1, len(series))))
    ax.set_title(title, fontsize=9)


def plot_heldout(rows_or_figures: RowsOrFigures, folder: Path) -> list[Path]:
    """bench.heldout: the models on the unseen surfaces, AP per family, and each surface as a new line."""
    figures = _figures(rows_or_figures)
    models = figures["models"]
    names = [n for n in models if "heldout" in models[n]]
    rows = [models[n]["heldout"]["fp32"] for n in names]
    fig, axes = _figure(18.0, 4.8, 3)
    shown = (("image_ap", "image AP"), ("operating_recall", "recall @ shipped"),
             ("operating_false_reject_rate", "false rejects @ shipped"), ("dice", "Dice"))  # fmt: skip
    series = [(label, [float(row.get(key) or 0.0) for row in rows]) for key, label in shown]
    _grouped_bars(axes[0], names, series, "held-out surfaces (mixed), fp32, at each shipped threshold")
    families = sorted({f for row in rows for f in row.get("family_ap", {})})
    series = [(f, [float(row.get("family_ap", {}).get(f) or 0.0) for row in rows]) for f in families]
    _grouped_bars(axes[1], names, series, "image AP per held-out surface family (fp32)")
    lines = figures.get("lines", {})
    series = [
        (model, [float(lines[s][model]["line"]["fp32"]["image_ap"] or 0.0) for s in lines])
        for model in ("after", "fine-tuned", "anomaly", "anomaly-random")
        if all(model in lines[s] for s in lines)
    ]
    _grouped_bars(axes[2], list(lines), series, "each surface as a new line: image AP (fp32, 270 frames)")
    return [_save(fig, folder / "heldout.png")]


def _rows(data: RowsOrFigures) -> list[Mapping[str, Any]]:
    """agent_latency's rows, whether given as the rows or as the summary holding them under ``rows``."""
    return list(data["rows"]) if isinstance(data, Mapping) else list(data)


def _figures(data: RowsOrFigures) -> Figures:
    if not isinstance(data, Mapping):
        raise TypeError("this benchmark's report takes its figures mapping, not a list of rows")
    return data


PLOTTERS: dict[str, Callable[[RowsOrFigures, Path], list[Path]]] = {
    "agent_latency": plot_agent_latency,
    "heldout": plot_heldout,
    "throughput": plot_throughput,
    "uploader": plot_uploader,
}
