"""Slow, independent references for the synthetic patient's kernels.

* :func:`xoshiro256ss` - the generator on Python integers, from the authors' C code.
* :func:`ziggurat_normals` - Doornik's ZIGNOR on top of any 64-bit stream, in plain Python.
* :func:`synth_reference` - the whole patient model in NumPy/SciPy: ``scipy.signal.sosfilt``
  for the source filters, ``scipy.signal.lfilter`` for the task envelopes, a dense lead
  field, mains, artifacts event by event and the rail clip, all over the whole stream at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import signal

MASK64 = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


def xoshiro256ss(state: list[int]) -> Iterator[int]:
    """Endless xoshiro256** outputs from a 4-word state (copied)."""
    s = [int(v) & MASK64 for v in state]
    while True:
        result = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        yield result


def ziggurat_normals(stream: Iterator[int], n: int, n_layers: int = 256,
                     r: float = 3.6541528853610088, v: float = 0.00492867323399) -> np.ndarray:
    """``n`` standard normals by ZIGNOR (Doornik 2005) from a stream of 64-bit integers.

    The layer is the low 8 bits and the uniform the top 53 bits of one draw, as in the kernel.
    """
    x = [0.0] * (n_layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, n_layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = [x[i + 1] / x[i] for i in range(n_layers)]

    def uniform_open() -> float:
        return ((next(stream) >> 11) + 0.5) / 2.0**53

    def one() -> float:
        while True:
            bits = next(stream)
            u = 2.0 * ((bits >> 11) / 2.0**53) - 1.0
            i = bits & (n_layers - 1)
            if abs(u) < ratio[i]:
                return u * x[i]
            if i == 0:
                while True:
                    xt = math.log(uniform_open()) / r
                    yt = math.log(uniform_open())
                    if -2.0 * yt >= xt * xt:
                        break
                return xt - r if u < 0 else r - xt
            xx = u * x[i]
            f0 = math.exp(-0.5 * (x[i] * x[i] - xx * xx))
            f1 = math.exp(-0.5 * (x[i + 1] * x[i + 1] - xx * xx))
            if f1 + uniform_open() * (f0 - f1) < 1.0:
                return xx

    return np.array([one() for _ in range(n)])


def synth_reference(
    n: int,
    normals: np.ndarray,
    onsets: np.ndarray,
    states: np.ndarray,
    strengths: np.ndarray,
    model: object,
    env_alpha: float,
    sampling_rate_hz: float,
    rail_uv: float,
    artifacts: object,
    n_channels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``0 .. n - 1`` of the patient model from the given white deviates.

    Parameters
    ----------
    normals : (n, n_sources) the white deviate of every source at every sample
    onsets, states, strengths : the schedule
    model : ``_synth_models.Model``
    artifacts : ``synthetic.ArtifactTable`` (onset, length, kind, amp, tau, weights)

    Returns
    -------
    out : (n, n_channels) float64, labels : (n,) int8
    """
    m = model
    idx = np.arange(n)
    seg = np.searchsorted(onsets, idx, side="right") - 1
    labels = states[seg].astype(np.int8)

    # task envelopes: one-pole smoothing of exp(strength * logmod[state]) from 1.0
    targets = np.exp(strengths[seg][:, None] * m.logmod[states[seg]])
    env = signal.lfilter([env_alpha], [1.0, -(1.0 - env_alpha)], targets, axis=0,
                         zi=np.full((1, targets.shape[1]), 1.0 - env_alpha))[0]

    # sources through their SOS cascades
    n_src = m.sos.shape[0]
    src = np.empty((n, n_src))
    for s in range(n_src):
        k = int(m.n_sections[s])
        src[:, s] = signal.sosfilt(m.sos[s, :k], normals[:, s]) if k else normals[:, s]
    src *= env

    # dense lead field
    lead = np.zeros((n_src, n_channels))
    for s in range(n_src):
        for j in range(m.mix_ptr[s], m.mix_ptr[s + 1]):
            lead[s, m.mix_ch[j]] += m.mix_w[j]
    out = src @ lead

    for h in range(m.line_hz.shape[0]):
        phase = 2.0 * np.pi * np.mod(idx * m.line_hz[h], sampling_rate_hz) / sampling_rate_hz
        out += np.sin(phase)[:, None] * m.line_a[h] + np.cos(phase)[:, None] * m.line_b[h]

    a = artifacts
    for e in range(a.onset.shape[0]):
        o = int(a.onset[e])
        if o >= n:
            break
        stop = min(n, o + int(a.length[e]))
        t = np.arange(stop - o)
        w = a.weights[e]
        if a.kind[e] == 0:  # spike
            rr = t / a.tau[e]
            out[o:stop] += (a.amp[e] * rr * np.exp(1.0 - rr))[:, None] * w
        elif a.kind[e] == 1:  # saturation
            out[o:stop, w != 0] = a.amp[e]
        else:  # flat: hold the value at onset
            out[o:stop, w != 0] = out[o, w != 0]
    np.clip(out, -rail_uv, rail_uv, out=out)
    return out, labels
