"""Rows of metrics as a terminal table, JSON or CSV (shared by ``evaluate`` and ``compare``)."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["print_table", "write_csv", "rows_json"]


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Aligned columns ``(key, header)`` on stdout."""
    head = [h for _, h in columns]
    body = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    sys.stdout.write("\n".join(out) + "\n")


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One CSV line per row; list values (the confusion matrix) as JSON text."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    out = Path(path)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, list | dict) else
                        ("" if v is None else v) for k, v in r.items()})
    return out


def rows_json(rows: Sequence[Mapping[str, Any]], **extra: Any) -> str:
    return json.dumps({**extra, "rows": list(rows)}, allow_nan=False)
