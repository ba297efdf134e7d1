"""``neuroloop bench``: per-hop latency of the compiled path against a SciPy/NumPy reference.

Each workload runs the same math twice in the same process, on the same seeded random input:

* the **neuroloop** path (warmed-up Numba kernels writing into preallocated arrays), and
* a **reference** path written with ``scipy.signal.sosfilt`` (``zi`` carried per band) and
  NumPy (log/mean, matmul, softmax; the HMM gate in plain Python),

and reports latency percentiles per hop (``time.perf_counter_ns`` around the per-hop compute,
garbage collector disabled as in the real loop), the ratio of medians, and the largest
absolute and relative differences between the two outputs over every measured hop.

Other modules add lines with :func:`register_workload`; a workload is a callable
``fn(n_hops, warmup_hops) -> dict`` returning at least ``{"neuroloop_us": {"p50", "p99",
"p999", "max"}}`` (the keys below are all optional for :func:`format_bench`).

Result of one built-in workload::

    {"workload": "bsi-ecog", "description": str, "n_hops": int, "warmup_hops": int,
     "n_channels": int, "sampling_rate_hz": float, "hop_samples": int, "n_features": int,
     "n_outputs": int,
     "neuroloop_us": {"p50", "p99", "p999", "max", "mean"},
     "reference_us": {"p50", "p99", "p999", "max", "mean"},
     "speedup_median": float, "max_abs_diff": float, "max_rel_diff": float,
     "state_mismatches": int | None, "state_changes": int | None,
     "targets": {name: bool}}

``state_mismatches`` counts hops whose gated decoder state differs between the two paths;
``state_changes`` counts gated state transitions of the neuroloop path (so that a gate that
never moves cannot pass unnoticed).
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.signal

from .errors import ConfigError
from .stats import latency_stats_us

__all__ = ["run_bench", "format_bench", "register_workload", "workload_names"]

Workload = Callable[[int, int], dict[str, Any]]

_WORKLOADS: dict[str, Workload | str] = {}
#: Workloads whose callable also takes ``progress=`` (the built-in ones).
_TAKES_PROGRESS: set[str] = set()

#: bsi-ecog bands (Hz), 4th-order Butterworth band-pass each.
BSI_BANDS_HZ = [(8, 12), (13, 20), (20, 30), (30, 45), (55, 70), (70, 90), (90, 110), (110, 140)]
#: eeg bands: mu and beta.
EEG_BANDS_HZ = [(8, 13), (13, 30)]


def register_workload(name: str, fn: Workload | str, *, takes_progress: bool = False) -> None:
    """Add (or replace) a bench line.

    Parameters
    ----------
    name : str
        Workload name as typed on the command line (e.g. ``"supervisor"``).
    fn : callable or str
        ``fn(n_hops, warmup_hops) -> dict`` (see the module docstring), or a
        ``"package.module:function"`` string imported only when the workload runs.
    takes_progress : bool
        True if ``fn`` also accepts ``progress=callable`` for one-line progress messages.
    """
    if not name or not isinstance(name, str):
        raise ValueError("workload name must be a non-empty string")
    if not (callable(fn) or (isinstance(fn, str) and ":" in fn)):
        raise TypeError("fn must be a callable or a 'module:function' string")
    _WORKLOADS[name] = fn
    if takes_progress:
        _TAKES_PROGRESS.add(name)
    else:
        _TAKES_PROGRESS.discard(name)


def workload_names() -> list[str]:
    """Registered workload names, in registration order."""
    return list(_WORKLOADS)


def _resolve(fn: Workload | str) -> Workload:
    if callable(fn):
        return fn
    module, _, attr = fn.partition(":")
    workload: Workload = getattr(importlib.import_module(module), attr)
    return workload


# ---------------------------------------------------------------------------------- harness
class _Path:
    """One implementation of a workload: ``step(hop)`` is timed, ``output``/``state`` are
    read after the timer stopped."""

    output: np.ndarray
    state: int | None = None

    def step(self, hop: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def collect(self) -> np.ndarray:
        """Flat float64 output of the last step (may be a view reused across steps)."""
        return self.output


def _run_path(path: _Path, hop_shape: tuple[int, int], scale: float, seed: int, n_hops: int,
              warmup_hops: int, sink: Callable[[int, np.ndarray, int | None], None]
              ) -> np.ndarray:
    """Feed ``warmup_hops + n_hops`` seeded random hops through ``path``; time each step."""
    rng = np.random.default_rng(seed)
    hop = np.empty(hop_shape)
    times = np.zeros(n_hops, dtype=np.int64)
    perf = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for k in range(warmup_hops + n_hops):
            rng.standard_normal(out=hop)
            np.multiply(hop, scale, out=hop)
            t0 = perf()
            path.step(hop)
            t1 = perf()
            if k >= warmup_hops:
                i = k - warmup_hops
                times[i] = t1 - t0
                sink(i, path.collect(), path.state)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def compare_paths(name: str, fast: _Path, ref: _Path, *, hop_shape: tuple[int, int],
                  n_hops: int, warmup_hops: int, scale: float = 20.0, seed: int = 2024,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time ``fast`` and ``ref`` on the same input and compare their outputs hop by hop."""
    if n_hops < 1 or warmup_hops < 0:
        raise ConfigError(f"bench needs n_hops >= 1 and warmup_hops >= 0, got {n_hops} and "
                          f"{warmup_hops}; use e.g. n_hops=5000")
    n_out = fast.output.shape[0]
    outputs = np.zeros((n_hops, n_out))
    states = np.full(n_hops, -1, dtype=np.int64)

    def keep(i: int, out: np.ndarray, state: int | None) -> None:
        outputs[i] = out
        if state is not None:
            states[i] = state

    if progress:
        progress(f"{name}: neuroloop path, {warmup_hops} + {n_hops} hops")
    t_fast = _run_path(fast, hop_shape, scale, seed, n_hops, warmup_hops, keep)

    diff = {"abs": 0.0, "rel": 0.0, "states": 0}

    def check(i: int, out: np.ndarray, state: int | None) -> None:
        a = outputs[i]
        d = np.abs(a - out)
        ad = float(d.max()) if d.size else 0.0
        den = np.abs(out)
        rel = np.divide(d, den, out=np.where(d > 0, np.inf, 0.0), where=den > 0)
        rd = float(rel.max()) if rel.size else 0.0
        if not np.isfinite(ad) or ad > diff["abs"]:
            diff["abs"] = ad if np.isfinite(ad) else float("inf")
        if not np.isfinite(rd) or rd > diff["rel"]:
            diff["rel"] = rd if np.isfinite(rd) else float("inf")
        if state is not None and state != states[i]:
            diff["states"] += 1

    if progress:
        progress(f"{name}: SciPy/NumPy reference, {warmup_hops} + {n_hops} hops")
    t_ref = _run_path(ref, hop_shape, scale, seed, n_hops, warmup_hops, check)
    fast_us = latency_stats_us(t_fast)
    ref_us = latency_stats_us(t_ref)
    return {
        "workload": name,
        "n_hops": int(n_hops),
        "warmup_hops": int(warmup_hops),
        "n_outputs": int(n_out),
        "neuroloop_us": fast_us,
        "reference_us": ref_us,
        "speedup_median": ref_us["p50"] / fast_us["p50"] if fast_us["p50"] > 0 else float("inf"),
        "max_abs_diff": diff["abs"],
        "max_rel_diff": diff["rel"],
        "state_mismatches": int(diff["states"]) if ref.state is not None else None,
        "state_changes": (int(np.count_nonzero(np.diff(states))) if ref.state is not None
                          else None),
    }


# ---------------------------------------------------------------------- reference building blocks
class _ScipyBandPower:
    """``scipy.signal.sosfilt`` per band with ``zi`` carried, then NumPy log mean power."""

    def __init__(self, bank_sos: Sequence[np.ndarray], n_channels: int, eps: float) -> None:
        self.sos = [np.asarray(s) for s in bank_sos]
        self.zi = [np.zeros((s.shape[0], 2, n_channels)) for s in self.sos]
        self.eps = eps

    def __call__(self, hop: np.ndarray) -> np.ndarray:
        parts = []
        for k, sos in enumerate(self.sos):
            y, self.zi[k] = scipy.signal.sosfilt(sos, hop, axis=0, zi=self.zi[k])
            parts.append(np.log(np.mean(y * y, axis=0) + self.eps))
        return np.concatenate(parts)


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max())
    return e / e.sum()


# ------------------------------------------------------------------------------- bsi-ecog
class _BsiFast(_Path):
    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        from .decoders._kernels import linear_softmax
        from .dsp import FeaturePipeline

        self.pipe = FeaturePipeline(64, 586.0, 59, BSI_BANDS_HZ, filter_order=4, car=False)
        self.W, self.b = np.ascontiguousarray(W), np.ascontiguousarray(b)
        self.probs = np.zeros(W.shape[0])
        self._linear_softmax = linear_softmax
        self.output = np.zeros(self.pipe.n_features + W.shape[0])
        self._feats = self.output[:0]
        self.pipe.warmup()
        linear_softmax(self.W, self.b, np.zeros(self.pipe.n_features), self.probs)

    def step(self, hop: np.ndarray) -> None:
        self._feats = self.pipe.step(hop)
        self._linear_softmax(self.W, self.b, self._feats, self.probs)

    def collect(self) -> np.ndarray:
        n = self.pipe.n_features
        self.output[:n] = self._feats
        self.output[n:] = self.probs
        return self.output


class _BsiRef(_Path):
    def __init__(self, bank_sos: Sequence[np.ndarray], eps: float, W: np.ndarray,
                 b: np.ndarray) -> None:
        self.power = _ScipyBandPower(bank_sos, 64, eps)
        self.W, self.b = W, b
        self.output = np.zeros(0)

    def step(self, hop: np.ndarray) -> None:
        feats = self.power(hop)
        probs = _softmax(self.W @ feats + self.b)
        self.output = np.concatenate([feats, probs])


def bench_bsi_ecog(n_hops: int = 5000, warmup_hops: int = 200,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """64 ch x 586 Hz, 59-sample hops, 8 Butterworth bands, log power, linear 512->7 + softmax."""
    from .dsp.features import LOG_POWER_EPS

    rng = np.random.default_rng(7)
    W = rng.standard_normal((7, 8 * 64)) * 0.05
    b = rng.standard_normal(7) * 0.1
    fast = _BsiFast(W, b)
    ref = _BsiRef(fast.pipe.bank_sos, LOG_POWER_EPS, W, b)
    res = compare_paths("bsi-ecog", fast, ref, hop_shape=(59, 64), n_hops=n_hops,
                        warmup_hops=warmup_hops, progress=progress)
    res.update({
        "description": "64 ch x 586 Hz, 59-sample hops, 8 bands (4th-order Butterworth SOS), "
                       "log mean power, linear 512->7 + softmax",
        "n_channels": 64, "sampling_rate_hz": 586.0, "hop_samples": 59,
        "n_features": fast.pipe.n_features,
    })
    res["targets"] = {
        "speedup_median>=10": bool(res["speedup_median"] >= 10.0),
        "p99<=150us": bool(res["neuroloop_us"]["p99"] <= 150.0),
        "max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6),
    }
    return res


# ------------------------------------------------------------------------------------- eeg
def _probabilities(out: Any) -> np.ndarray:
    return out.probabilities


def _velocity(out: Any) -> np.ndarray:
    return out.values[:2]


class _DecodedFast(_Path):
    """A feature pipeline, then a decoder (neuroloop's path): the output is the features
    followed by ``tail(decoder output)`` (its probabilities, or its continuous values)."""

    def __init__(self, pipe: Any, dec: Any, tail: Callable[[Any], np.ndarray],
                 n_tail: int) -> None:
        self.pipe, self.dec, self._tail = pipe, dec, tail
        pipe.warmup()
        dec.warmup()
        self.output = np.zeros(pipe.n_features + n_tail)
        self._feats = self.output[:0]
        self._last: Any = None

    def step(self, hop: np.ndarray) -> None:
        self._feats = self.pipe.step(hop)
        self._last = self.dec.step(self._feats)

    def collect(self) -> np.ndarray:
        n = self.pipe.n_features
        self.output[:n] = self._feats
        self.output[n:] = self._tail(self._last)
        self.state = int(self._last.state)
        return self.output


class _EegRef(_Path):
    """SciPy band power + NumPy LDA likelihoods + HMM forward + gate in plain Python."""

    def __init__(self, bank_sos: Sequence[np.ndarray], eps: float, decoder: Any) -> None:
        self.power = _ScipyBandPower(bank_sos, 32, eps)
        self.coef, self.intercept = decoder.coef_, decoder.intercept_
        self.mean, self.scale, self.priors = decoder.mean_, decoder.scale_, decoder.priors_
        n = self.priors.shape[0]
        stay = decoder.transition_stay
        self.T = np.full((n, n), (1.0 - stay) / (n - 1))
        np.fill_diagonal(self.T, stay)
        self.gate_hops, self.threshold = decoder.gate_hops, decoder.gate_threshold
        self.p = self.priors.copy()
        self.state, self.candidate, self.count = 0, -1, 0
        self.output = np.zeros(0)

    def step(self, hop: np.ndarray) -> None:
        feats = self.power(hop)
        if not np.all(np.isfinite(feats)):
            self.p = self.priors.copy()
            self.state, self.candidate, self.count = 0, -1, 0
            self.output = np.concatenate([feats, self.p])
            return
        loglik = self.coef @ ((feats - self.mean) / self.scale) + self.intercept \
            - np.log(self.priors)
        p = _softmax(loglik + np.log(self.T.T @ self.p))
        self.p = p
        raw = int(np.argmax(p))
        if raw != self.state and p[raw] > self.threshold:
            if raw == self.candidate:
                self.count += 1
            else:
                self.candidate, self.count = raw, 1
            if self.count >= self.gate_hops:
                self.state, self.candidate, self.count = raw, -1, 0
        else:
            self.candidate, self.count = -1, 0
        self.output = np.concatenate([feats, p])


def bench_eeg(n_hops: int = 5000, warmup_hops: int = 200,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """32 ch x 250 Hz, 25-sample hops, mu + beta log power, LDA + HMM gate (3 states)."""
    from .decoders.lda import LDADecoder
    from .dsp import FeaturePipeline
    from .dsp.features import LOG_POWER_EPS

    # Calibrate on labelled random features placed around the log powers the stream produces.
    rng = np.random.default_rng(11)
    n_feat, n_states = 2 * 32, 3
    centre = np.concatenate([np.full(32, np.log(400.0 * 5 / 125)),
                             np.full(32, np.log(400.0 * 17 / 125))])
    offsets = rng.normal(0.0, 0.15, (n_states, n_feat))
    y = np.repeat(np.arange(n_states), 200)
    X = centre + offsets[y] + rng.normal(0.0, 0.3, (y.size, n_feat))
    decoder = LDADecoder(n_states=n_states, shrinkage=0.1, transition_stay=0.9, gate_hops=2,
                         gate_threshold=0.6).fit(X, y)
    fast = _DecodedFast(FeaturePipeline(32, 250.0, 25, EEG_BANDS_HZ, filter_order=4, car=False),
                        decoder, _probabilities, decoder.n_states)
    ref = _EegRef(fast.pipe.bank_sos, LOG_POWER_EPS, decoder)
    res = compare_paths("eeg", fast, ref, hop_shape=(25, 32), n_hops=n_hops,
                        warmup_hops=warmup_hops, progress=progress)
    res.update({
        "description": "32 ch x 250 Hz, 25-sample hops, mu (8-13 Hz) + beta (13-30 Hz) log "
                       "power, shrinkage LDA + HMM gate (3 states)",
        "n_channels": 32, "sampling_rate_hz": 250.0, "hop_samples": 25,
        "n_features": fast.pipe.n_features,
    })
    res["targets"] = {
        "max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6),
        "state_mismatches==0": res["state_mismatches"] == 0,
    }
    return res


class _AdbsFast(_Path):
    """The adbs preset's cycle: BiomarkerPipeline (notch, beta band, EMA) + beta-biomarker."""

    def __init__(self, decoder: Any) -> None:
        from .dsp.biomarker import BiomarkerPipeline

        self.pipe = BiomarkerPipeline(2, 250.0, 25, [13.0, 30.0], 0.5, notch_hz=[10.0])
        self.pipe.warmup()
        self.decoder = decoder
        decoder.warmup()
        self.output = np.zeros(2)

    def step(self, hop: np.ndarray) -> None:
        out = self.decoder.step(self.pipe.step(hop))
        self.output[:] = out.values
        self.state = int(out.state)


class _AdbsRef(_Path):
    """``scipy.signal.sosfilt`` notch cascade and band-pass (``zi`` carried), NumPy power,
    the EMA by its recursion and ``numpy.interp`` for the percentile."""

    def __init__(self, fast: _AdbsFast) -> None:
        bands = fast.pipe.bands
        self.notch = np.asarray(bands.notch_sos)
        self.band = np.asarray(bands.bank_sos[0])
        self.zn = np.zeros((self.notch.shape[0], 2, 2))
        self.zb = np.zeros((self.band.shape[0], 2, 2))
        self.alpha = fast.pipe.marker.alpha
        self.q = fast.decoder.quantiles_
        self.pct = np.linspace(0.0, 100.0, 101)
        self.thr = fast.decoder.state_percentile
        self.s: float | None = None
        self.output = np.zeros(2)

    def step(self, hop: np.ndarray) -> None:
        from .dsp.features import LOG_POWER_EPS

        y, self.zn = scipy.signal.sosfilt(self.notch, hop, axis=0, zi=self.zn)
        y, self.zb = scipy.signal.sosfilt(self.band, y, axis=0, zi=self.zb)
        p = float(np.mean(np.exp(np.log(np.mean(y * y, axis=0) + LOG_POWER_EPS))))
        self.s = p if self.s is None else self.s + self.alpha * (p - self.s)
        db = 10.0 * math.log10(self.s + LOG_POWER_EPS)
        pct = float(np.interp(db, self.q, self.pct))
        self.output[:] = (db, pct)
        self.state = 1 if pct >= self.thr else 0


def bench_adbs(n_hops: int = 5000, warmup_hops: int = 200,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """2 ch x 250 Hz, 25-sample hops: artifact notches, beta power, EMA, calibration rank."""
    from .decoders.biomarker import BiomarkerDecoder

    rng = np.random.default_rng(12)
    # a calibration distribution around the beta power of the bench's random hops
    X = rng.normal(10.0 * math.log10(400.0 * 17 / 125 * 0.7), 1.5, size=(400, 1))
    decoder = BiomarkerDecoder().fit(X)
    fast = _AdbsFast(decoder)
    ref = _AdbsRef(fast)
    res = compare_paths("adbs", fast, ref, hop_shape=(25, 2), n_hops=n_hops,
                        warmup_hops=warmup_hops, progress=progress)
    res.update({
        "description": "2 ch x 250 Hz, 25-sample hops, notch 10 Hz + harmonics, beta 13-30 Hz "
                       "power, 0.5 s EMA, calibration percentile (the adbs preset's cycle)",
        "n_channels": 2, "sampling_rate_hz": 250.0, "hop_samples": 25, "n_features": 1,
    })
    res["targets"] = {
        "max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6),
        "state_mismatches==0": res["state_mismatches"] == 0,
    }
    return res


# ------------------------------------------------------------------------- intracortical
class _ScipySpikeBand:
    """CAR, ``sosfilt`` (``zi`` carried) of the spike band and of the spike-band-power band,
    thresholds at ``multiplier x RMS`` over the first bins, crossings by NumPy comparison."""

    def __init__(self, spike_sos: np.ndarray, sbp_sos: np.ndarray, n_channels: int, car: bool,
                 multiplier: float, calibration_bins: int) -> None:
        self.spk, self.sbp = spike_sos, sbp_sos
        self.zs = np.zeros((spike_sos.shape[0], 2, n_channels))
        self.zb = np.zeros((sbp_sos.shape[0], 2, n_channels))
        self.car, self.mult, self.cal_left = car, multiplier, calibration_bins
        self.sumsq, self.n_cal = np.zeros(n_channels), 0
        self.thr = np.full(n_channels, -np.inf)
        self.prev = np.zeros(n_channels)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.car:
            x = x - x.mean(axis=1, keepdims=True)
        ys, self.zs = scipy.signal.sosfilt(self.spk, x, axis=0, zi=self.zs)
        yb, self.zb = scipy.signal.sosfilt(self.sbp, x, axis=0, zi=self.zb)
        prev = np.vstack([self.prev[None, :], ys[:-1]])
        tx = np.count_nonzero((ys < self.thr) & (prev >= self.thr), axis=0).astype(float)
        self.prev = ys[-1].copy()
        if self.cal_left > 0:
            self.sumsq += np.sum(ys * ys, axis=0)
            self.n_cal += ys.shape[0]
            self.cal_left -= 1
            if self.cal_left == 0:
                self.thr = self.mult * np.sqrt(self.sumsq / self.n_cal)
        return np.concatenate([tx, np.mean(np.abs(yb), axis=0)])


def _fit_kalman(n_features: int, seed: int = 5) -> Any:
    """A steady-state ``kalman`` decoder fitted on random cosine-tuned features."""
    from .decoders.kalman import KalmanDecoder

    rng = np.random.default_rng(seed)
    n = 600
    v = np.zeros((n, 2))
    for t in range(1, n):
        v[t] = 0.95 * v[t - 1] + rng.normal(0.0, 0.02, 2)
    X = 5.0 + v @ rng.normal(0.0, 20.0, (2, n_features)) + rng.normal(0.0, 1.0, (n, n_features))
    return KalmanDecoder(steady_state=True).fit(X, v, state_names=("rest", "reach"))


class _KalmanRef:
    """The steady-state Kalman step in NumPy: ``s = A s; s += K (z - mu_z - H s)``."""

    def __init__(self, dec: Any) -> None:
        self.A, self.K, self.H = dec.A_, dec.K_, dec.H_
        self.mu_z, self.mu_x = dec.mu_z_, dec.mu_x_
        self.s = np.zeros(self.mu_x.shape[0])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        sp = self.A @ self.s
        self.s = sp + self.K @ (z - self.mu_z - self.H @ sp)
        return self.mu_x + self.s


class _IcRef(_Path):
    def __init__(self, features: Callable[[np.ndarray], np.ndarray], dec: Any) -> None:
        self.features, self.kalman = features, _KalmanRef(dec)
        self.output = np.zeros(0)

    def step(self, hop: np.ndarray) -> None:
        feats = self.features(hop)
        self.output = np.concatenate([feats, self.kalman(feats)])


def _spike_pair(n_channels: int) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    from .dsp.spikes import SpikeBandFeatures

    pipe = SpikeBandFeatures(n_channels, 30000.0, 600)
    ref = _ScipySpikeBand(pipe.spike_sos, pipe.sbp_sos, n_channels, True, pipe.multiplier,
                          pipe.calibration_bins)
    return pipe, ref


def bench_intracortical_raw(n_hops: int = 300, warmup_hops: int = 60,
                            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """1024 ch x 30 kHz, 20 ms bins: CAR, spike band, crossings, spike-band power, steady-state
    Kalman velocity (2048 -> 2), against SciPy ``sosfilt`` + NumPy. At most 500 bins (the
    reference costs tens of ms a bin); warm-up covers the 1 s threshold calibration."""
    n_hops, warmup_hops = min(n_hops, 500), max(warmup_hops, 55)
    pipe, ref_feats = _spike_pair(1024)
    dec = _fit_kalman(pipe.n_features)
    res = compare_paths("intracortical-raw", _DecodedFast(pipe, dec, _velocity, 2), _IcRef(ref_feats, dec),
                        hop_shape=(600, 1024), n_hops=n_hops, warmup_hops=warmup_hops,
                        progress=progress)
    res.update({"description": "1024 ch x 30 kHz, 20 ms bins: CAR, 250-5000 Hz crossings at "
                               "-4.5 RMS, 300-1000 Hz spike-band power, steady-state Kalman "
                               "2048 -> 2",
                "n_channels": 1024, "sampling_rate_hz": 30000.0, "hop_samples": 600,
                "n_features": pipe.n_features})
    res["targets"] = {
        "p99<=10000us": bool(res["neuroloop_us"]["p99"] <= 10000.0),
        "speedup_median>=14": bool(res["speedup_median"] >= 14.0),
        "max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6),
    }
    return res


def bench_intracortical_binned(n_hops: int = 5000, warmup_hops: int = 200,
                               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The host's share in binned mode: one bin of 2 x 1024 on-chip features in, steady-state
    Kalman velocity out, against NumPy."""
    from .dsp.spikes import BinnedFeatures

    pipe = BinnedFeatures(2048)
    dec = _fit_kalman(2048)
    res = compare_paths("intracortical-binned", _DecodedFast(pipe, dec, _velocity, 2),
                        _IcRef(lambda h: np.array(h[0]), dec), hop_shape=(1, 2048),
                        n_hops=n_hops, warmup_hops=warmup_hops, scale=3.0, progress=progress)
    res.update({"description": "binned: 2 x 1024 features per 20 ms bin from the implant, "
                               "steady-state Kalman 2048 -> 2",
                "n_channels": 2048, "sampling_rate_hz": 50.0, "hop_samples": 1,
                "n_features": 2048})
    res["targets"] = {"p99<=1000us": bool(res["neuroloop_us"]["p99"] <= 1000.0),
                      "max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6)}
    return res


class _BandPowerFast(_Path):
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        pipe.warmup()
        self.output = np.zeros(pipe.n_features)

    def step(self, hop: np.ndarray) -> None:
        self.output = self.pipe.step(hop)


class _FnRef(_Path):
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self.output = np.zeros(0)

    def step(self, hop: np.ndarray) -> None:
        self.output = self.fn(hop)


#: Channel counts of ``neuroloop bench channel-sweep``.
SWEEP_CHANNELS = (64, 256, 1024, 2048)


def bench_channel_sweep(n_hops: int = 200, warmup_hops: int = 60,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per-hop cost against channel count for the spike-band kernel (600-sample bins at
    30 kHz) and the bsi band-power kernel (59-sample hops at 586 Hz, 8 bands), each with its
    SciPy reference: ``per_channel_ns`` and its ratio to 64 channels (linear scaling: 1.0),
    and the speed-up over SciPy at each count. At most 300 measured hops per point."""
    from .dsp import FeaturePipeline
    from .dsp.features import LOG_POWER_EPS

    n_hops, warmup_hops = min(n_hops, 300), max(warmup_hops, 55)
    rows: list[dict[str, Any]] = []
    for kernel in ("spike-band", "band-power"):
        base = None
        for n_ch in SWEEP_CHANNELS:
            if kernel == "spike-band":
                pipe, ref = _spike_pair(n_ch)
                shape = (600, n_ch)
                fast: _Path = _BandPowerFast(pipe)
            else:
                bp = FeaturePipeline(n_ch, 586.0, 59, BSI_BANDS_HZ, filter_order=4, car=False)
                ref = _ScipyBandPower(bp.bank_sos, n_ch, LOG_POWER_EPS)
                shape, fast = (59, n_ch), _BandPowerFast(bp)
            r = compare_paths(f"{kernel}@{n_ch}", fast, _FnRef(ref), hop_shape=shape,
                              n_hops=n_hops, warmup_hops=warmup_hops, progress=progress)
            # the median of the fast path is the cost; per channel it should not grow
            per_ch = r["neuroloop_us"]["p50"] * 1000.0 / n_ch
            base = base or per_ch
            rows.append({"kernel": kernel, "n_channels": n_ch,
                         "p50_us": r["neuroloop_us"]["p50"], "p99_us": r["neuroloop_us"]["p99"],
                         "per_channel_ns": per_ch, "per_channel_vs_64": per_ch / base,
                         "reference_p50_us": r["reference_us"]["p50"],
                         "speedup_median": r["speedup_median"],
                         "max_rel_diff": r["max_rel_diff"]})
    def at(kernel: str, n: int) -> dict[str, Any]:
        return next(r for r in rows if r["kernel"] == kernel and r["n_channels"] == n)

    targets = {}
    if 1024 in SWEEP_CHANNELS:
        targets = {
            "spike-band per-ch 1024/64<=1.3": at("spike-band", 1024)["per_channel_vs_64"] <= 1.3,
            "band-power per-ch 1024/64<=1.3": at("band-power", 1024)["per_channel_vs_64"] <= 1.3,
            "spike-band speedup@1024>=14": at("spike-band", 1024)["speedup_median"] >= 14.0,
            "band-power speedup@1024>=14": at("band-power", 1024)["speedup_median"] >= 14.0,
        }
    return {
        "workload": "channel-sweep", "n_hops": n_hops, "warmup_hops": warmup_hops,
        "description": "per-hop cost vs channels (64, 256, 1024, 2048): spike-band kernel "
                       "(600-sample bins) and bsi band-power kernel (59-sample hops, 8 bands)",
        "sweep": rows,
        "targets": targets,
    }


class _ResponsiveFast(_Path):
    """DetectorPipeline (compiled) + ResponsiveDetector step (compiled)."""

    def __init__(self) -> None:
        from .decoders.responsive import ResponsiveDetector
        from .dsp.detectors import DetectorPipeline

        self.pipe = DetectorPipeline(4, 250.0, 25, (15.0, 40.0), lowpass_hz=90.0)
        self.det = ResponsiveDetector(
            hop_s=0.1, n_channels=4, trend_init_s=1.0,
            line_length={"channels": [0, 1], "window_s": 1.0, "trend_s": 60.0,
                         "threshold_pct": 150.0},
            bandpass={"channels": [0, 1], "min_amplitude_uv": 16.0, "min_duration_s": 1.0})
        self.det.fit(np.zeros((2, 12)), np.zeros(2, dtype=np.int64))
        self.pipe.warmup()
        self.det.warmup()
        self.output = self.pipe._out

    def step(self, hop: np.ndarray) -> None:
        self.det.step(self.pipe.step(hop))


class _ResponsiveRef(_Path):
    """``scipy.signal.sosfilt`` with carried ``zi`` (started at the first sample's steady
    state), then NumPy line length, area and band RMS."""

    def __init__(self, pre_sos: np.ndarray, band_sos: np.ndarray) -> None:
        import scipy.signal

        self._sig = scipy.signal
        self.pre_sos, self.band_sos = pre_sos, band_sos
        self.zp: np.ndarray | None = None
        self.zb: np.ndarray | None = None
        self.prev: np.ndarray | None = None
        self.output = np.zeros(12)

    def step(self, hop: np.ndarray) -> None:
        sig = self._sig
        if self.zp is None:
            self.zp = sig.sosfilt_zi(self.pre_sos)[:, :, None] * hop[0][None, None, :]
        y, self.zp = sig.sosfilt(self.pre_sos, hop, axis=0, zi=self.zp)
        if self.zb is None:
            self.zb = sig.sosfilt_zi(self.band_sos)[:, :, None] * y[0][None, None, :]
        b, self.zb = sig.sosfilt(self.band_sos, y, axis=0, zi=self.zb)
        ext = y if self.prev is None else np.vstack([self.prev[None, :], y])
        self.output[:4] = np.abs(np.diff(ext, axis=0)).mean(axis=0)
        self.output[4:8] = np.abs(y).mean(axis=0)
        self.output[8:] = np.sqrt((b * b).mean(axis=0))
        self.prev = y[-1].copy()


def bench_responsive(n_hops: int = 5000, warmup_hops: int = 200,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """4 ch x 250 Hz, 25-sample hops: line length, area, 15-40 Hz RMS, RNS-style detector."""
    fast = _ResponsiveFast()
    ref = _ResponsiveRef(fast.pipe.pre_sos, fast.pipe.band_sos)
    res = compare_paths("responsive", fast, ref, hop_shape=(25, 4), n_hops=n_hops,
                        warmup_hops=warmup_hops, progress=progress)
    res.update({
        "description": "4 ch x 250 Hz, 25-sample hops: 1 Hz high-pass + 90 Hz low-pass, line "
                       "length, area, 15-40 Hz RMS (reference: SciPy sosfilt + NumPy); the "
                       "compiled path also runs the detector step",
        "n_channels": 4, "sampling_rate_hz": 250.0, "hop_samples": 25, "n_features": 12,
    })
    res["targets"] = {"max_rel_diff<=1e-6": bool(res["max_rel_diff"] <= 1e-6)}
    return res


register_workload("bsi-ecog", bench_bsi_ecog, takes_progress=True)
register_workload("eeg", bench_eeg, takes_progress=True)
register_workload("adbs", bench_adbs, takes_progress=True)
register_workload("intracortical-raw", bench_intracortical_raw, takes_progress=True)
register_workload("intracortical-binned", bench_intracortical_binned, takes_progress=True)
register_workload("channel-sweep", bench_channel_sweep, takes_progress=True)
register_workload("responsive", bench_responsive, takes_progress=True)
# per-cycle cost the safety supervisor (issue target: p99 <= 20 us) and the session
# recorder (p99 <= 50 us) add to the loop; imported only when they run
register_workload("supervisor", "neuroloop.safety.bench:bench_supervisor")
register_workload("recorder", "neuroloop.io.recorder:bench_recorder")
register_workload("monitor", "neuroloop.monitor.bench:bench_monitor")
# the synthetic patient the prefetch thread runs (a --fast run cannot outpace it)
register_workload("patient-bsi", "neuroloop.acquisition.bench:bench_patient_bsi")
register_workload("patient-eeg-bci", "neuroloop.acquisition.bench:bench_patient_eeg")


# ------------------------------------------------------------------------- decoder families
def _time_steps(step: Callable[[np.ndarray], np.ndarray], X: np.ndarray, warmup_hops: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Time ``step(X[k])`` per hop (gc off as in the loop); returns (ns after warm-up,
    outputs after warm-up)."""
    perf = time.perf_counter_ns
    n = X.shape[0] - warmup_hops
    times = np.zeros(n, dtype=np.int64)
    first = step(X[0])
    outs = np.zeros((n, np.asarray(first).shape[0]))
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for k in range(1, X.shape[0]):
            t0 = perf()
            out = step(X[k])
            t1 = perf()
            if k >= warmup_hops:
                times[k - warmup_hops] = t1 - t0
                outs[k - warmup_hops] = out
    finally:
        if gc_was_enabled:
            gc.enable()
    return times, outs


def _decoder_result(name: str, description: str, fast: Callable[[np.ndarray], np.ndarray],
                    ref: Callable[[np.ndarray], np.ndarray], X: np.ndarray, warmup_hops: int,
                    extra: dict[str, Any], budget_us: float | None = None) -> dict[str, Any]:
    t_fast, o_fast = _time_steps(fast, X, warmup_hops)
    t_ref, o_ref = _time_steps(ref, X, warmup_hops)
    d = np.abs(o_fast - o_ref)
    den = np.maximum(np.abs(o_ref), 1e-300)
    fast_us, ref_us = latency_stats_us(t_fast), latency_stats_us(t_ref)
    res: dict[str, Any] = {
        "workload": name, "description": description, "n_hops": int(t_fast.size),
        "warmup_hops": int(warmup_hops), **extra, "n_outputs": int(o_fast.shape[1]),
        "neuroloop_us": fast_us, "reference_us": ref_us,
        "speedup_median": ref_us["p50"] / fast_us["p50"] if fast_us["p50"] > 0 else float("inf"),
        "max_abs_diff": float(np.nanmax(d)) if d.size else 0.0,
        "max_rel_diff": float(np.nanmax(d / den)) if d.size else 0.0,
        "state_mismatches": int(np.count_nonzero(np.argmax(o_fast, axis=1)
                                                 != np.argmax(o_ref, axis=1))),
        "state_changes": int(np.count_nonzero(np.diff(np.argmax(o_fast, axis=1)))),
        "targets": {"matches_reference_1e-9": bool(np.all(d <= 1e-9 * np.maximum(
            np.abs(o_ref), 1.0)))},
    }
    if budget_us is not None:
        res["targets"][f"p99_within_{budget_us:g}_us"] = bool(fast_us["p99"] <= budget_us)
    return res


def _cov_features(n: int, n_channels: int, hop: int, seed: int) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    from .decoders._covariance import example_covariance_data

    return example_covariance_data(n, seed, n_channels=n_channels, hop=hop)


def bench_decoder_riemann(n_hops: int = 5000, warmup_hops: int = 200,
                          n_channels: int = 64) -> dict[str, Any]:
    """``riemann`` step on 64 channels (1 s window of 10 hops, no gate) against NumPy:
    window mean, shrinkage, ``eigh`` inverse square root and log, matmul, softmax."""
    from .decoders.riemann import RiemannDecoder

    hop = 59
    X, y = _cov_features(1200, n_channels, hop, 0)
    dec = RiemannDecoder(gate=False).fit(X, y)
    dec.warmup()
    Xt, _ = _cov_features(min(n_hops, 2000) + warmup_hops, n_channels, hop, 1)
    Xt = np.resize(Xt, (n_hops + warmup_hops, Xt.shape[1]))
    iu = np.triu_indices(n_channels)
    wts = np.where(iu[0] == iu[1], 1.0, np.sqrt(2.0))
    w, V = np.linalg.eigh(dec.reference_[0])
    isq = (V / np.sqrt(w)) @ V.T
    win: list[np.ndarray] = []
    lam = dec.shrinkage

    def fast(x: np.ndarray) -> np.ndarray:
        return dec.step(x).probabilities

    def ref(x: np.ndarray) -> np.ndarray:
        win.append(x)
        if len(win) > dec.window_hops:
            win.pop(0)
        m = np.mean(win, axis=0)
        C = np.zeros((n_channels, n_channels))
        C[iu] = m
        C = C + np.triu(C, 1).T
        C = (1 - lam) * C + lam * np.trace(C) / n_channels * np.eye(n_channels)
        e, U = np.linalg.eigh(isq @ C @ isq)
        t = wts * ((U * np.log(e)) @ U.T)[iu]
        return _softmax(dec.coef_ @ t + dec.intercept_)

    dec.reset()
    return _decoder_result("decoder-riemann", f"riemann step, {n_channels} channels, 1 s "
                           "window, no gate", fast, ref, Xt, warmup_hops,
                           {"n_channels": n_channels, "n_features": int(X.shape[1])},
                           budget_us=10_000.0)


def bench_decoder_csp(n_hops: int = 5000, warmup_hops: int = 200,
                      n_channels: int = 64) -> dict[str, Any]:
    """``csp-lda`` step on 64 channels against NumPy (window mean, ``w' C w``, log, LDA)."""
    from .decoders.csp import CSPLDADecoder

    hop = 59
    X, y = _cov_features(1200, n_channels, hop, 0)
    dec = CSPLDADecoder(gate=False).fit(X, y)
    dec.warmup()
    Xt, _ = _cov_features(min(n_hops, 2000) + warmup_hops, n_channels, hop, 1)
    Xt = np.resize(Xt, (n_hops + warmup_hops, Xt.shape[1]))
    iu = np.triu_indices(n_channels)
    win: list[np.ndarray] = []
    lam = dec.shrinkage
    F = dec.filters_[0]

    def fast(x: np.ndarray) -> np.ndarray:
        return dec.step(x).probabilities

    def ref(x: np.ndarray) -> np.ndarray:
        win.append(x)
        if len(win) > dec.window_hops:
            win.pop(0)
        C = np.zeros((n_channels, n_channels))
        C[iu] = np.mean(win, axis=0)
        C = C + np.triu(C, 1).T
        C = (1 - lam) * C + lam * np.trace(C) / n_channels * np.eye(n_channels)
        f = np.log(np.einsum("fi,ij,fj->f", F, C, F))
        return _softmax(dec.coef_ @ f + dec.intercept_)

    dec.reset()
    return _decoder_result("decoder-csp-lda", f"csp-lda step, {n_channels} channels, "
                           f"{F.shape[0]} filters, no gate", fast, ref, Xt, warmup_hops,
                           {"n_channels": n_channels, "n_features": int(X.shape[1])},
                           budget_us=10_000.0)


def bench_decoder_kalman(n_hops: int = 5000, warmup_hops: int = 200,
                         n_features: int = 256) -> dict[str, Any]:
    """``kalman`` step (information form, 2D velocity, 256 features) against the textbook
    covariance-form update (a p x p solve per hop)."""
    from .decoders.kalman import KalmanDecoder

    rng = np.random.default_rng(0)
    n = n_hops + warmup_hops + 2000
    v = np.zeros((n, 2))
    for t in range(1, n):
        v[t] = 0.95 * v[t - 1] + rng.normal(0.0, 0.02, 2)
    X = 5.0 + v @ rng.normal(0.0, 20.0, (2, n_features)) + rng.normal(0, 1.0, (n, n_features))
    dec = KalmanDecoder().fit(X[:2000], v[:2000])
    dec.warmup()
    st = {"s": np.zeros(2), "P": dec.P0_.copy()}

    def fast(x: np.ndarray) -> np.ndarray:
        return dec.step(x).values

    def ref(x: np.ndarray) -> np.ndarray:
        sp = dec.A_ @ st["s"]
        Pp = dec.A_ @ st["P"] @ dec.A_.T + dec.W_
        S = dec.H_ @ Pp @ dec.H_.T + dec.Q_
        K = np.linalg.solve(S, dec.H_ @ Pp).T
        st["P"] = (np.eye(2) - K @ dec.H_) @ Pp
        st["s"] = sp + K @ (x - dec.mu_z_ - dec.H_ @ sp)
        return dec.mu_x_ + st["s"]

    dec.reset()
    res = _decoder_result("decoder-kalman", f"kalman step, 2D velocity from {n_features} "
                          "features", fast, ref, np.ascontiguousarray(X[2000:]), warmup_hops,
                          {"n_features": n_features})
    res["state_mismatches"] = res["state_changes"] = None
    return res


def bench_decoder_adaptive(n_hops: int = 5000, warmup_hops: int = 200,
                           n_features: int = 512) -> dict[str, Any]:
    """``adaptive`` step with an RLS update every hop (512 features, 7 states, as bsi)
    against NumPy (scores, softmax, rank-one RLS update)."""
    from .decoders.adaptive import AdaptiveDecoder

    rng = np.random.default_rng(0)
    k = 7
    means = rng.normal(0.0, 1.0, (k, n_features))
    n = n_hops + warmup_hops + 3000
    y = np.repeat(np.arange(n // 20 + 1) % k, 20)[:n]
    X = means[y] + rng.normal(0.0, 1.0, (n, n_features))
    dec = AdaptiveDecoder(gate=False, adapt_confidence=0.0, max_drift=1e6,
                          forgetting=0.9995).fit(X[:3000], y[:3000])
    dec.warmup()
    st = {"W": dec.weights0_.copy(), "P": dec.p0_.copy()}

    def fast(x: np.ndarray) -> np.ndarray:
        return dec.step(x).probabilities

    def ref(x: np.ndarray) -> np.ndarray:
        phi = np.append((x - dec.mean_) / dec.scale_, 1.0)
        s = st["W"].T @ phi
        p = _softmax(dec.beta_ * s)
        t = np.zeros(k)
        t[int(np.argmax(p))] = 1.0
        Pphi = st["P"] @ phi
        g = Pphi / (dec.forgetting + phi @ Pphi)
        st["W"] = st["W"] + np.outer(g, t - s)
        st["P"] = (st["P"] - np.outer(g, Pphi)) / dec.forgetting
        return p

    dec.reset()
    return _decoder_result("decoder-adaptive", f"adaptive step + RLS update, {n_features} "
                           f"features, {k} states", fast, ref, np.ascontiguousarray(X[3000:]),
                           warmup_hops, {"n_features": n_features})


register_workload("decoder-riemann", bench_decoder_riemann)
register_workload("decoder-csp-lda", bench_decoder_csp)
register_workload("decoder-kalman", bench_decoder_kalman)
register_workload("decoder-adaptive", bench_decoder_adaptive)


# ------------------------------------------------------------------------------------ driver
def run_bench(workloads: list[str] | None = None, n_hops: int = 5000, warmup_hops: int = 200,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the named workloads (default: all registered) and collect their results.

    Parameters
    ----------
    workloads : list of str, optional
        Names from :func:`workload_names`.
    n_hops : int
        Measured hops per workload (after warm-up).
    warmup_hops : int
        Hops run through both paths before measuring.
    progress : callable, optional
        Receives one-line progress messages.

    Returns
    -------
    dict
        ``{"machine": {...}, "n_hops": int, "warmup_hops": int,
        "workloads": {name: result}, "all_targets_pass": bool}``.

    Raises
    ------
    ConfigError
        For an unknown workload name or n_hops < 1.
    """
    names = workload_names() if not workloads else list(workloads)
    for name in names:
        if name not in _WORKLOADS:
            raise ConfigError(f"unknown bench workload {name!r}; use one of: "
                              f"{', '.join(workload_names())}")
    if isinstance(n_hops, bool) or not isinstance(n_hops, int) or n_hops < 1:
        raise ConfigError(f"bench n_hops={n_hops!r} is not a positive integer; use e.g. 5000")
    if isinstance(warmup_hops, bool) or not isinstance(warmup_hops, int) or warmup_hops < 0:
        raise ConfigError(f"bench warmup_hops={warmup_hops!r} is negative; use e.g. 200")
    results: dict[str, Any] = {}
    for name in names:
        fn = _resolve(_WORKLOADS[name])
        if progress:
            progress(f"{name}: starting")
        if name in _TAKES_PROGRESS:
            res = fn(n_hops, warmup_hops, progress=progress)  # type: ignore[call-arg]
        else:
            res = fn(n_hops, warmup_hops)
        res.setdefault("workload", name)
        results[name] = res
    all_pass = all(all(bool(v) for v in r.get("targets", {}).values()) for r in results.values())
    return {"machine": _machine(), "n_hops": n_hops, "warmup_hops": warmup_hops,
            "workloads": results, "all_targets_pass": all_pass}


def _machine() -> dict[str, Any]:
    import numba

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__,
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}


# ------------------------------------------------------------------------------------ output
def _fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def format_bench(result: dict[str, Any]) -> str:
    """A readable table of :func:`run_bench`'s result (missing fields print as ``-``)."""
    lines = []
    m = result.get("machine", {})
    if m:
        lines.append(f"python {m.get('python')}  numpy {m.get('numpy')}  scipy {m.get('scipy')}  "
                     f"numba {m.get('numba')}  cpus {m.get('cpu_count')}")
    head = (f"{'workload':<12} {'path':<10} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} "
            f"{'max us':>9}")
    lines.append(head)
    lines.append("-" * len(head))
    for name, r in result.get("workloads", {}).items():
        first = True
        for label, key in (("neuroloop", "neuroloop_us"), ("reference", "reference_us")):
            st = r.get(key)
            if not st:
                continue
            lines.append(f"{name if first else '':<12} {label:<10} {_fmt(st.get('p50')):>9} "
                         f"{_fmt(st.get('p99')):>9} {_fmt(st.get('p999')):>9} "
                         f"{_fmt(st.get('max')):>9}")
            first = False
        extras = []
        if r.get("speedup_median") is not None:
            extras.append(f"speedup {_fmt(r['speedup_median'])}x (median)")
        if r.get("max_abs_diff") is not None:
            extras.append(f"max |diff| {_fmt(r['max_abs_diff'], '.2e')}")
        if r.get("max_rel_diff") is not None:
            extras.append(f"max rel diff {_fmt(r['max_rel_diff'], '.2e')}")
        if r.get("state_mismatches") is not None:
            extras.append(f"state mismatches {r['state_mismatches']}")
        if r.get("state_changes") is not None:
            extras.append(f"state changes {r['state_changes']}")
        skip = {"workload", "description", "n_hops", "warmup_hops", "neuroloop_us",
                "reference_us", "speedup_median", "max_abs_diff", "max_rel_diff",
                "state_mismatches", "state_changes", "targets", "n_channels", "sampling_rate_hz",
                "hop_samples", "n_features", "n_outputs"}
        for k, v in r.items():
            if k not in skip and isinstance(v, int | float | str | bool):
                extras.append(f"{k} {_fmt(v, '.4g') if isinstance(v, float) else v}")
        if first:
            lines.append(f"{name:<12} (no latency figures)")
        if extras:
            lines.append(f"{'':<12} " + ", ".join(extras))
        for row in r.get("sweep") or ():
            lines.append(f"{'':<12} {row['kernel']:<10} {row['n_channels']:>5} ch  p50 "
                         f"{_fmt(row['p50_us']):>8} us  {_fmt(row['per_channel_ns']):>7} ns/ch  "
                         f"x{_fmt(row['per_channel_vs_64'], '.2f')} of 64-ch per channel  "
                         f"SciPy {_fmt(row['reference_p50_us']):>9} us  "
                         f"speed-up {_fmt(row['speedup_median'])}x")
        targets = r.get("targets") or {}
        if targets:
            lines.append(f"{'':<12} targets: " + ", ".join(
                f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in targets.items()))
    if "all_targets_pass" in result:
        lines.append(f"all targets: {'PASS' if result['all_targets_pass'] else 'FAIL'}")
    return "\n".join(lines)
