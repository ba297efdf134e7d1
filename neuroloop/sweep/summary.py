"""The terminal summary table of a sweep and its figures (a metric per group and item)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .modes import MODES
from .spec import SweepSpec

__all__ = ["format_summary", "write_figures"]

#: Rows shown on the terminal before the table is cut (every row is in results.csv).
MAX_TABLE_ROWS = 40


def _cell_text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= 28 else "..." + text[-25:]


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return lines


def format_summary(spec: SweepSpec, outcome: Any) -> str:
    """The summary: one line per cell (the parameters that vary, status, headline metrics,
    seconds), then the failures with their errors, then counts and timing."""
    rows: list[Mapping[str, Any]] = outcome.rows
    modes = list(dict.fromkeys(str(r.get("mode")) for r in rows))
    headline = list(dict.fromkeys(m for name in modes if name in MODES
                                  for m in MODES[name].headline))
    params = [p for p in spec.varying if p != "mode"]
    header = ["cell", *(["mode"] if "mode" in spec.varying else []), *params, "status",
              *headline, "cell_s"]
    shown = rows if len(rows) <= MAX_TABLE_ROWS else [
        *rows[: MAX_TABLE_ROWS // 2],
        *[r for r in rows[MAX_TABLE_ROWS // 2:] if r.get("status") != "ok"][: MAX_TABLE_ROWS // 2]]
    body = [[_cell_text(r.get(h)) for h in header] for r in shown]
    lines = [f"sweep {spec.name}: {len(rows)} cells ({outcome.ran} run now, {outcome.skipped} "
             f"done before) on {outcome.workers or '-'} worker(s) at {outcome.scheduler}", ""]
    lines += _table(header, body)
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more rows in {outcome.csv}")
    failures = [r for r in rows if r.get("status") != "ok"]
    if failures:
        lines.append("")
        for r in failures[:20]:
            lines.append(f"cell {r.get('cell')} {r.get('status')}: {r.get('error')}")
        if len(failures) > 20:
            lines.append(f"... {len(failures) - 20} more in {outcome.csv}")
    lines.append("")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.statuses.items()))
    lines.append(f"status              {counts}")
    if outcome.ran:
        lines.append(f"time                {outcome.wall_s:.1f} s wall for {outcome.ran} cells "
                     f"({outcome.cells_s:.1f} s of cells on {outcome.workers} worker(s)); "
                     f"cluster set-up {outcome.setup_s:.1f} s; scheduling overhead "
                     f"{outcome.overhead_s:.2f} s = {outcome.overhead_pct} % of the cells' "
                     "time")
    lines.append(f"results             {outcome.parquet}  {outcome.csv}")
    if outcome.figures:
        lines.append(f"figures             {'  '.join(str(f) for f in outcome.figures)}")
    return "\n".join(lines)


def write_figures(spec: SweepSpec, rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """One PNG per metric of ``spec.figures`` that some ok row has, through
    :func:`neuroloop.monitor.metric_grid.metric_grid_png` (bars per ``figure_group``, groups
    per ``figure_item``)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    wanted = [m for m in spec.figures
              if any(isinstance(r.get(m), int | float) and not isinstance(r.get(m), bool)
                     for r in ok)]
    if not wanted:
        return []
    from ..monitor.metric_grid import metric_grid_png

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    group = spec.figure_group or "mode"
    item = spec.figure_item or "cell"
    out = []
    for metric in wanted:
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in metric)
        out.append(metric_grid_png(ok, metric, fig_dir / f"{safe}.png", group_key=group,
                                   item_key=item, title=f"{spec.name}: {metric}"))
    return out
