"""One figure kind shared by `compare` and `sweep`: a metric per decoder and recording."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["metric_grid_png"]


def metric_grid_png(rows: Sequence[Mapping[str, object]], metric: str, path: str | Path, *,
                    group_key: str = "decoder", item_key: str = "recording",
                    title: str | None = None) -> Path:
    """Draw ``metric`` as grouped bars (one group per ``item_key``, one bar per ``group_key``).

    Parameters
    ----------
    rows : sequence of mappings
        Result rows, e.g. one per (decoder, recording) cell; rows without a finite ``metric``
        are drawn as gaps.
    metric : str
        Column to draw.
    path : str or Path
        PNG file to write.
    group_key, item_key : str
        Columns naming the bar (legend) and the group on the x axis.
    title : str, optional
        Figure title (default: the metric's name).

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(str(r.get(group_key, "")) for r in rows))
    items = list(dict.fromkeys(str(r.get(item_key, "")) for r in rows))
    values = np.full((len(groups), len(items)), np.nan)
    for r in rows:
        v = r.get(metric)
        if isinstance(v, int | float | np.floating | np.integer) and np.isfinite(float(v)):
            values[groups.index(str(r.get(group_key, ""))),
                   items.index(str(r.get(item_key, "")))] = float(v)
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(items) * max(len(groups), 1) * 0.6 + 2),
                                    3.6), layout="constrained")
    x = np.arange(len(items))
    for gi, g in enumerate(groups):
        ax.bar(x + (gi - (len(groups) - 1) / 2) * width, values[gi], width, label=g)
    ax.set_xticks(x, [Path(i).name or i for i in items], rotation=20, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    if len(groups) > 1:
        ax.legend(title=group_key, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
