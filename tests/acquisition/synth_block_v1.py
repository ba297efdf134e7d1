"""Frozen copy of the scalar ``synth_block`` kernel as it was before the vectorised rewrite.

The synthetic patient's output must stay bit-identical to this version (every sample and
label, any block cutting); ``test_synth_block_identity.py`` compares the two. Only the
name changed (``synth_block`` -> ``synth_block_v1``); the RNG and target helpers are copied
too, so that a later change to the package's helpers cannot change the reference.
It takes the old arguments: ``sos`` packed by ``pack_sections`` (max_sections, 6, n_sources),
the channel-major CSR lead field ``lf_ptr, lf_src, lf_w`` and ``scratch`` (2, n_sources).
"""

from __future__ import annotations

import math

import numpy as np

from neuroloop._jit import jit
from neuroloop.acquisition._synth_kernels import (
    ARTIFACT_SATURATION,
    ARTIFACT_SPIKE,
    ziggurat_tables,
)

_ZIG_X, _ZIG_RATIO = ziggurat_tables()
_TWO_M53 = 1.0 / 9007199254740992.0


@jit
def _rotl(x: np.uint64, k: np.uint64) -> np.uint64:
    return (x << k) | (x >> (np.uint64(64) - k))


@jit
def _next_u64(s: np.ndarray) -> np.uint64:
    """xoshiro256** step: returns the next 64-bit output and advances ``s`` in place."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, np.uint64(45))
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@jit
def _open_uniform(s: np.ndarray) -> float:
    """Uniform deviate in the open interval (0, 1) (safe for ``log``)."""
    return (float(np.int64(_next_u64(s) >> np.uint64(11))) + 0.5) * _TWO_M53


@jit
def _normal_slow(s: np.ndarray, u: float, i: np.int64, zx: np.ndarray, zr: np.ndarray) -> float:
    """Rest of the ZIGNOR ziggurat after the rectangle test of ``(u, i)`` failed.

    Callers inline the fast path (about 98.5 % of draws)::

        bits = _next_u64(s)
        u = 2.0 * float(np.int64(bits >> 11)) * 2**-53 - 1.0    # uniform in [-1, 1)
        i = np.int64(bits & 0xFF)                                # layer
        z = u * zx[i] if abs(u) < zr[i] else _normal_slow(s, u, i, zx, zr)

    (a non-inlined call per deviate costs Numba an order of magnitude in speed).
    """
    while True:
        if i == 0:
            # tail beyond R (Marsaglia 1964)
            while True:
                xt = math.log(_open_uniform(s)) / zx[1]
                yt = math.log(_open_uniform(s))
                if -2.0 * yt >= xt * xt:
                    break
            if u < 0.0:
                return xt - zx[1]
            return zx[1] - xt
        # wedge between layer i and i + 1
        xx = u * zx[i]
        f0 = math.exp(-0.5 * (zx[i] * zx[i] - xx * xx))
        f1 = math.exp(-0.5 * (zx[i + 1] * zx[i + 1] - xx * xx))
        if f1 + _open_uniform(s) * (f0 - f1) < 1.0:
            return xx
        # rejected: a fresh draw, starting with the rectangle test
        bits = _next_u64(s)
        u = 2.0 * (float(np.int64(bits >> np.uint64(11))) * _TWO_M53) - 1.0
        i = np.int64(bits & np.uint64(0xFF))
        if abs(u) < zr[i]:
            return u * zx[i]


@jit
def _normals_into(state: np.ndarray, out: np.ndarray, zx: np.ndarray, zr: np.ndarray) -> None:
    """Fill ``out`` (float64, 1-D) with standard normal deviates; advances ``state``.

    The xoshiro state lives in registers for the whole fill (a load and a store per draw
    would put a store-to-load round trip on the generator's dependency chain); it goes back
    to ``state`` around the rare slow path, which draws through the array.
    """
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    for k in range(out.shape[0]):
        bits = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
        t = s1 << np.uint64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, np.uint64(45))
        u = 2.0 * (float(np.int64(bits >> np.uint64(11))) * _TWO_M53) - 1.0
        i = np.int64(bits & np.uint64(0xFF))
        if abs(u) < zr[i]:
            out[k] = u * zx[i]
        else:
            state[0] = s0
            state[1] = s1
            state[2] = s2
            state[3] = s3
            out[k] = _normal_slow(state, u, i, zx, zr)
            s0 = state[0]
            s1 = state[1]
            s2 = state[2]
            s3 = state[3]
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3


@jit
def _update_targets(seg: int, states: np.ndarray, strengths: np.ndarray,
                    logmod: np.ndarray, target: np.ndarray) -> None:
    st = states[seg]
    g = strengths[seg]
    for src in range(target.shape[0]):
        target[src] = math.exp(g * logmod[st, src])



@jit
def synth_block_v1(
    n: int,
    first_index: int,
    out: np.ndarray,
    labels: np.ndarray,
    onsets: np.ndarray,
    states: np.ndarray,
    strengths: np.ndarray,
    cursor: np.ndarray,
    rng: np.ndarray,
    sos: np.ndarray,
    zi: np.ndarray,
    logmod: np.ndarray,
    env: np.ndarray,
    target: np.ndarray,
    env_alpha: float,
    lf_ptr: np.ndarray,
    lf_src: np.ndarray,
    lf_w: np.ndarray,
    line_hz: np.ndarray,
    line_a: np.ndarray,
    line_b: np.ndarray,
    sampling_rate_hz: float,
    rail_uv: float,
    ev_onset: np.ndarray,
    ev_len: np.ndarray,
    ev_kind: np.ndarray,
    ev_amp: np.ndarray,
    ev_tau: np.ndarray,
    ev_w: np.ndarray,
    ev_hold: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Generate samples ``first_index .. first_index + n - 1`` into ``out[:n]``, ``labels[:n]``.

    Sample-major, like the stream; within a sample the sources are processed as vectors
    (the deviates of all sources, then each filter section over all sources, the envelopes,
    then each channel gathers its sources), so the compiler can use SIMD across sources.
    Every value is computed by the same IEEE operations in the same order as the scalar
    recursion (no reassociation, no fused multiply-add), so the output does not depend on
    the vector width or on how the caller cuts the stream into blocks.

    Parameters
    ----------
    n : int
        Number of samples to generate (``<= out.shape[0]``).
    first_index : int
        Stream index of the first sample; calls must be consecutive (the filter, envelope and
        RNG states carry the stream).
    out : ndarray, shape (>= n, n_channels), float64, microvolts
    labels : ndarray, shape (>= n,), int8
        Ground-truth state per sample (from the schedule).
    onsets, states, strengths : ndarray, shape (n_segments,)
        Schedule: segment start (int64 sample index), state (int8), modulation strength.
    cursor : ndarray, shape (3,), int64
        ``[segment, first unfinished artifact, segment the targets were computed for]``;
        start with ``[0, 0, -1]``.
    rng : ndarray, shape (4,), uint64
        xoshiro256** state (advanced in place); one deviate per source per sample, drawn
        sample-major, then source by source.
    sos : ndarray, shape (max_sections, 6, n_sources)
        Per-source SOS cascades packed by :func:`pack_sections` (``a0 == 1``; identity
        sections where a source has fewer).
    zi : ndarray, shape (max_sections, 2, n_sources)
        Direct-form-II-transposed filter states (updated in place).
    logmod : ndarray, shape (n_states, n_sources)
        Natural log of each source's amplitude factor in each state (0 = unmodulated).
    env, target : ndarray, shape (n_sources,)
        Current envelope and its target (``exp(strength * logmod[state])``), in place.
    env_alpha : float
        One-pole smoothing coefficient of the envelope per sample.
    lf_ptr, lf_src, lf_w : ndarray
        Channel-major CSR lead field (:func:`lead_field_by_channel`): channel ``c`` adds
        ``lf_w[j] * signal[lf_src[j]]`` for ``j`` in ``lf_ptr[c] .. lf_ptr[c + 1] - 1``
        (microvolts per unit source).
    line_hz : ndarray, shape (n_harmonics,)
        Frequencies of the mains components.
    line_a, line_b : ndarray, shape (n_harmonics, n_channels)
        Sine and cosine amplitudes (uV) of each component on each channel.
    sampling_rate_hz : float
    rail_uv : float
        Amplifier rail: every sample is clipped to ``[-rail_uv, rail_uv]``.
    ev_onset, ev_len, ev_kind, ev_amp, ev_tau : ndarray, shape (n_events,)
        Artifact table sorted by onset: start sample, length (samples), kind code
        (:data:`ARTIFACT_SPIKE`, :data:`ARTIFACT_SATURATION`, :data:`ARTIFACT_FLAT`),
        amplitude (uV; the signed rail value for saturation) and spike time constant
        (samples).
    ev_w : ndarray, shape (n_events, n_channels)
        Per-channel weight of each artifact (0 = channel untouched).
    ev_hold : ndarray, shape (n_events, n_channels)
        Value a flat channel holds (written at the artifact's onset).
    scratch : ndarray, shape (2, n_sources), float64
        Work space (the sources' signal of the current sample).
    """
    n_sec = sos.shape[0]
    n_src = sos.shape[2]
    n_ch = out.shape[1]
    n_seg = onsets.shape[0]
    n_ev = ev_onset.shape[0]
    n_harm = line_hz.shape[0]
    two_pi = 2.0 * math.pi
    zx = _ZIG_X
    zr = _ZIG_RATIO
    xv = scratch[0]
    seg = cursor[0]
    while seg > 0 and onsets[seg] > first_index:
        seg -= 1
    for k in range(n):
        idx = first_index + k
        while seg + 1 < n_seg and onsets[seg + 1] <= idx:
            seg += 1
        if seg != cursor[2]:
            _update_targets(seg, states, strengths, logmod, target)
            cursor[2] = seg
        labels[k] = states[seg]

        # sources: white deviate -> SOS cascade -> task envelope (vectors over sources)
        _normals_into(rng, xv, zx, zr)
        for sec in range(n_sec):
            b0 = sos[sec, 0]
            b1 = sos[sec, 1]
            b2 = sos[sec, 2]
            a1 = sos[sec, 4]
            a2 = sos[sec, 5]
            z0 = zi[sec, 0]
            z1 = zi[sec, 1]
            for src in range(n_src):
                x = xv[src]
                y = b0[src] * x + z0[src]
                z0[src] = b1[src] * x - a1[src] * y + z1[src]
                z1[src] = b2[src] * x - a2[src] * y
                xv[src] = y
        for src in range(n_src):
            e = env[src] + env_alpha * (target[src] - env[src])
            env[src] = e
            xv[src] = xv[src] * e

        # mains interference (phase is a function of the absolute sample index only), then
        # each channel gathers its sources in source order
        for ch in range(n_ch):
            out[k, ch] = 0.0
        for h in range(n_harm):
            phase = two_pi * ((idx * line_hz[h]) % sampling_rate_hz) / sampling_rate_hz
            sn = math.sin(phase)
            cs = math.cos(phase)
            for ch in range(n_ch):
                out[k, ch] += line_a[h, ch] * sn + line_b[h, ch] * cs
        for ch in range(n_ch):
            acc = out[k, ch]
            for j in range(lf_ptr[ch], lf_ptr[ch + 1]):
                acc += lf_w[j] * xv[lf_src[j]]
            out[k, ch] = acc

        # artifacts
        ev = cursor[1]
        while ev < n_ev and ev_onset[ev] + ev_len[ev] <= idx:
            ev += 1
        cursor[1] = ev
        while ev < n_ev and ev_onset[ev] <= idx:
            t = idx - ev_onset[ev]
            if t < ev_len[ev]:
                kind = ev_kind[ev]
                if kind == ARTIFACT_SPIKE:
                    r = t / ev_tau[ev]
                    shape = ev_amp[ev] * r * math.exp(1.0 - r)
                    for ch in range(n_ch):
                        out[k, ch] += ev_w[ev, ch] * shape
                elif kind == ARTIFACT_SATURATION:
                    for ch in range(n_ch):
                        if ev_w[ev, ch] != 0.0:
                            out[k, ch] = ev_amp[ev]
                else:
                    for ch in range(n_ch):
                        if ev_w[ev, ch] != 0.0:
                            if t == 0:
                                ev_hold[ev, ch] = out[k, ch]
                            out[k, ch] = ev_hold[ev, ch]
            ev += 1

        for ch in range(n_ch):
            val = out[k, ch]
            if val > rail_uv:
                out[k, ch] = rail_uv
            elif val < -rail_uv:
                out[k, ch] = -rail_uv
    cursor[0] = seg
