"""``neuroloop report DIR``: one self-contained HTML page of figures for any recording.

The page embeds every figure as a base64 PNG (no network needed to open it) and begins with
a header: scenario, recording format, start/stop, whether the writer closed cleanly, duration,
versions, hashes and the run summary. :func:`build_report` writes it, and optionally every
figure as its own PNG. It is written against the recording format, so it works for every
preset, for a recording whose writer was killed (no summary: the figures come from the
records alone) and for a recording of a replayed run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io.reader import open_recording
from ..progress import Progress
from .figures import FIGURES, interlock_rows, recorded_programs
from .session_data import SessionData, load_session

__all__ = ["build_report", "ReportResult"]

_DPI = 80
#: interlock events listed one by one (the table groups all of them by reason)
_LISTED_EVENTS = 300


class ReportResult(dict):
    """What :func:`build_report` wrote: ``html``, ``png`` (list of paths), ``figures``
    (names drawn), ``cycles``, ``closed_cleanly``."""


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _check_out(out: Path, png_dir: Path | None) -> None:
    parent = out.absolute().parent
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: directory {parent} does not exist; create it or choose "
                          "another path")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name such as report.html")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: {parent} is not writable; choose a writable path")
    if png_dir is not None:
        if png_dir.exists() and not png_dir.is_dir():
            raise ConfigError(f"--png {png_dir} is a file; give a directory for the PNG files")
        try:
            png_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--png {png_dir}: cannot create it ({exc.strerror}); choose a "
                              "writable directory") from None


def build_report(directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 *, png_dir: str | os.PathLike[str] | None = None,
                 as_json: bool = False) -> ReportResult:
    """Write the HTML report of the recording in ``directory``.

    Parameters
    ----------
    directory : path
        A session recording (``neuroloop run --record DIR``).
    out : path, optional
        HTML file to write (default ``DIR/report.html``).
    png_dir : path, optional
        Also write each figure as ``<name>.png`` there.
    as_json : bool
        The caller prints JSON: no progress bar.

    Raises
    ------
    RecordingError
        ``directory`` is not a readable recording (one line, from the reader).
    ConfigError
        ``out`` or ``png_dir`` cannot be written.
    """
    out_path = Path(out) if out is not None else Path(directory) / "report.html"
    png_path = Path(png_dir) if png_dir is not None else None
    recording = open_recording(directory)
    _check_out(out_path, png_path)
    with recording, Progress(len(FIGURES) + 2, "report", unit="step", as_json=as_json) as bar:
        data = load_session(recording)
        bar.update(1)
        programs = recorded_programs(data)
        sections: list[str] = []
        written: list[str] = []
        drawn: list[str] = []
        for name, title, fn, needs_programs in FIGURES:
            fig = fn(data, programs) if needs_programs else fn(data)
            bar.update(1)
            if fig is None:
                continue
            png = _png(fig)
            drawn.append(name)
            if png_path is not None:
                target = png_path / f"{name}.png"
                target.write_bytes(png)
                written.append(str(target))
            sections.append(
                f'<section id="{name}"><h2>{html.escape(title)}</h2>'
                f'<img alt="{html.escape(title)}" src="data:image/png;base64,'
                f'{base64.b64encode(png).decode("ascii")}"></section>')
            if name == "supervisor":
                sections.append(_interlock_table(data))
        page = _page(data, programs, sections)
        try:
            out_path.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--out {out_path}: cannot write it ({exc.strerror}); choose a "
                              "writable path") from None
        bar.update(1)
    return ReportResult(html=str(out_path), png=written, figures=drawn, cycles=data.n_cycles,
                        closed_cleanly=recording.closed_cleanly)


# -- HTML --------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1000px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3} img{max-width:100%} .warn{color:#a00;font-weight:bold}
.mono{font-family:ui-monospace,monospace;font-size:.85em} details{margin:.5em 0}
"""


def _esc(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:g}"
    if isinstance(v, dict | list):
        return html.escape(json.dumps(v, default=str)[:600])
    return html.escape(str(v))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{_esc(v)}</td></tr>" for k, v in pairs)


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = ("mode", "cycles", "simulated_s", "wall_s", "realtime_factor", "deadline_ms",
            "deadline_misses", "compute_us", "e2e_us", "accuracy", "accuracy_hops",
            "intent_to_stim_ms", "interlock_events", "time_in_state_s", "stall_cycles",
            "samples_lost", "jit_compiles_in_loop", "listener_errors", "stopped_by",
            "supervisor_state", "operator", "monitor")
    return [(k, summary[k]) for k in keys if k in summary]


def _page(d: SessionData, programs: Any, sections: list[str]) -> str:
    rec = d.recording
    meta = d.meta
    options = meta.get("options") or {}
    summary: dict[str, Any] = meta["summary"] if isinstance(meta.get("summary"), dict) else {}
    decoder = meta.get("decoder") or {}
    misses = int(d.deadline_missed.sum())
    labelled = d.true_state >= 0
    acc = (f"{100.0 * float((d.state[labelled] == d.true_state[labelled]).mean()):.1f} %"
           if labelled.any() else "no ground truth")
    head = [
        ("scenario", meta.get("scenario")),
        ("recording", str(rec.path)),
        ("format version", rec.format_version),
        ("created / stopped (UTC)", f"{meta.get('created_utc')} / {meta.get('stopped_utc', '-')}"),
        ("closed cleanly", rec.closed_cleanly),
        ("duration", f"{d.duration_s:.1f} s, {d.n_cycles} cycles of {rec.hop_samples} samples "
                     f"at {rec.sampling_rate_hz:g} Hz"),
        ("source", meta.get("source_url")),
        ("device", options.get("device", "-")),
        ("mode", "fast (simulated clock)" if options.get("fast") else
         summary.get("mode", "real time")),
        ("channels", f"{rec.n_channels} ({', '.join(sorted(set(rec.channel_types)))})"),
        ("states", ", ".join(rec.intention_names)),
        ("continuous outputs", ", ".join(f"{n} [{u}]" for n, u in
                                         zip(rec.output_names, rec.output_units, strict=True))
         or "none"),
        ("electrode array", programs.array.name if programs is not None
         else f"{rec.n_contacts} contacts"),
        ("decoder", f"{meta.get('decoder_kind', '?')} sha256 {decoder.get('sha256')}"),
        ("config sha256", options.get("config_sha256", "-")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())),
        ("accuracy (from records)", acc),
        ("deadline misses (from records)", misses),
    ]
    warn = ("" if rec.closed_cleanly else
            '<p class="warn">The writer did not close this recording cleanly (killed or still '
            "running): there is no run summary; every figure below comes from the records that "
            "reached the disk.</p>")
    body = (f"<h1>neuroloop session report: {_esc(meta.get('scenario'))}</h1>{warn}"
            f"<table>{_rows(head)}</table>")
    if summary:
        body += f"<details open><summary>Run summary</summary><table>" \
                f"{_rows(_summary_rows(summary))}</table></details>"
    body += "".join(sections)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>neuroloop report "
            f"{_esc(meta.get('scenario'))}</title><style>{_CSS}</style></head><body>{body}"
            "</body></html>\n")


def _interlock_table(d: SessionData) -> str:
    rows = interlock_rows(d)
    if not rows:
        return "<p>No interlock events.</p>"
    by_reason: dict[str, list[float]] = {}
    for _, t, ev in rows:
        key = (f"input:{ev.get('input')}" if ev.get("kind") == "link_input"
               else str(ev.get("reason", ev.get("kind"))))
        by_reason.setdefault(key, []).append(t)
    grouped = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{len(v)}</td><td>{v[0]:.2f}</td><td>{v[-1]:.2f}</td>"
        "</tr>" for k, v in sorted(by_reason.items(), key=lambda kv: -len(kv[1])))
    listed = []
    for c, t, ev in rows[:_LISTED_EVENTS]:
        what = (ev.get("input") if ev.get("kind") == "link_input" else ev.get("reason"))
        extra = {k: v for k, v in ev.items()
                 if k not in ("cycle", "time_ns", "kind", "reason", "input")}
        listed.append(f"<tr><td>{c}</td><td>{t:.2f}</td><td>{html.escape(str(what))}</td>"
                      f"<td class=\"mono\">{_esc(extra)}</td></tr>")
    more = (f"<p>{len(rows) - _LISTED_EVENTS} more events not listed (all are counted above and "
            "drawn in the figure).</p>" if len(rows) > _LISTED_EVENTS else "")
    trunc = (f"<p>{d.events_truncated} further events were not read.</p>"
             if d.events_truncated else "")
    kinds = Counter(ev.get("kind") for ev in d.events)
    return (f"<h3>Interlock events ({len(rows)}; events.jsonl holds "
            f"{', '.join(f'{v} {k}' for k, v in kinds.items())})</h3>"
            "<table><tr><th>reason</th><th>count</th><th>first (s)</th><th>last (s)</th></tr>"
            f"{grouped}</table><details><summary>every event</summary><table><tr><th>cycle"
            "</th><th>t (s)</th><th>reason</th><th>details</th></tr>"
            f"{''.join(listed)}</table>{more}</details>{trunc}")
