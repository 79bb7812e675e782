"""A condition search's files: condition.csv (every cell), condition.json
(ConditionSearch.to_json) and condition.png (F1 over threshold per layer; the tuning scores of
the best layer by label, with the chosen threshold), written as one set."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from recipe_engine.atomic import write_files_atomic
from recipe_engine.sweep.condition import ConditionSearch
from recipe_engine.sweep.output import figure_png

__all__ = ["write_condition_search"]


def _csv(result: ConditionSearch) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["layer", "compare", "threshold", "precision", "recall", "f1", "best"])
    for c in result.cells:
        writer.writerow(
            [
                c.layer,
                c.compare,
                c.threshold,
                f"{c.precision:.6f}",
                f"{c.recall:.6f}",
                f"{c.f1:.6f}",
                int(c is result.best),
            ]
        )
    return out.getvalue()


def _plot(result: ConditionSearch) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = result.best
    fig, (ax_f1, ax_scores) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    layers = sorted({c.layer for c in result.cells})
    many = len(layers) > 8  # a legend of 30 layers would crowd the plot out: grey lines then
    for layer in layers:
        row = sorted(
            (c for c in result.cells if c.layer == layer and c.compare == best.compare),
            key=lambda c: c.threshold,
        )
        xs, ys = [c.threshold for c in row], [c.f1 for c in row]
        if not many:
            ax_f1.plot(xs, ys, label=f"layer {layer}")
        elif layer == best.layer:
            ax_f1.plot(xs, ys, color="tab:red", linewidth=2, label=f"layer {layer} (best)")
        else:
            ax_f1.plot(xs, ys, color="grey", alpha=0.35, linewidth=1)
    if many:
        ax_f1.plot([], [], color="grey", alpha=0.35, label=f"{len(layers) - 1} other layers")
    ax_f1.scatter([best.threshold], [best.f1], s=150, facecolors="none", edgecolors="red", zorder=5)
    ax_f1.set(
        title=f"tuning F1, fires when score is {best.compare} the threshold",
        xlabel=f"threshold ({result.score})",
        ylabel="F1",
    )
    points = result.scores[best.layer]
    for label, colour in ((1, "tab:orange"), (0, "tab:blue")):
        values = [s for s, y in points if y == label]
        ax_scores.hist(values, bins=20, alpha=0.6, color=colour, label=f"label {label}")
    ax_scores.axvline(best.threshold, color="red", linestyle="--", label="threshold")
    ax_scores.set(
        title=f"tuning scores at layer {best.layer} (held-out F1 {result.heldout_result.f1:.2f})",
        xlabel=f"{result.score} with {result.vector}",
        ylabel="prompts",
    )
    return figure_png(fig, (ax_f1, ax_scores), f"condition search of {result.recipe}")


def write_condition_search(result: ConditionSearch, out_dir: Path) -> dict[str, Path]:
    """condition.csv, condition.json and condition.png in out_dir, replaced together."""
    paths = {name: out_dir / f"condition.{name}" for name in ("csv", "json", "png")}
    document = json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
    write_files_atomic(
        {
            paths["csv"]: _csv(result).encode("utf-8"),
            paths["json"]: document.encode("utf-8"),
            paths["png"]: _plot(result),
        }
    )
    return paths
