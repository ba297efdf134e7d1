"""Turn a :class:`~neuroloop.runtime.loop.LoopResult` into the run summary (plain numbers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..acquisition.base import NO_LABEL
from ..stats import percentiles_us

__all__ = ["accuracy", "intent_to_stim", "summarise"]


def accuracy(true_state: np.ndarray, state: np.ndarray) -> tuple[float, int]:
    """Fraction of labelled hops whose gated decoded state equals the truth, and the count."""
    mask = true_state != NO_LABEL
    n = int(mask.sum())
    if n == 0:
        return float("nan"), 0
    return float(np.mean(state[mask] == true_state[mask])), n


def intent_to_stim(true_state: np.ndarray, program_id: np.ndarray, stim_on: np.ndarray,
                   last_sample: np.ndarray, e2e_ns: np.ndarray, sampling_rate_hz: float,
                   onsets: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Delay from each true movement onset to the first command of its program.

    Parameters
    ----------
    true_state, program_id, stim_on, last_sample, e2e_ns : ndarray, shape (n_cycles,)
        Per-cycle ground truth, command program, whether current flowed, stream index of
        the hop's last sample, and end-to-end latency (ns).
    sampling_rate_hz : float
    onsets : list of (sample_index, state) or None
        Exact onsets from the source's schedule. Without them an onset is placed at the
        first sample after the last hop whose label was different (hop resolution, which
        can only overstate the delay).

    Returns
    -------
    dict with ``median_ms``, ``p90_ms``, ``onsets`` (movement onsets seen), ``matched``
    (onsets whose program was commanded before the intention ended) and ``missed``.
    """
    n = true_state.shape[0]
    fs = float(sampling_rate_hz)
    if n == 0:
        return {"median_ms": float("nan"), "p90_ms": float("nan"), "onsets": 0,
                "matched": 0, "missed": 0}
    events: list[tuple[int, int, int]] = []  # (onset_sample, state, first cycle to search)
    if onsets is not None:
        lo, hi = int(last_sample[0]), int(last_sample[-1])
        for sample, state in onsets:
            if state <= 0 or not (lo < sample <= hi):
                continue
            c = int(np.searchsorted(last_sample, sample))
            events.append((int(sample), int(state), c))
    else:
        prev = int(true_state[0])
        for c in range(1, n):
            s = int(true_state[c])
            if s != prev and s > 0:
                events.append((int(last_sample[c - 1]) + 1, s, c))
            if s != NO_LABEL:
                prev = s
    delays_ms: list[float] = []
    missed = 0
    for onset_sample, state, c0 in events:
        found = False
        for c in range(c0, n):
            if true_state[c] != state and true_state[c] != NO_LABEL and c > c0 + 1:
                break
            if program_id[c] == state and stim_on[c]:
                t_cmd = (last_sample[c] + 1) / fs + e2e_ns[c] / 1e9
                delays_ms.append((t_cmd - onset_sample / fs) * 1000.0)
                found = True
                break
        if not found:
            missed += 1
    if delays_ms:
        d = np.asarray(delays_ms)
        med, p90 = float(np.median(d)), float(np.percentile(d, 90))
    else:
        med = p90 = float("nan")
    return {"median_ms": round(med, 1), "p90_ms": round(p90, 1), "onsets": len(events),
            "matched": len(delays_ms), "missed": missed}


def summarise(result: Any, *, deadline_ms: float, mode: str,
              onsets: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """The run summary (JSON-serialisable) of a finished loop."""
    acc, acc_n = accuracy(result.true_state, result.state)
    its = intent_to_stim(result.true_state, result.program_id, result.stim_on,
                         result.last_sample, result.e2e_ns, result.sampling_rate_hz, onsets)
    simulated_s = result.cycles * result.hop_samples / result.sampling_rate_hz
    return {
        "mode": mode,
        "cycles": int(result.cycles),
        "simulated_s": round(simulated_s, 3),
        "wall_s": round(result.wall_s, 3),
        "realtime_factor": round(simulated_s / result.wall_s, 1) if result.wall_s > 0 else None,
        "deadline_ms": deadline_ms,
        "deadline_misses": int(result.deadline_misses),
        "compute_us": percentiles_us(result.compute_ns),
        "e2e_us": percentiles_us(result.e2e_ns),
        "stages_us": {name: percentiles_us(v) for name, v in result.stage_ns.items()},
        "accuracy": round(acc, 4) if acc == acc else None,
        "accuracy_hops": acc_n,
        "intent_to_stim_ms": its["median_ms"] if its["matched"] else None,
        "intent_to_stim": its,
        "interlock_events": dict(sorted(result.interlock_events.items())),
        "time_in_state_s": {k: round(v / 1e9, 3) for k, v in result.time_in_state_ns.items()},
        "stall_cycles": int(result.stall_cycles),
        "samples_lost": int(result.samples_lost),
        "jit_compiles_in_loop": int(result.jit_compiles_in_loop),
        "listener_errors": result.listener_errors,
        "stopped_by": result.stopped_by,
    }
