"""``neuroloop bench patient-bsi`` / ``patient-eeg-bci``: the synthetic patient's cost per hop.

The synthetic patient runs in the prefetch thread (:mod:`.prefetch`), so a ``--fast`` run can
never go faster than one hop of it. The **neuroloop** path is what that thread calls per hop,
``SyntheticSource._fill_next`` (the compiled :func:`._synth_kernels.synth_block` and its
Python call); the **reference** computes the same hops with SciPy/NumPy: ``sosfilt`` per
run of sources with one filter (``zi`` carried), the envelope recursion with ``lfilter``, a
dense lead-field product, the mains with ``np.sin``/``np.cos`` and the rail clip, from the
same white deviates (the reference draws them with :func:`._synth_kernels.normal_fill`: the
random stream itself is not what is compared). Artifacts are off in these workloads, so that
the reference stays short; they cost nothing between events.

The two paths run in lockstep on two sources with the same seed (garbage collector off, as
in the loop); every hop's samples are compared.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import scipy.signal

from ..stats import latency_stats_us
from . import _synth_kernels as K
from .synthetic import SyntheticSource

__all__ = ["bench_patient_bsi", "bench_patient_eeg"]


class _ReferencePatient:
    """The patient model of ``src`` (not read yet) hop by hop in SciPy/NumPy."""

    def __init__(self, src: SyntheticSource) -> None:
        m = src._model
        self._m = m
        self._schedule = src.schedule
        self._rng = src._rng.copy()
        self._alpha = src._env_alpha
        self._fs = src.info.sampling_rate_hz
        self._rail = src.rail_uv
        self._runs = K.source_runs(K.pack_sections(m.sos, m.n_sections))
        run_ptr, run_sos = self._runs
        self._zi = [np.zeros((run_sos.shape[1], 2, int(run_ptr[r + 1] - run_ptr[r])))
                    for r in range(run_sos.shape[0])]
        n_src = m.sos.shape[0]
        self._env = np.ones(n_src)
        self._lead = np.zeros((n_src, src.info.n_channels))
        for s in range(n_src):
            for j in range(m.mix_ptr[s], m.mix_ptr[s + 1]):
                self._lead[s, m.mix_ch[j]] += m.mix_w[j]
        self._next = 0

    def hop(self, n: int) -> np.ndarray:
        m = self._m
        idx = np.arange(self._next, self._next + n)
        self._next += n
        z = np.empty((n, self._env.shape[0]))
        K.normal_fill(self._rng, z.reshape(-1))  # sample-major, then source, as the kernel
        run_ptr, run_sos = self._runs
        for r in range(run_sos.shape[0]):
            s0, s1 = int(run_ptr[r]), int(run_ptr[r + 1])
            z[:, s0:s1], self._zi[r] = scipy.signal.sosfilt(run_sos[r], z[:, s0:s1], axis=0,
                                                            zi=self._zi[r])
        sch = self._schedule
        seg = np.searchsorted(sch.onsets, idx, side="right") - 1
        targets = np.exp(sch.strengths[seg][:, None] * m.logmod[sch.states[seg]])
        a = self._alpha
        env, _ = scipy.signal.lfilter([a], [1.0, a - 1.0], targets, axis=0,
                                      zi=((1.0 - a) * self._env)[None, :])
        self._env = env[-1]
        out = (z * env) @ self._lead
        for h in range(m.line_hz.shape[0]):
            phase = 2.0 * np.pi * np.mod(idx * m.line_hz[h], self._fs) / self._fs
            out += np.sin(phase)[:, None] * m.line_a[h] + np.cos(phase)[:, None] * m.line_b[h]
        np.clip(out, -self._rail, self._rail, out=out)
        return out


def _bench_patient(preset: str, hop: int, n_hops: int, warmup_hops: int) -> dict[str, Any]:
    fast_src = SyntheticSource(preset, seed=1, artifact_rate_per_min=0.0)
    ref = _ReferencePatient(SyntheticSource(preset, seed=1, artifact_rate_per_min=0.0))
    fast_src.warmup()
    n_ch = fast_src.info.n_channels
    out = np.zeros((hop, n_ch))
    labels = np.zeros(hop, np.int8)
    t_fast = np.zeros(n_hops, np.int64)
    t_ref = np.zeros(n_hops, np.int64)
    max_abs = 0.0
    max_rel = 0.0
    perf = time.perf_counter_ns
    fill = fast_src._fill_next
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for k in range(warmup_hops + n_hops):
            t0 = perf()
            fill(out, labels)
            t1 = perf()
            expected = ref.hop(hop)
            t2 = perf()
            if k >= warmup_hops:
                t_fast[k - warmup_hops] = t1 - t0
                t_ref[k - warmup_hops] = t2 - t1
                d = np.abs(out - expected)
                max_abs = max(max_abs, float(d.max()))
                # relative to the hop's largest sample (single samples cross zero)
                max_rel = max(max_rel, float(d.max()) / max(float(np.abs(expected).max()),
                                                            1e-300))
    finally:
        if gc_was_enabled:
            gc.enable()
    fast_us = latency_stats_us(t_fast)
    ref_us = latency_stats_us(t_ref)
    return {
        "workload": f"patient-{preset}",
        "description": f"synthetic patient {preset}: one {hop}-sample hop of {n_ch} channels "
                       f"({fast_src._envelope.shape[1]} sources), as the prefetch thread "
                       "makes it; reference SciPy sosfilt/lfilter + NumPy",
        "n_hops": int(n_hops), "warmup_hops": int(warmup_hops), "n_channels": n_ch,
        "sampling_rate_hz": fast_src.info.sampling_rate_hz, "hop_samples": hop,
        "neuroloop_us": fast_us, "reference_us": ref_us,
        "speedup_median": (ref_us["p50"] / fast_us["p50"] if fast_us["p50"] > 0
                           else float("inf")),
        "max_abs_diff": max_abs, "max_rel_diff": max_rel,
        # at most this many times real time for a --fast run fed by this patient
        "max_realtime_factor": (hop / fast_src.info.sampling_rate_hz * 1e6 / fast_us["p50"]
                                if fast_us["p50"] > 0 else float("inf")),
    }


def bench_patient_bsi(n_hops: int = 3000, warmup_hops: int = 100) -> dict[str, Any]:
    """The bsi patient (64 ch x 586 Hz, 193 sources), 59-sample hops; target p50 <= 70 us."""
    res = _bench_patient("bsi", 59, n_hops, warmup_hops)
    res["targets"] = {"p50<=70us": bool(res["neuroloop_us"]["p50"] <= 70.0),
                      "max_rel_diff<=1e-9": bool(res["max_rel_diff"] <= 1e-9)}
    return res


def bench_patient_eeg(n_hops: int = 3000, warmup_hops: int = 100) -> dict[str, Any]:
    """The eeg-bci patient (32 ch x 250 Hz, 38 sources), 25-sample hops."""
    res = _bench_patient("eeg-bci", 25, n_hops, warmup_hops)
    res["targets"] = {"max_rel_diff<=1e-9": bool(res["max_rel_diff"] <= 1e-9)}
    return res
