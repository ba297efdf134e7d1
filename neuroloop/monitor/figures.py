"""The report's figures, one function each: :class:`SessionData` in, matplotlib Figure out.

Every function draws whatever the recording holds (any number of states, contacts, programs,
continuous outputs; unlabelled truth; no summary after a crash) and returns ``None`` when
there is nothing to draw. Long series are decimated (:func:`~.session_data.envelope`: min, max
and mean per bucket) so an hour draws as fast as a minute. Figures use matplotlib's
object API (no pyplot state), so they can be drawn from any thread.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Final

import numpy as np

from ..safety.events import SupervisorState
from ..stimulation.programs import ProgramSet
from .layout import draw_array
from .session_data import MAX_POINTS, SessionData, bucket_edges, envelope

__all__ = ["FIGURES", "intention_figure", "confusion_figure", "stimulation_figure",
           "layout_figure", "envelope_figure", "outputs_figure", "supervisor_figure",
           "latency_figure", "device_figure", "interlock_rows", "recorded_programs"]

_WIDTH_IN = 10.0
_LAYOUT: Final = "constrained"


def _figure(height_in: float, **kw: Any) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(_WIDTH_IN, height_in), layout=_LAYOUT, **kw)


def _state_colours(n: int) -> Any:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps["tab10" if n <= 10 else "tab20"]
    colours = [(0.85, 0.85, 0.85, 1.0)] + [base(i % base.N) for i in range(max(n - 1, 0))]
    return ListedColormap(colours[:max(n, 1)])


def _pick(edges: np.ndarray) -> np.ndarray:
    """One representative row per bucket (its first)."""
    return edges[:-1]


def _name(names: tuple[str, ...] | list[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else ("unknown" if i < 0 else str(i))


# -- intention ----------------------------------------------------------------------------------
def intention_figure(d: SessionData) -> Any:
    """Decoded vs true intention: a ribbon per state (rows: true, decoded, mismatch)."""
    if d.n_cycles == 0:
        return None
    from matplotlib.patches import Patch

    names = d.recording.intention_names or tuple(
        str(i) for i in range(d.recording.n_states))
    n_states = max(len(names), 1)
    edges = bucket_edges(d.n_cycles, 4 * MAX_POINTS)
    idx = _pick(edges)
    labelled = d.true_state >= 0
    mismatch = labelled & (d.true_state != d.state)
    # a bucket is marked when any of its cycles was a mismatch: a single one stays visible
    mis_bucket = np.maximum.reduceat(mismatch.astype(np.int8), idx) > 0
    true_row = np.ma.masked_less(d.true_state[idx].astype(float), 0)
    dec_row = np.ma.masked_less(d.state[idx].astype(float), 0)
    fig = _figure(2.6)
    ax = fig.add_subplot()
    cmap = _state_colours(n_states)
    extent_t = (float(d.t_s[0]), float(d.t_s[-1]) if d.n_cycles > 1 else float(d.t_s[0]) + 1)
    for row, values in enumerate((true_row, dec_row)):
        ax.imshow(values[np.newaxis, :], aspect="auto", cmap=cmap, vmin=-0.5,
                  vmax=n_states - 0.5, interpolation="nearest",
                  extent=(extent_t[0], extent_t[1], row + 0.9, row + 0.1))
    ax.imshow(np.ma.masked_equal(mis_bucket[np.newaxis, :].astype(float), 0), aspect="auto",
              cmap="autumn", vmin=0, vmax=1, interpolation="nearest",
              extent=(extent_t[0], extent_t[1], 2.9, 2.1))
    ax.set_ylim(3.0, 0.0)
    ax.set_yticks([0.5, 1.5, 2.5], ["true", "decoded", "mismatch"])
    ax.set_xlim(*extent_t)
    ax.set_xlabel("time (s)")
    n_lab = int(labelled.sum())
    acc = (f"{100.0 * (1 - mismatch.sum() / n_lab):.1f} % of {n_lab} labelled cycles agree"
           if n_lab else "no ground truth in this recording (true state unknown)")
    ax.set_title(f"Decoded vs true intention: {acc}", fontsize=10)
    ax.legend(handles=[Patch(color=cmap(i), label=_name(names, i)) for i in range(n_states)]
              + [Patch(color="red", label="mismatch")], fontsize=7,
              ncol=min(n_states + 1, 8), loc="upper center", bbox_to_anchor=(0.5, -0.35))
    return fig


def confusion_figure(d: SessionData) -> Any:
    """Confusion matrix of the gated decoded state against the truth (row-normalised)."""
    labelled = d.true_state >= 0
    if not labelled.any():
        return None
    names = d.recording.intention_names or tuple(
        str(i) for i in range(d.recording.n_states))
    n = max(len(names), int(d.true_state.max()) + 1, int(d.state.max()) + 1)
    t = d.true_state[labelled].astype(np.int64)
    s = np.clip(d.state[labelled].astype(np.int64), 0, n - 1)
    counts = np.bincount(t * n + s, minlength=n * n).reshape(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts / counts.sum(axis=1, keepdims=True)
    size = min(7.0, 2.5 + 0.45 * n)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size + 1.5, size), layout=_LAYOUT)
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(frac), cmap="Blues", vmin=0, vmax=1)
    labels = [_name(names, i) for i in range(n)]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("decoded (gated)")
    ax.set_ylabel("true")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, f"{frac[i, j]:.2f}\n{counts[i, j]}", ha="center",
                            va="center", fontsize=6,
                            color="white" if frac[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, label="fraction of true-state cycles")
    ax.set_title("Confusion matrix", fontsize=10)
    return fig


# -- stimulation -------------------------------------------------------------------------------
def recorded_programs(d: SessionData) -> ProgramSet | None:
    """The recording's programs, from its configuration; None when they cannot be rebuilt.

    A configuration this version cannot parse as a whole (written by a newer neuroloop with
    keys this one does not know) still gives its programs when its ``[stimulation]`` table
    alone does: the report draws programs, it does not run them.
    """
    cfg = d.meta.get("config")
    if not isinstance(cfg, dict):
        return None
    programs: ProgramSet | None = None
    try:
        from ..config import scenario_from_dict
        from ..stimulation.programs import build_program_set

        scenario = scenario_from_dict(cfg, label="recording config")
        programs = build_program_set(scenario.stimulation, scenario.intention_names)
    except Exception:  # noqa: BLE001 - another version's config: the stimulation table alone
        programs = _programs_from_table(cfg.get("stimulation"), d.recording.intention_names)
    if programs is None or programs.array.n_contacts != d.recording.n_contacts:
        return None
    return programs


def _programs_from_table(table: Any, intentions: tuple[str, ...]) -> ProgramSet | None:
    from ..stimulation.electrodes import electrode_array
    from ..stimulation.programs import StimProgram

    try:
        array = electrode_array(str(table.get("array", "paddle-5-6-5")))
        progs = []
        for p in table.get("programs", []):
            progs.append(StimProgram.from_contacts(
                array, intentions.index(p["intention"]), p["intention"], p["cathodes"],
                p.get("anodes", {}), float(p["frequency_hz"]), float(p["pulse_width_us"]),
                (float(p["amplitude_ma"][0]), float(p["amplitude_ma"][1])),
                float(p.get("interphase_gap_us", 0.0))))  # not drawn: any valid gap will do
        return ProgramSet(array, intentions, tuple(progs))
    except Exception:  # noqa: BLE001 - draw without programs
        return None


def _signed_max(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.where(np.abs(lo) > np.abs(hi), lo, hi)


def stimulation_figure(d: SessionData, programs: ProgramSet | None) -> Any:
    """Per-contact amplitude over time (heatmap, cathodic negative) and the active program."""
    if d.n_cycles == 0:
        return None
    edges = bucket_edges(d.n_cycles, MAX_POINTS)
    lo, hi, _ = envelope(d.amplitude_ma, edges)
    peak = np.nan_to_num(_signed_max(lo, hi))  # per bucket, the current of largest magnitude
    n_c = d.recording.n_contacts
    names = (programs.array.contact_names if programs is not None
             else tuple(f"#{i}" for i in range(n_c)))
    fig = _figure(1.6 + 0.17 * n_c + 0.8)
    gs = fig.add_gridspec(2, 1, height_ratios=[max(n_c, 2), 1.5])
    ax = fig.add_subplot(gs[0])
    vmax = float(np.nanmax(np.abs(d.amplitude_ma))) if d.amplitude_ma.size else 0.0
    vmax = vmax if vmax > 0 else 1.0
    t0, t1 = float(d.t_s[0]), float(d.t_s[-1]) if d.n_cycles > 1 else float(d.t_s[0]) + 1
    im = ax.imshow(peak.T, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   interpolation="nearest", extent=(t0, t1, n_c - 0.5, -0.5))
    ax.set_yticks(range(n_c), names, fontsize=6)
    ax.set_ylabel("contact")
    ax.set_title("Delivered amplitude per contact (mA; cathodic negative)"
                 + ("" if edges.size - 1 == d.n_cycles
                    else f"; largest magnitude per {d.n_cycles / (edges.size - 1):.0f} cycles"),
                 fontsize=10)
    fig.colorbar(im, ax=ax, label="mA", pad=0.01)
    ax2 = fig.add_subplot(gs[1], sharex=ax)
    pid = np.maximum.reduceat(d.program_id.astype(np.int64), _pick(edges))
    intention_names = d.recording.intention_names
    n_states = max(len(intention_names), int(d.program_id.max()) + 1, 1)
    ax2.imshow(np.ma.masked_less_equal(pid[np.newaxis, :].astype(float), 0), aspect="auto",
               cmap=_state_colours(n_states), vmin=-0.5, vmax=n_states - 0.5,
               interpolation="nearest", extent=(t0, t1, 1, 0))
    ax2.set_yticks([0.5], ["program"])
    ax2.set_xlabel("time (s)")
    used = sorted({int(p) for p in np.unique(d.program_id) if p > 0})
    ax2.set_title("active program: " + (", ".join(_name(intention_names, p) for p in used)
                                        or "none (no stimulation)"), fontsize=8)
    return fig


def layout_figure(d: SessionData, programs: ProgramSet | None) -> Any:
    """Each program drawn on the electrode's real layout at its median delivered amplitude
    (or, without programs, the largest current each contact carried)."""
    if programs is None:
        return None
    amp = d.program_amplitude_ma
    progs = list(programs)
    if not progs:
        return None
    share = {p.program_id: float(np.mean(d.program_id == p.program_id)) if d.n_cycles else 0.0
             for p in progs}
    progs.sort(key=lambda p: -share[p.program_id])
    progs = progs[:8]
    cols = min(len(progs), 4)
    rows = math.ceil(len(progs) / cols)
    from matplotlib.figure import Figure

    ys = programs.array.position_mm[:, 1]
    tall = float(ys.max() - ys.min()) > 20.0 or programs.array.n_contacts > 8
    fig = Figure(figsize=(_WIDTH_IN, (4.2 if tall else 3.0) * rows), layout=_LAYOUT)
    vmax = max(float(np.abs(d.amplitude_ma).max()) if d.amplitude_ma.size else 0.0,
               max(p.amplitude_max_ma for p in progs))
    for k, p in enumerate(progs):
        ax = fig.add_subplot(rows, cols, k + 1)
        on = (d.program_id == p.program_id) & (amp > 0)
        level = float(np.median(amp[on])) if on.any() else p.amplitude_min_ma
        current = (p.anode_fraction - p.cathode_fraction) * level
        draw_array(ax, programs.array, current, vmax=vmax,
                   title=f"{p.name}\n{100 * share[p.program_id]:.1f} % of cycles, "
                         f"median {level:.2f} mA" + ("" if on.any() else " (never on)"))
    fig.suptitle(f"Programs on {programs.array.name} (blue: cathode, red: anode)", fontsize=10)
    return fig


def envelope_figure(d: SessionData, programs: ProgramSet | None) -> Any:
    """Each program's delivered amplitude against its clinician envelope [min, max] mA."""
    if programs is None or not len(programs) or d.n_cycles == 0:
        return None
    progs = list(programs)
    cols = 2 if len(progs) > 1 else 1
    rows = math.ceil(len(progs) / cols)
    fig = _figure(1.7 * rows + 0.4)
    amp = d.program_amplitude_ma
    edges = bucket_edges(d.n_cycles, MAX_POINTS)
    t = d.t_s[_pick(edges)]
    axes: list[Any] = []
    for k, p in enumerate(progs):
        ax = fig.add_subplot(rows, cols, k + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        mine = np.where(d.program_id == p.program_id, amp, np.nan)
        lo, hi, _ = envelope(mine, edges)
        ax.axhspan(p.amplitude_min_ma, p.amplitude_max_ma, color="#c8e6c9",
                   label="clinician envelope")
        ax.fill_between(t, np.nan_to_num(lo), np.nan_to_num(hi), step="post", color="#1f77b4",
                        where=np.isfinite(hi), label="delivered")
        over = int(np.sum(mine > p.amplitude_max_ma + 1e-9))
        top = float(np.nanmax(mine)) if np.isfinite(mine).any() else float("nan")
        ax.set_ylim(0, max(p.amplitude_max_ma, top if math.isfinite(top) else 0) * 1.15 + 0.1)
        ax.set_title(f"{p.name}: max {top:.2f} mA in [{p.amplitude_min_ma:g}, "
                     f"{p.amplitude_max_ma:g}] mA" + (f"; {over} cycles ABOVE" if over else ""),
                     fontsize=8, color="red" if over else "black")
        ax.set_ylabel("mA", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6, loc="upper right")
    for ax in axes[-cols:]:
        ax.set_xlabel("time (s)", fontsize=7)
    fig.suptitle("Program amplitude (total cathodic current) against the clinician envelope",
                 fontsize=10)
    return fig


# -- decoder outputs ---------------------------------------------------------------------------
def _thresholds(meta: dict[str, Any], output_names: tuple[str, ...]
                ) -> dict[str, list[tuple[str, float]]]:
    """Thresholds the scenario's [control] and [decoder] tables set, by output they apply to.

    A numeric key whose name contains ``threshold`` applies to the output named by the table's
    ``output`` (or ``*_output``) key when there is one, else to the output of the same name
    prefix; keys that apply to no output are drawn on the confidence (``"confidence"``).
    """
    out: dict[str, list[tuple[str, float]]] = {}
    cfg: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    for table_name in ("control", "decoder"):
        table = cfg.get(table_name)
        if not isinstance(table, dict):
            continue
        target = next((v for k, v in table.items()
                       if (k == "output" or k.endswith("_output")) and v in output_names), None)
        for key, value in table.items():
            if "threshold" not in key:
                continue
            values = value if isinstance(value, list) else [value]
            for j, v in enumerate(values):
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    name = next((o for o in output_names if key.startswith(o)), None)
                    where = target or name or "confidence"
                    label = f"{table_name}.{key}" + (f"[{j}]" if len(values) > 1 else "")
                    out.setdefault(where, []).append((label, float(v)))
    return out


def outputs_figure(d: SessionData) -> Any:
    """The decoder's continuous outputs and confidence over time, with scenario thresholds."""
    if d.n_cycles == 0:
        return None
    rec = d.recording
    names = list(rec.output_names)
    units = list(rec.output_units)
    series = [d.outputs[:, i] for i in range(rec.n_outputs)]
    if "confidence" not in names:  # the record's own confidence, unless an output is it
        names, units, series = names + ["confidence"], units + ["1"], series + [d.confidence]
    thresholds = _thresholds(d.meta, rec.output_names)
    edges = bucket_edges(d.n_cycles, MAX_POINTS)
    t = d.t_s[_pick(edges)]
    fig = _figure(1.2 + 1.25 * len(series))
    axes: list[Any] = []
    for i, (name, unit, values) in enumerate(zip(names, units, series, strict=True)):
        ax = fig.add_subplot(len(series), 1, i + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        lo, hi, mean = envelope(values, edges)
        ax.fill_between(t, lo, hi, step="post", color="#9ecae1", lw=0)
        ax.plot(t, mean, drawstyle="steps-post", lw=0.7, color="#08519c")
        for label, value in thresholds.get(name, []):
            ax.axhline(value, color="#d62728", ls="--", lw=0.8)
            ax.text(t[0] if t.size else 0, value, f" {label} = {value:g}", color="#d62728",
                    fontsize=6, va="bottom")
        ax.set_ylabel(f"{name}\n({unit or '?'})", fontsize=7)
        ax.tick_params(labelsize=6)
        nan = int(np.sum(~np.isfinite(values)))
        if nan:
            ax.set_title(f"{nan} cycles without a value (stalled or invalid input)", fontsize=7,
                         loc="right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("Continuous decoder outputs" + ("" if rec.n_outputs else
                                                 " (none recorded: format 1 or no outputs)")
                 + ("" if edges.size - 1 == d.n_cycles else
                    "; band = min..max per bucket, line = mean"), fontsize=10)
    return fig


# -- supervisor --------------------------------------------------------------------------------
def interlock_rows(d: SessionData) -> list[tuple[int, float, dict[str, Any]]]:
    """``(cycle, t_s, event)`` of every event with a reason or a safety input, in order."""
    if d.n_cycles == 0:
        return []
    c0 = int(d.cycle[0])
    out = []
    for ev in d.events:
        if ev.get("kind") not in ("interlock", "link_input") and "reason" not in ev:
            continue
        try:
            c = int(ev.get("cycle", c0))
        except (TypeError, ValueError):
            c = c0
        k = min(max(c - c0, 0), d.n_cycles - 1)
        out.append((c, float(d.t_s[k]), ev))
    return out


def _event_label(ev: dict[str, Any]) -> str:
    if ev.get("kind") == "link_input":
        return f"input:{ev.get('input')}"
    return str(ev.get("reason", ev.get("kind", "?")))


def supervisor_figure(d: SessionData) -> Any:
    """Supervisor state over time with every interlock event marked (one row per reason)."""
    if d.n_cycles == 0:
        return None
    rows = interlock_rows(d)
    reasons = [r for r, _ in Counter(_event_label(ev) for _, _, ev in rows).most_common()]
    fig = _figure(1.8 + 0.22 * max(len(reasons), 1) + 1.6)
    gs = fig.add_gridspec(2, 1, height_ratios=[2.0, 0.6 + 0.25 * max(len(reasons), 1)])
    ax = fig.add_subplot(gs[0])
    edges = bucket_edges(d.n_cycles, 4 * MAX_POINTS)
    idx = _pick(edges)
    # the worst state of each bucket (FAULT/ESTOP outrank the others) so a latch is never lost
    st = np.maximum.reduceat(d.supervisor_state.astype(np.int64), idx)
    ax.step(d.t_s[idx], st, where="post", lw=1.0, color="black")
    states = list(SupervisorState)
    ax.set_yticks([s.value for s in states], [s.name for s in states], fontsize=7)
    ax.set_ylim(-0.5, len(states) - 0.5)
    for s, colour in ((SupervisorState.HOLD, "#fff3cd"), (SupervisorState.FAULT, "#f8d7da"),
                      (SupervisorState.ESTOP, "#f5c6cb")):
        ax.axhspan(s.value - 0.4, s.value + 0.4, color=colour, zorder=0)
    secs = {name: float(v) for name, v in
            ((d.meta.get("summary") or {}).get("time_in_state_s") or {}).items()
            if isinstance(v, int | float)}
    ax.set_title("Supervisor state" + (("; time in state (s): " + ", ".join(
        f"{k} {v:g}" for k, v in secs.items())) if secs else ""), fontsize=9)
    ax2 = fig.add_subplot(gs[1], sharex=ax)
    if rows:
        ymap = {r: i for i, r in enumerate(reasons)}
        ts = np.array([t for _, t, _ in rows])
        ys = np.array([ymap[_event_label(ev)] for _, _, ev in rows])
        ax2.scatter(ts, ys, marker="|", s=60, c=ys, cmap="tab10", vmin=0, vmax=9)
        counts = Counter(_event_label(ev) for _, _, ev in rows)
        ax2.set_yticks(range(len(reasons)), [f"{r} ({counts[r]})" for r in reasons], fontsize=7)
        ax2.set_ylim(len(reasons) - 0.5, -0.5)
    else:
        ax2.set_yticks([])
        ax2.text(0.5, 0.5, "no interlock events", transform=ax2.transAxes, ha="center")
    ax2.set_xlabel("time (s)")
    ax2.set_xlim(float(d.t_s[0]), float(d.t_s[-1]) + 1e-9)
    return fig


# -- latency -----------------------------------------------------------------------------------
def latency_figure(d: SessionData) -> Any:
    """Histogram and CDF of compute and end-to-end time with the deadline; per-stage p50/p99."""
    if d.n_cycles == 0:
        return None
    summary = d.meta.get("summary") or {}
    options = d.meta.get("options") or {}
    deadline_ms = summary.get("deadline_ms", options.get("deadline_ms"))
    stages = summary.get("stages_us") or {}
    fig = _figure(3.4)
    axes = fig.subplots(1, 3 if stages else 2)
    series = (("compute", d.compute_us, "#1f77b4"), ("end-to-end", d.e2e_us, "#ff7f0e"))
    finite = [v[np.isfinite(v) & (v > 0)] for _, v, _ in series]
    top = max((float(v.max()) for v in finite if v.size), default=1.0)
    bottom = min((float(v.min()) for v in finite if v.size), default=1.0)
    if isinstance(deadline_ms, int | float):
        top = max(top, deadline_ms * 1000.0)
    bins = np.geomspace(max(bottom, 0.1), max(top, bottom * 1.01 + 1), 80)
    for (label, _, colour), v in zip(series, finite, strict=True):
        if not v.size:
            continue
        axes[0].hist(v, bins=bins, histtype="step", color=colour, label=f"{label} ({v.size})")
        # the CDF at <= MAX_POINTS quantiles (an hour draws like a minute)
        q = np.linspace(0.0, 1.0, min(v.size, MAX_POINTS))
        axes[1].plot(np.quantile(v, q), q, color=colour, label=label)
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.set_xlabel("µs")
        if isinstance(deadline_ms, int | float):
            ax.axvline(deadline_ms * 1000.0, color="red", ls="--",
                       label=f"deadline {deadline_ms:g} ms")
        ax.legend(fontsize=7)
    misses = int(d.deadline_missed.sum())
    axes[0].set_title(f"Latency histogram ({misses} deadline misses)", fontsize=9)
    axes[0].set_ylabel("cycles")
    axes[1].set_title("CDF", fontsize=9)
    axes[1].set_ylabel("fraction of cycles")
    if stages:
        names = list(stages)
        p50 = [float(stages[n].get("p50") or 0) for n in names]
        p99 = [float(stages[n].get("p99") or 0) for n in names]
        y = np.arange(len(names))
        axes[2].barh(y - 0.2, p50, height=0.4, label="p50")
        axes[2].barh(y + 0.2, p99, height=0.4, label="p99")
        axes[2].set_yticks(y, names, fontsize=7)
        axes[2].invert_yaxis()
        axes[2].set_xlabel("µs")
        axes[2].set_title("Per-stage time (run summary)", fontsize=9)
        axes[2].legend(fontsize=7)
    return fig


# -- device runs -------------------------------------------------------------------------------
_LINK_COUNTERS = ("frames_lost", "samples_lost", "crc_errors", "malformed_frames",
                  "auth_failures", "reconnects", "acks_missing")


def device_figure(d: SessionData) -> Any:
    """Device runs: link safety inputs over time, impedance per contact, link counters, RTT,
    battery. None for a run without a device."""
    summary = d.meta.get("summary") or {}
    link = summary.get("link") if isinstance(summary.get("link"), dict) else None
    options = d.meta.get("options") or {}
    inputs = [(t, ev) for _, t, ev in interlock_rows(d) if ev.get("kind") == "link_input"
              and ev.get("input") not in ("estop", "rearm")]  # operator inputs: supervisor
    from .link_log import read_link_log

    rows = read_link_log(d.recording.path)
    if link is None and not options.get("device") and not inputs and not rows:
        return None
    fig = _figure(5.2)
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    kinds = sorted({str(ev.get("input")) for _, ev in inputs if ev.get("input") != "impedance"})
    for i, kind in enumerate(kinds):
        ts = [t for t, ev in inputs if ev.get("input") == kind]
        ax.scatter(ts, [i] * len(ts), marker="|", s=80)
    ax.set_yticks(range(len(kinds)), kinds, fontsize=7)
    if not kinds:
        ax.text(0.5, 0.5, "no heartbeat loss, stall, NAK storm or device fault", ha="center",
                transform=ax.transAxes)
    ax.set_title("Link safety inputs over time", fontsize=9)
    ax.set_xlabel("time (s)")
    ax = axes[0, 1]
    imp: list[tuple[float, list[Any]]] = [
        (t, ev["payload"]) for t, ev in inputs
        if ev.get("input") == "impedance" and isinstance(ev.get("payload"), list)]
    if imp:
        times = np.array([t for t, _ in imp])
        z = np.array([[float(x) if isinstance(x, int | float) else np.nan for x in p]
                      for _, p in imp])
        for c in range(z.shape[1]):
            ax.step(times, z[:, c], where="post", lw=0.8, label=f"#{c}")
        ax.set_yscale("log")
        ax.set_ylabel("ohm")
        ax.set_title(f"Impedance per contact ({len(imp)} reports)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no impedance reports recorded", ha="center",
                transform=ax.transAxes)
        ax.set_title("Impedance per contact", fontsize=9)
    ax = axes[1, 0]
    if rows:  # link.jsonl: the counters over time
        t = np.array([float(r.get("t_s", 0.0)) for r in rows])
        for key in ("frames_lost", "samples_lost", "crc_errors", "malformed_frames", "naks",
                    "acks_missing", "reconnects", "heartbeats_missed", "auth_failures"):
            v = np.array([float(r.get(key) or 0) for r in rows])
            if v.any():
                ax.step(t, v, where="post", label=key)
        ax.set_xlabel("time since start (s)")
        ax.set_ylabel("count (cumulative)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no frame lost, no CRC error, no NAK", ha="center",
                    transform=ax.transAxes)
        ax.set_title(f"Link counters over time (frames received "
                     f"{rows[-1].get('frames_received')})", fontsize=9)
    elif link:
        naks = link.get("naks") or {}
        counters = {k: link.get(k) for k in _LINK_COUNTERS}
        counters["naks"] = naks.get("total") if isinstance(naks, dict) else None
        names = [k for k, v in counters.items() if isinstance(v, int | float)]
        ax.barh(range(len(names)), [float(counters[k] or 0) for k in names])
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"Link counters at the end (frames received "
                     f"{link.get('frames_received')}, battery {link.get('battery_pct')} %)",
                     fontsize=9)
    else:
        ax.text(0.5, 0.5, "no link summary (recording not closed cleanly)", ha="center",
                transform=ax.transAxes)
    ax = axes[1, 1]
    if rows:
        t = np.array([float(r.get("t_s", 0.0)) for r in rows])
        rtt_t = np.array([np.nan if r.get("rtt_us") is None else float(r["rtt_us"])
                          for r in rows])
        ax.plot(t, rtt_t, marker=".", lw=0.8, label="RTT (median per interval)")
        ax.set_ylabel("RTT (µs)")
        ax.set_xlabel("time since start (s)")
        battery = np.array([np.nan if r.get("battery_pct") is None else float(r["battery_pct"])
                            for r in rows])
        if np.isfinite(battery).any():
            ax2 = ax.twinx()
            ax2.plot(t, battery, color="green", lw=1.0)
            ax2.set_ylabel("battery (%)", color="green")
        ax.set_title("Link round trip and battery over time", fontsize=9)
        fig.suptitle("Device link", fontsize=10)
        return fig
    rtt = (link or {}).get("link_rtt_us")
    dev = (link or {}).get("device_latency_us")
    bars = [(f"rtt {k}", v) for k, v in (rtt or {}).items() if isinstance(v, int | float)]
    bars += [(f"device {k}", v) for k, v in (dev or {}).items() if isinstance(v, int | float)]
    if bars:
        ax.barh(range(len(bars)), [v for _, v in bars])
        ax.set_yticks(range(len(bars)), [k for k, _ in bars], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("µs")
    ax.set_title("Link round trip and device latency", fontsize=9)
    fig.suptitle("Device link", fontsize=10)
    return fig


#: (file stem, title, function, needs programs) in report order.
FIGURES: tuple[tuple[str, str, Any, bool], ...] = (
    ("intention", "Decoded vs true intention", intention_figure, False),
    ("confusion", "Confusion matrix", confusion_figure, False),
    ("stimulation", "Stimulation per contact", stimulation_figure, True),
    ("programs", "Programs on the electrode layout", layout_figure, True),
    ("envelope", "Program amplitude vs clinician envelope", envelope_figure, True),
    ("outputs", "Continuous decoder outputs", outputs_figure, False),
    ("supervisor", "Supervisor state and interlocks", supervisor_figure, False),
    ("latency", "Latency", latency_figure, False),
    ("device", "Device link", device_figure, False),
)
