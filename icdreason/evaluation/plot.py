"""The paper's Figure 4: samples per chapter (bars, largest first) with each run's per-chapter F1 (lines)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DependencyError, InputError

__all__ = ["plot_chapters"]


def plot_chapters(runs: Sequence[tuple[str, list[dict[str, Any]]]], path: str | Path, *,
                  title: str = "Support and F1 per ICD-10-CM chapter") -> Path:
    """Write a PNG (or any format matplotlib knows from the suffix) of per-chapter support and F1.

    ``runs`` is ``[(name, per_chapter_rows), ...]``; support comes from the first run (the gold is shared). Dashed
    lines mark where the cumulative support passes one and two thirds of the rows.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import install_hint

        raise DependencyError(f"--plot needs matplotlib, which the plot extra installs: {install_hint('plot')} (or "
                              "pip install matplotlib)") from None
    if not runs:
        raise InputError("nothing to plot")
    chapters = [r for r in runs[0][1] if r["support"] > 0 and r["chapter"] is not None]
    keys = [r["chapter"] for r in chapters]
    names = [str(k) for k in keys]
    support = [r["support"] for r in chapters]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.2), dpi=120)
    ax.bar(range(len(names)), support, color="#b8c7dd", label="gold samples")
    ax.set_xticks(range(len(names)), names, rotation=0 if len(names) <= 12 else 45)
    ax.set_xlabel("ICD-10-CM chapter (by support)")
    ax.set_ylabel("samples")
    total, running = sum(support), 0
    for i, s in enumerate(support):
        before = running
        running += s
        for cut in (total / 3, 2 * total / 3):
            if before < cut <= running and i + 1 < len(support):
                ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax2 = ax.twinx()
    for name, rows in runs:
        f1 = {r["chapter"]: r["f1"] for r in rows}
        ax2.plot(range(len(names)), [100 * f1.get(k, 0.0) for k in keys], marker="o", linewidth=1.5, label=name)
    ax2.set_ylabel("F1 (%)")
    ax2.set_ylim(0, 100)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax2.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(4, len(labels)),
               fontsize="small", frameon=False)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp" + out.suffix)
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
