"""Slow, obviously-correct SciPy/NumPy references of every compiled kernel.

Each function here is written from the definition, with SciPy/NumPy doing the numerics and
plain Python doing the control flow, so that the compiled kernels can be checked against
something that shares no code with them.

Filtering references use ``scipy.signal.sosfilt`` with its ``zi`` state carried across hops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.signal

__all__ = [
    "car_ref",
    "SosfiltStream",
    "log_power_ref",
    "FilterBankLogPowerRef",
    "PipelineRef",
    "linear_softmax_ref",
    "lda_fit_ref",
    "HMMGateRef",
    "lda_outputs_ref",
    "StimMapperRef",
    "SpikeBandRef",
    "IntracorticalSynthRef",
    "kalman_ref",
    "GatedDecisionRef",
    "window_covariances_ref",
    "tangent_vector_ref",
    "csp_log_variance_ref",
    "AdaptiveRef",
    "biomarker_ref",
    "detector_measures_ref",
    "ResponsiveDetectorRef",
    "CovariancePipelineRef",
]


# ----------------------------------------------------------------------------------------- DSP
def car_ref(x: np.ndarray, ref_index: Sequence[int] | None = None) -> np.ndarray:
    """``x - mean(x[:, ref_index], axis=1)`` (all channels when ``ref_index`` is None)."""
    x = np.asarray(x, dtype=np.float64)
    ref = x if ref_index is None else x[:, np.asarray(ref_index)]
    return x - ref.mean(axis=1, keepdims=True)


class SosfiltStream:
    """``scipy.signal.sosfilt`` along axis 0 with ``zi`` carried from block to block."""

    def __init__(self, sos: np.ndarray, n_channels: int) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.zi = np.zeros((self.sos.shape[0], 2, n_channels))

    def step(self, x: np.ndarray) -> np.ndarray:
        if self.sos.shape[0] == 0:
            return np.array(x, dtype=np.float64)
        y, self.zi = scipy.signal.sosfilt(self.sos, x, axis=0, zi=self.zi)
        return y


def log_power_ref(y: np.ndarray, eps: float) -> np.ndarray:
    """``log(mean(y ** 2, axis=0) + eps)`` per channel."""
    return np.log(np.mean(np.asarray(y) ** 2, axis=0) + eps)


class FilterBankLogPowerRef:
    """Band-major log band power per hop: ``sosfilt`` with ``zi`` per band, then numpy."""

    def __init__(self, bank_sos: Sequence[np.ndarray], n_channels: int, eps: float) -> None:
        self.filters = [SosfiltStream(s, n_channels) for s in bank_sos]
        self.eps = eps

    def step(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([log_power_ref(f.step(x), self.eps) for f in self.filters])


class PipelineRef:
    """CAR (optional) -> notch cascade -> filter bank -> log power, one hop at a time."""

    def __init__(self, n_channels: int, bank_sos: Sequence[np.ndarray], notch_sos: np.ndarray,
                 car: bool, eps: float, ref_index: Sequence[int] | None = None) -> None:
        self.car = car
        self.ref_index = ref_index
        self.notch = SosfiltStream(notch_sos, n_channels)
        self.bank = FilterBankLogPowerRef(bank_sos, n_channels, eps)

    def step(self, x: np.ndarray) -> np.ndarray:
        if self.car:
            x = car_ref(x, self.ref_index)
        return self.bank.step(self.notch.step(x))

    def process(self, x: np.ndarray, hop: int) -> np.ndarray:
        n_hops = x.shape[0] // hop
        return np.array([self.step(x[h * hop:(h + 1) * hop]) for h in range(n_hops)])


def biomarker_ref(log_power: np.ndarray, index: Sequence[int], alpha: float,
                  eps: float) -> np.ndarray:
    """Smoothed band power in dB: the mean of ``exp(log_power[:, index])`` per hop through
    the EMA ``y[n] = y[n-1] + alpha (p[n] - y[n-1])`` started at ``p[0]``
    (``scipy.signal.lfilter([alpha], [1, alpha - 1], p, zi=[(1 - alpha) p[0]])``), then
    ``10 log10(y + eps)``. Finite input only."""
    p = np.exp(np.asarray(log_power)[:, list(index)]).mean(axis=1)
    y, _ = scipy.signal.lfilter([alpha], [1.0, alpha - 1.0], p, zi=[(1.0 - alpha) * p[0]])
    return 10.0 * np.log10(y + eps)


# ------------------------------------------------------------------------------------- decoder
def linear_softmax_ref(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``softmax(W @ x + b)`` with ``scipy.special.softmax``."""
    import scipy.special

    return scipy.special.softmax(W @ x + b)


def lda_fit_ref(X: np.ndarray, y: np.ndarray, n_states: int, shrinkage: float,
                priors: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Shrinkage LDA from the textbook formulas (explicit loops over classes, ``inv``).

    Returns coef (on standardised features), intercept, mean, scale, priors.
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    Z = (X - mean) / scale
    counts = np.array([np.sum(y == k) for k in range(n_states)], dtype=float)
    pri = counts / n if priors is None else np.asarray(priors, float) / np.sum(priors)
    mus = []
    S = np.zeros((p, p))
    for k in range(n_states):
        Zk = Z[y == k]
        mk = Zk.mean(axis=0)
        mus.append(mk)
        D = Zk - mk
        S += D.T @ D
    S /= n - n_states
    S = (1 - shrinkage) * S + shrinkage * np.trace(S) / p * np.eye(p)
    Si = np.linalg.inv(S)
    coef = np.array([Si @ m for m in mus])
    intercept = np.array([-0.5 * m @ Si @ m + np.log(pk) for m, pk in zip(mus, pri, strict=True)])
    return {"coef": coef, "intercept": intercept, "mean": mean, "scale": scale, "priors": pri}


class HMMGateRef:
    """LDA scores -> HMM forward smoothing -> dwell/hysteresis gate, in plain Python.

    Follows the definition in :mod:`neuroloop.decoders.lda`: likelihoods are the LDA class
    scores without the log prior; ``p_t ∝ lik_t * (T.T @ p_{t-1})`` from ``p_{-1} = priors``;
    a state different from the gated one is entered after ``gate_hops`` consecutive hops as the
    most probable state above ``threshold``; invalid input restarts everything at rest.
    """

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray,
                 scale: np.ndarray, priors: np.ndarray, stay: float, gate_hops: int,
                 threshold: float) -> None:
        self.coef, self.intercept, self.mean, self.scale = coef, intercept, mean, scale
        self.priors = np.asarray(priors, dtype=float)
        n = len(priors)
        self.T = np.full((n, n), (1 - stay) / (n - 1))
        np.fill_diagonal(self.T, stay)
        self.gate_hops, self.threshold = gate_hops, threshold
        self.reset()

    def reset(self) -> None:
        self.p = self.priors.copy()
        self.state, self.candidate, self.count = 0, None, 0

    def step(self, x: np.ndarray) -> tuple[int, int, np.ndarray, float, bool]:
        """Returns (state, raw_state, probabilities, confidence, valid)."""
        if not np.all(np.isfinite(x)):
            self.reset()
            return 0, 0, self.priors.copy(), 0.0, False
        z = (x - self.mean) / self.scale
        loglik = self.coef @ z + self.intercept - np.log(self.priors)
        lik = np.exp(loglik - loglik.max())
        p = lik * (self.T.T @ self.p)
        p = p / p.sum()
        self.p = p
        raw = int(np.argmax(p))
        if raw != self.state and p[raw] > self.threshold:
            if raw == self.candidate:
                self.count += 1
            else:
                self.candidate, self.count = raw, 1
            if self.count >= self.gate_hops:
                self.state, self.candidate, self.count = raw, None, 0
        else:
            self.candidate, self.count = None, 0
        return self.state, raw, p.copy(), float(p[self.state]), True


def cobs_encode_ref(data: bytes) -> bytes:
    """COBS encoding, a plain-Python loop (Cheshire & Baker 1999; no trailing 0x01 after a
    final full 254-byte run)."""
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        n = len(chunk)
        pos = 0
        while n - pos >= 254:
            out.append(0xFF)
            out += chunk[pos:pos + 254]
            pos += 254
        if pos and pos == n and i == last:
            break
        out.append(n - pos + 1)
        out += chunk[pos:]
    return bytes(out)


def cobs_decode_ref(encoded: bytes) -> bytes | str:
    """COBS decoding, a plain-Python loop; a malformed frame gives the error text instead."""
    enc = bytes(encoded)
    n = len(enc)
    if n == 0:
        return "empty COBS frame"
    if 0 in enc:
        return "COBS frame contains a 0x00 byte"
    out = bytearray()
    i = 0
    while i < n:
        code = enc[i]
        end = i + code
        if end > n:
            return f"COBS code {code} at offset {i} runs past the frame end ({n} bytes)"
        out += enc[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ------------------------------------------------------------------------------------ control
def lda_outputs_ref(probs: np.ndarray, state: int, valid: bool) -> np.ndarray:
    """The LDA decoder's continuous outputs, from their definitions (NaN when invalid):
    confidence = p[state], state_margin = top-1 - top-2, movement_probability = 1 - p[rest]."""
    if not valid:
        return np.full(3, np.nan)
    top = np.sort(probs)[::-1]
    return np.array([probs[state], top[0] - top[1], min(max(float(np.sum(probs[1:])), 0.0),
                                                        1.0)])


class StimMapperRef:
    """The intention -> request mapper as it was before control policies (``StimMapper`` of
    neuroloop 0.1.0, verbatim): the ``program-per-state`` policy must match it bit for bit.

    Rest, an invalid output, or a state without a program: off. Otherwise the program's
    contact currents at ``min + clip((confidence - thr) / (1 - thr), 0, 1) * (max - min)``;
    a non-finite confidence gives amplitude 0.
    """

    def __init__(self, programs, confidence_threshold: float = 0.5) -> None:
        from neuroloop.stimulation.command import StimCommand

        if not 0.0 <= confidence_threshold < 1.0:
            raise ValueError("confidence_threshold must be in [0, 1)")
        self.programs = programs
        self.confidence_threshold = float(confidence_threshold)
        t = programs.table()
        self._signed = t["signed_fraction"]
        self._uses_case = t["uses_case"]
        self._freq = t["frequency_hz"]
        self._pw = t["pulse_width_us"]
        self._ipg = t["interphase_gap_us"]
        self._amin = t["amplitude_min_ma"]
        self._amax = t["amplitude_max_ma"]
        self._has = t["has_program"]
        self.request = StimCommand.off(programs.array.n_contacts)

    def program_amplitude_ma(self, state: int, confidence: float) -> float:
        if not (0 <= state < self._has.shape[0]) or not self._has[state]:
            return 0.0
        if not math.isfinite(confidence):
            return 0.0
        thr = self.confidence_threshold
        scale = min(max((confidence - thr) / (1.0 - thr), 0.0), 1.0)
        return float(self._amin[state] + scale * (self._amax[state] - self._amin[state]))

    def map(self, intention, cycle: int):
        from neuroloop.stimulation.command import PROGRAM_OFF

        req = self.request
        req.cycle = cycle
        state = int(intention.state)
        if (not intention.valid or state < 0 or state >= self._has.shape[0]
                or not self._has[state]):
            req.set_off()
            return req
        amp = self.program_amplitude_ma(state, float(intention.confidence))
        np.multiply(self._signed[state], amp, out=req.amplitude_ma)
        req.case_ma = amp if self._uses_case[state] else 0.0
        req.pulse_width_us = float(self._pw[state])
        req.frequency_hz = float(self._freq[state])
        req.interphase_gap_us = float(self._ipg[state])
        req.program_id = state if amp > 0 else PROGRAM_OFF
        return req


# ------------------------------------------------------------------- intracortical spike band
class SpikeBandRef:
    """Threshold crossings and spike-band power per bin, from the definition.

    ``x - x.mean(axis=1)`` (CAR), ``sosfilt`` with ``zi`` for the spike band and the
    spike-band-power band, RMS over the first ``calibration_bins`` bins, thresholds
    ``multiplier * RMS``, crossings ``y[t] < thr <= y[t-1]`` counted once thresholds exist,
    spike-band power ``mean(|y_sbp|)``. Output: crossings of every channel, then SBP.
    """

    def __init__(self, spike_sos: np.ndarray, sbp_sos: np.ndarray, n_channels: int, *,
                 car: bool, multiplier: float, calibration_bins: int) -> None:
        self.spk = SosfiltStream(spike_sos, n_channels)
        self.sbp = SosfiltStream(sbp_sos, n_channels)
        self.car = car
        self.multiplier = multiplier
        self.cal_left = calibration_bins
        self.cal_samples: list[np.ndarray] = []
        self.thr = np.full(n_channels, -np.inf)
        self.prev = np.zeros(n_channels)

    def step(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.car:
            x = x - x.mean(axis=1, keepdims=True)
        ys = self.spk.step(x)
        yb = self.sbp.step(x)
        both = np.vstack([self.prev[None, :], ys])
        tx = np.sum((both[1:] < self.thr) & (both[:-1] >= self.thr), axis=0).astype(float)
        self.prev = ys[-1].copy()
        if self.cal_left > 0:
            self.cal_samples.append(ys)
            self.cal_left -= 1
            if self.cal_left == 0:
                rms = np.sqrt(np.mean(np.vstack(self.cal_samples) ** 2, axis=0))
                self.thr = self.multiplier * rms
        return np.concatenate([tx, np.mean(np.abs(yb), axis=0)])
# ---------------------------------------------------------------------- decoder families (#10)
def kalman_ref(Z: np.ndarray, mu_z: np.ndarray, mu_x: np.ndarray, A: np.ndarray,
               W: np.ndarray, H: np.ndarray, Q: np.ndarray, P0: np.ndarray,
               K_steady: np.ndarray | None = None) -> np.ndarray:
    """Textbook Kalman filter (covariance form, ``K = Pp H' (H Pp H' + Q)^-1``) over ``Z``
    (n_hops, p), in centred coordinates; a hop with a non-finite feature gives a NaN row and
    restarts from ``(0, P0)``. With ``K_steady`` the gain is that constant matrix."""
    d = mu_x.shape[0]
    out = np.full((Z.shape[0], d), np.nan)
    s = np.zeros(d)
    P = P0.copy()
    for h, z in enumerate(Z):
        if not np.all(np.isfinite(z)):
            s, P = np.zeros(d), P0.copy()
            continue
        sp = A @ s
        if K_steady is None:
            Pp = A @ P @ A.T + W
            S = H @ Pp @ H.T + Q
            K = np.linalg.solve(S, H @ Pp).T
            P = (np.eye(d) - K @ H) @ Pp
        else:
            K = K_steady
        s = sp + K @ (z - mu_z - H @ sp)
        out[h] = mu_x + s
    return out


class GatedDecisionRef:
    """Per-state log-likelihoods -> (HMM forward smoothing + dwell/hysteresis gate) or the
    plain posterior ``softmax(loglik + log prior)``; an invalid hop restarts at state 0
    (the decision stage of :mod:`neuroloop.decoders._gate_kernels`)."""

    def __init__(self, priors: np.ndarray, use_gate: bool, stay: float, gate_hops: int,
                 threshold: float) -> None:
        self.priors = np.asarray(priors, dtype=float)
        n = self.priors.size
        self.T = np.full((n, n), (1 - stay) / (n - 1))
        np.fill_diagonal(self.T, stay)
        self.use_gate, self.gate_hops, self.threshold = use_gate, gate_hops, threshold
        self.reset()

    def reset(self) -> None:
        self.p = self.priors.copy()
        self.state, self.candidate, self.count = 0, None, 0

    def step(self, loglik: np.ndarray | None) -> tuple[int, int, np.ndarray, bool]:
        """``loglik`` None or non-finite = invalid. Returns (state, raw, probs, valid)."""
        if loglik is None or not np.all(np.isfinite(loglik)):
            self.reset()
            return 0, 0, self.priors.copy(), False
        if self.use_gate:
            a = loglik + np.log(self.T.T @ self.p)
        else:
            a = loglik + np.log(self.priors)
        p = np.exp(a - a.max())
        p = p / p.sum()
        self.p = p
        raw = int(np.argmax(p))
        if not self.use_gate:
            self.state = raw
        elif raw != self.state and p[raw] > self.threshold:
            if raw == self.candidate:
                self.count += 1
            else:
                self.candidate, self.count = raw, 1
            if self.count >= self.gate_hops:
                self.state, self.candidate, self.count = raw, None, 0
        else:
            self.candidate, self.count = None, 0
        return self.state, raw, p.copy(), True


def window_covariances_ref(X: np.ndarray, n_channels: int, n_bands: int, window_hops: int,
                           shrinkage: float) -> list[np.ndarray | None]:
    """Per hop: the shrunk mean of the last ``window_hops`` valid packed hop covariances as
    (n_bands, n, n) matrices, or None for a hop with a non-finite feature (left out)."""
    iu = np.triu_indices(n_channels)
    p = iu[0].size
    kept: list[np.ndarray] = []
    out: list[np.ndarray | None] = []
    for x in X:
        if not np.all(np.isfinite(x)):
            out.append(None)
            continue
        kept.append(x)
        m = np.mean(np.array(kept[-window_hops:]), axis=0)
        covs = []
        for b in range(n_bands):
            C = np.zeros((n_channels, n_channels))
            C[iu] = m[b * p:(b + 1) * p]
            C = C + np.triu(C, 1).T
            mu = np.trace(C) / n_channels
            covs.append((1 - shrinkage) * C + shrinkage * mu * np.eye(n_channels))
        out.append(np.array(covs))
    return out


def tangent_vector_ref(C: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``upper(logm(ref^-1/2 C ref^-1/2))`` with sqrt(2) off-diagonal weights (NumPy: the
    inverse square root and the log through ``numpy.linalg.eigh``)."""
    w, V = np.linalg.eigh(ref)
    r = (V / np.sqrt(w)) @ V.T
    w, V = np.linalg.eigh(r @ C @ r)
    S = (V * np.log(w)) @ V.T
    n = C.shape[0]
    iu = np.triu_indices(n)
    w = np.where(iu[0] == iu[1], 1.0, np.sqrt(2.0))
    return w * S[iu]


def csp_log_variance_ref(C: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """``log(diag(W C W'))`` of CSP filters ``W`` (n_filters, n)."""
    return np.log(np.diag(filters @ C @ filters.T))


# ------------------------------------------------------------- intracortical synthetic source
_M64 = (1 << 64) - 1
_GOLD64 = 0x9E3779B97F4A7C15


def _mix64_ref(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _hash64_ref(key: int, a: int, b: int) -> int:
    return _mix64_ref(key ^ _mix64_ref((a * _GOLD64 + b) & _M64))


def min_jerk_velocity_ref(s: int, starts: np.ndarray, lengths: np.ndarray, p0: np.ndarray,
                          p1: np.ndarray, fs: float) -> np.ndarray:
    """Minimum-jerk velocity (Flash & Hogan 1985) at sample ``s`` of a segment table."""
    k = int(np.searchsorted(starts, s, side="right")) - 1
    if k < 0:
        return np.zeros(2)
    tau = (s - starts[k]) / lengths[k]
    if tau >= 1.0:
        return np.zeros(2)
    duration_s = lengths[k] / fs
    return (p1[k] - p0[k]) / duration_s * 30.0 * tau ** 2 * (1.0 - tau) ** 2


class IntracorticalSynthRef:
    """The intracortical population from its definition, in NumPy and plain Python (slow:
    for a few channels and a few hundred samples). Reads the model parameters of an
    :class:`~neuroloop.acquisition.intracortical.IntracorticalSource`."""

    def __init__(self, src) -> None:  # noqa: ANN001 - any IntracorticalSource
        self.s = src

    def block(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.s
        t = s.tasks
        key = int(s._key)
        fs, tick, C = s.fs, s.tick, s.n_electrodes
        p0 = np.stack([t.x0, t.y0], axis=1)
        p1 = np.stack([t.x1, t.y1], axis=1)
        tsec = (first + np.arange(n)) / fs
        comp = (np.sin(2 * np.pi * np.outer(tsec, s._lfp_f) + s._lfp_ph)
                * (1.0 + 0.5 * np.sin(2 * np.pi * np.outer(tsec, s._lfp_mf) + s._lfp_mph)))
        cm = np.zeros(n)
        u = lambda a, b: (_hash64_ref(key, a, b) >> 11) / 2.0 ** 53  # noqa: E731
        if s._cm_rate > 0:
            for k in range(max(0, first // tick - s._cm_max_ticks), (first + n - 1) // tick + 1):
                if u(k, 0x7FFFFFFF) >= s._cm_rate:
                    continue
                tau = (0.002 + 0.008 * u(k, 0x7FFFFFFE)) * fs
                amp = 300.0 + 1200.0 * u(k, 0x7FFFFFFD)
                amp = -amp if u(k, 0x7FFFFFFC) < 0.5 else amp
                onset, length = k * tick, min(int(8.0 * tau), s._cm_max_ticks * tick)
                for q in range(max(onset, first), min(onset + length, first + n)):
                    x = (q - onset) / tau
                    cm[q - first] += amp * x * math.exp(1.0 - x)
        span = s._noise.shape[0] - C
        out = np.zeros((n, C))
        for i in range(n):
            off = _hash64_ref(key, first + i, 0x5EED) % span
            v = s._noise[off:off + C].astype(np.float64) * s._noise_sd + s._cm_gain * cm[i]
            for k in range(comp.shape[1]):
                v = v + s._lfp_w[k] * comp[i, k]
            out[i] = v
        if s.spikes:
            w = s._template.shape[0]
            for k in range(max(0, (first - w) // tick), (first + n - 1) // tick + 1):
                v = min_jerk_velocity_ref(k * tick, t.starts, t.lengths, p0, p1, fs) / 0.2
                rate = np.minimum(s._base + s._depth * (v[0] * s._cos + v[1] * s._sin), 500.0)
                for c in range(C):
                    if rate[c] <= 0:
                        continue
                    h = _hash64_ref(key, k, c + 1)
                    if (h >> 11) / 2.0 ** 53 >= rate[c] * tick / fs:
                        continue
                    s0 = k * tick + (h & 0x3FF) % tick
                    for q in range(max(s0, first), min(s0 + w, first + n)):
                        out[q - first, c] += s._amp[c] * s._template[q - s0]
        counts = np.clip(np.rint(out / s.gain_uv), -32768, 32767)
        return counts * s.gain_uv, counts.astype(np.int16)
class AdaptiveRef:
    """The ``adaptive`` decoder in NumPy: standardise, ``softmax(beta W'[z, 1])`` scores,
    :class:`GatedDecisionRef`, then an RLS update with forgetting towards the raw state when
    its probability reaches ``adapt_confidence``; a violated bound makes every later hop
    invalid."""

    def __init__(self, W0: np.ndarray, mean: np.ndarray, scale: np.ndarray, beta: float,
                 priors: np.ndarray, P0: np.ndarray, forgetting: float, adapt_confidence: float,
                 max_drift: float, max_trace: float, gate: GatedDecisionRef) -> None:
        self.W0, self.mean, self.scale, self.beta = W0, mean, scale, beta
        self.priors, self.gate = np.asarray(priors), gate
        self.lam, self.conf = forgetting, adapt_confidence
        self.max_drift, self.max_trace = max_drift * np.linalg.norm(W0), max_trace
        self.W = W0.copy()
        self.P = P0.copy()
        self.diverged = False

    def step(self, x: np.ndarray) -> tuple[int, int, np.ndarray, bool]:
        if self.diverged or not np.all(np.isfinite(x)):
            return self.gate.step(None)
        phi = np.append((x - self.mean) / self.scale, 1.0)
        scores = self.W.T @ phi
        state, raw, p, valid = self.gate.step(self.beta * scores - np.log(self.priors))
        if valid and p[state] >= self.conf and self.conf < 1:
            Pphi = self.P @ phi
            k = Pphi / (self.lam + phi @ Pphi)
            t = np.eye(self.W.shape[1])[raw]
            self.W = self.W + np.outer(k, t - scores)
            self.P = (self.P - np.outer(k, Pphi)) / self.lam
            if (not np.all(np.isfinite(self.W)) or not np.all(np.isfinite(np.diag(self.P)))
                    or np.linalg.norm(self.W - self.W0) > self.max_drift
                    or np.trace(self.P) > self.max_trace):
                self.diverged = True
        return state, raw, p, valid


# ------------------------------------------------------------------- responsive detectors
def detector_measures_ref(x: np.ndarray, hop: int, pre_sos: np.ndarray,
                          band_sos: np.ndarray) -> np.ndarray:
    """Line length, area and band RMS per hop and channel (measure-major), written from the
    definition with ``scipy.signal.sosfilt`` over the whole (finite) record, each cascade
    starting from the steady state of its first input sample (``sosfilt_zi``).

    Returns
    -------
    ndarray, shape (n_samples // hop, 3 * n_channels)
    """
    x = np.asarray(x, dtype=np.float64)
    n_hops = x.shape[0] // hop
    x = x[: n_hops * hop]
    n_ch = x.shape[1]

    def run(sos: np.ndarray, v: np.ndarray) -> np.ndarray:
        if sos.shape[0] == 0:
            return v.copy()
        zi = scipy.signal.sosfilt_zi(sos)[:, :, None] * v[0][None, None, :]
        return scipy.signal.sosfilt(sos, v, axis=0, zi=zi)[0]

    y = run(pre_sos, x)
    b = run(band_sos, y)
    out = np.zeros((n_hops, 3 * n_ch))
    d = np.abs(np.diff(y, axis=0))  # d[t - 1] = |y[t] - y[t - 1]|
    for h in range(n_hops):
        t0, t1 = h * hop, (h + 1) * hop
        diffs = d[max(t0 - 1, 0):t1 - 1]
        out[h, :n_ch] = diffs.mean(axis=0)
        out[h, n_ch:2 * n_ch] = np.abs(y[t0:t1]).mean(axis=0)
        out[h, 2 * n_ch:] = np.sqrt((b[t0:t1] ** 2).mean(axis=0))
    return out


class ResponsiveDetectorRef:
    """The RNS-style detector written from its definition (plain Python, one hop at a time).

    Parameters mirror :class:`neuroloop.decoders.responsive.ResponsiveDetector` in hops:
    ``window`` (2,), ``threshold`` (2,) as fractions, ``alpha`` (2,), ``masks`` (3, n_ch)
    bool, ``logic_and`` (3,), ``enabled`` (3,), ``min_amp``, ``min_hops``, ``init_hops``,
    ``combine_and``.
    """

    def __init__(self, n_ch: int, enabled, masks, logic_and, combine_and, window, threshold,
                 alpha, min_amp, min_hops, init_hops) -> None:
        self.n = n_ch
        self.enabled, self.masks, self.logic_and = list(enabled), np.asarray(masks), logic_and
        self.combine_and, self.window, self.threshold = combine_and, window, threshold
        self.alpha, self.min_amp, self.min_hops, self.init = alpha, min_amp, min_hops, init_hops
        self.hist: list[list[np.ndarray]] = [[], []]
        self.trend = np.zeros((2, n_ch))
        self.run = np.zeros(n_ch, dtype=int)
        self.seen = 0

    def step(self, f: np.ndarray) -> tuple[int, float]:
        """(detection 0/1 or -1 for an invalid hop, combined score)."""
        n = self.n
        if not np.all(np.isfinite(f)):
            return -1, math.nan
        self.seen += 1
        learning = self.seen <= self.init
        scores = []
        for d in range(3):
            ch_scores = []
            for c in range(n):
                if d < 2:
                    if c == 0:
                        self.hist[d].append(f[d * n:(d + 1) * n].copy())
                    w = min(self.window[d], self.seen)
                    win = float(np.mean([h[c] for h in self.hist[d][-w:]]))
                    if learning:
                        self.trend[d, c] += (win - self.trend[d, c]) / self.seen
                        s = 0.0
                    else:
                        tr = self.trend[d, c]
                        ratio = win / tr if tr > 0 else (math.inf if win > 0 else 1.0)
                        s = (ratio - 1.0) / self.threshold[d]
                        if s < 1.0:
                            self.trend[d, c] += self.alpha[d] * (win - tr)
                else:
                    rms = f[2 * n + c]
                    if rms >= self.min_amp:
                        self.run[c] += 1
                        s = min(rms / self.min_amp, self.run[c] / self.min_hops)
                    else:
                        self.run[c] = 0
                        s = 0.0
                    if learning:
                        s = 0.0
                if self.masks[d, c]:
                    ch_scores.append(s)
            if self.enabled[d]:
                scores.append(min(ch_scores) if self.logic_and[d] else max(ch_scores))
        combined = (min(scores) if self.combine_and else max(scores)) if scores else 0.0
        return int(combined >= 1.0), combined


class CovariancePipelineRef:
    """CAR -> notch -> band-pass per band (``sosfilt`` with ``zi``) -> ``Y'Y / hop`` packed as
    the upper triangle (``numpy.triu_indices``), band-major, one hop at a time."""

    def __init__(self, n_channels: int, bank_sos: Sequence[np.ndarray], notch_sos: np.ndarray,
                 car: bool) -> None:
        self.car = car
        self.notch = SosfiltStream(notch_sos, n_channels)
        self.bands = [SosfiltStream(s, n_channels) for s in bank_sos]
        self.iu = np.triu_indices(n_channels)

    def step(self, x: np.ndarray) -> np.ndarray:
        if self.car:
            x = car_ref(x)
        x = self.notch.step(x)
        out = []
        for band in self.bands:
            y = band.step(x)
            out.append((y.T @ y / y.shape[0])[self.iu])
        return np.concatenate(out)
