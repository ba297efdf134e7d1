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
class _EegFast(_Path):
    def __init__(self, decoder: Any) -> None:
        from .dsp import FeaturePipeline

        self.pipe = FeaturePipeline(32, 250.0, 25, EEG_BANDS_HZ, filter_order=4, car=False)
        self.dec = decoder
        self.pipe.warmup()
        decoder.warmup()
        self.output = np.zeros(self.pipe.n_features + decoder.n_states)
        self._feats = self.output[:0]
        self._last: Any = None

    def step(self, hop: np.ndarray) -> None:
        self._feats = self.pipe.step(hop)
        self._last = self.dec.step(self._feats)

    def collect(self) -> np.ndarray:
        n = self.pipe.n_features
        self.output[:n] = self._feats
        self.output[n:] = self._last.probabilities
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
    fast = _EegFast(decoder)
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
register_workload("responsive", bench_responsive, takes_progress=True)
# per-cycle cost the safety supervisor (issue target: p99 <= 20 us) and the session
# recorder (p99 <= 50 us) add to the loop; imported only when they run
register_workload("supervisor", "neuroloop.safety.bench:bench_supervisor")
register_workload("recorder", "neuroloop.io.recorder:bench_recorder")


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
        targets = r.get("targets") or {}
        if targets:
            lines.append(f"{'':<12} targets: " + ", ".join(
                f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in targets.items()))
    if "all_targets_pass" in result:
        lines.append(f"all targets: {'PASS' if result['all_targets_pass'] else 'FAIL'}")
    return "\n".join(lines)
