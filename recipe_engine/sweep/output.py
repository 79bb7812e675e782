"""A sweep's files: sweep.csv (the grid), sweep.json (SweepResult.to_json) and sweep.png (effect
and side effect per layer over strength), written as one set."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from recipe_engine.atomic import write_files_atomic
from recipe_engine.sweep.grid import SweepResult

__all__ = ["figure_png", "write_sweep"]


def _csv(result: SweepResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["layer", "strength", "effect", "steered", "kl", "recommended", "fluency"]
    writer.writerow([*columns, "control_mean", "control_sd", "z", "sets"])

    def opt(x: float | None) -> str:
        return "" if x is None else f"{x:.6f}"

    for p in result.points:
        writer.writerow(
            [
                p.layer,
                p.strength,
                f"{p.effect:.6f}",
                f"{p.steered:.6f}",
                f"{p.kl:.6f}",
                int(p is result.recommended),
                opt(p.fluency),
                opt(p.control_mean),
                opt(p.control_sd),
                opt(p.z),
                p.set_flags(),  # the --set flags that make `steer run` measure this cell
            ]
        )
    return out.getvalue()


def _plot(result: SweepResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted({p.layer for p in result.points})
    fig, (ax_effect, ax_kl) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for layer in layers:
        row = sorted((p for p in result.points if p.layer == layer), key=lambda p: p.strength)
        xs = [p.strength for p in row]
        line = ax_effect.plot(xs, [p.effect for p in row], marker="o", label=f"layer {layer}")
        band = [p for p in row if p.control_mean is not None and p.control_sd is not None]
        if band:  # the random controls' effect, mean +- 2 sd: what a direction must clear
            low = [(p.control_mean or 0) - 2 * (p.control_sd or 0) for p in band]
            high = [(p.control_mean or 0) + 2 * (p.control_sd or 0) for p in band]
            ax_effect.fill_between(
                [p.strength for p in band],
                low,
                high,
                color=line[0].get_color(),
                alpha=0.15,
                label=f"layer {layer} controls (mean +- 2 sd)",
            )
        ax_kl.plot(xs, [p.kl for p in row], marker="o", label=f"layer {layer}")
    ax_kl.axhline(result.kl_budget, color="grey", linestyle="--", label="KL budget")
    best = result.recommended
    if best is not None:
        for ax, y in ((ax_effect, best.effect), (ax_kl, best.kl)):
            ax.scatter(
                [best.strength],
                [y],
                s=180,
                facecolors="none",
                edgecolors="red",
                linewidths=2,
                zorder=5,
                label="recommended",
            )
    ax_effect.set(
        title=f"effect: change of {result.effect_metric}",
        xlabel="strength",
        ylabel="steered - baseline",
    )
    where = "neutral text" if result.cost_metric.endswith(":text") else "prompts"
    ax_kl.set(
        title=f"side effect: KL to baseline ({where})",
        xlabel="strength",
        ylabel="KL, nats",
    )
    return figure_png(fig, (ax_effect, ax_kl), f"sweep of {result.recipe}")


def figure_png(fig: Any, axes: tuple[Any, ...], title: str) -> bytes:
    """The figure as PNG bytes, closed: gridded axes with legends, a title, and no software
    stamp in the metadata, so the same result gives the same file."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_sweep(result: SweepResult, out_dir: Path) -> dict[str, Path]:
    """sweep.csv, sweep.json and sweep.png in out_dir, written as one set.

    The three files describe one sweep, so they are replaced together: all are rendered in
    memory (the plot takes the longest), then staged and renamed in one `write_files_atomic`.
    An interrupted or failing sweep leaves the previous set untouched (or none), never a new
    CSV next to an old plot; see atomic.py for the one hard-kill window left.
    """
    paths = {name: out_dir / f"sweep.{name}" for name in ("csv", "json", "png")}
    contents = {
        paths["csv"]: _csv(result).encode("utf-8"),
        paths["json"]: (json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n").encode(),
        paths["png"]: _plot(result),
    }
    write_files_atomic(contents)
    return paths
