"""Compiled kernels of the synthetic intracortical population (private; see
:mod:`neuroloop.acquisition.intracortical` for the model).

Everything random is *counter-based*: a draw is a hash (SplitMix64 finaliser) of the stream key,
the tick (or sample) index and the unit, never the state of a sequential generator. A sample
therefore depends only on its index and the options, not on how the stream is cut into
blocks, and a block can be produced without replaying what came before it. All kernels are
``nogil`` (:mod:`neuroloop._jit`), so the producer thread generates while the controller runs.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["velocity_at", "mean_velocity", "fill_task_labels", "synth_raw_block"]

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / 9007199254740992.0


@jit
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def _hash(key, a, b):
    """64 well-mixed bits of (key, a, b); a, b >= 0."""
    return _mix(key ^ _mix(np.uint64(a) * _GOLD + np.uint64(b)))


@jit
def _uniform(key, a, b):
    """A uniform draw in [0, 1) from (key, a, b)."""
    return float(_hash(key, a, b) >> np.uint64(11)) * _INV53


@jit
def velocity_at(s, starts, lengths, x0, y0, x1, y1, fs):
    """Velocity (m/s) at sample ``s`` of the task: minimum-jerk reaches, zero while holding.

    A reach over ``T`` seconds from ``p0`` to ``p1`` moves at
    ``(p1 - p0) / T * 30 tau^2 (1 - tau)^2`` with ``tau = (s - start) / length``
    (Flash & Hogan 1985); a hold segment has ``p0 == p1`` and no velocity.
    """
    k = np.searchsorted(starts, s, side="right") - 1
    if k < 0:
        return 0.0, 0.0
    n = lengths[k]
    tau = (s - starts[k]) / n
    if tau >= 1.0:
        return 0.0, 0.0
    g = 30.0 * tau * tau * (1.0 - tau) * (1.0 - tau) * fs / n
    return (x1[k] - x0[k]) * g, (y1[k] - y0[k]) * g


@jit
def mean_velocity(first, n_bins, bin_samples, starts, lengths, x0, y0, x1, y1, fs, out):
    """Mean velocity over each of ``n_bins`` bins from sample ``first``; ``out`` (n_bins, 2)."""
    inv = 1.0 / bin_samples
    for b in range(n_bins):
        sx = 0.0
        sy = 0.0
        s0 = first + b * bin_samples
        for s in range(s0, s0 + bin_samples):
            vx, vy = velocity_at(s, starts, lengths, x0, y0, x1, y1, fs)
            sx += vx
            sy += vy
        out[b, 0] = sx * inv
        out[b, 1] = sy * inv


@jit
def fill_task_labels(first, starts, moving, labels):
    """``labels[i]`` = 1 while reaching, 0 while holding, for samples ``first + i``."""
    k = np.searchsorted(starts, first, side="right") - 1
    for i in range(labels.shape[0]):
        s = first + i
        while k + 1 < starts.shape[0] and starts[k + 1] <= s:
            k += 1
        labels[i] = moving[k] if k >= 0 else 0


@jit
def synth_raw_block(first, out, counts, key, fs, tick, starts, lengths, x0, y0, x1, y1,
                    base_hz, depth_hz, cos_pd, sin_pd, v_ref, spike_amp, template,
                    noise_tab, noise_sd, lfp_w, lfp_f, lfp_ph, lfp_mf, lfp_mph,
                    cm_gain, cm_rate_per_tick, cm_max_ticks, gain_uv, comp, spikes_on):
    """Samples ``first .. first + n - 1`` of every electrode.

    Parameters
    ----------
    first : int
        Stream index of ``out[0]``.
    out : ndarray, shape (n, n_channels), float64
        Microvolts as the host receives them: ``counts * gain_uv``.
    counts : ndarray, shape (n, n_channels), int16
        The ADC counts (what a headstage delivers).
    key : uint64
        Stream key (seed, segment, patient mixed).
    fs : float
        Sampling rate, Hz.
    tick : int
        Samples per firing-rate tick (1 ms).
    starts ... y1 : task segment table (see :func:`velocity_at`).
    base_hz, depth_hz, cos_pd, sin_pd : ndarray, shape (n_channels,)
        Cosine tuning: ``rate = base + depth * (v . d) / v_ref``, clipped to [0, 500] Hz.
    v_ref : float
        Speed (m/s) at which a unit moving in its preferred direction reaches base + depth.
    spike_amp : ndarray, shape (n_channels,)
        Spike trough amplitude (uV, positive).
    template : ndarray, shape (W,)
        Unit-amplitude spike waveform (trough -1).
    noise_tab : ndarray, shape (L,), float32
        Standard-normal table; row ``t`` reads ``L - n_channels`` x hash-chosen offset.
    noise_sd : ndarray, shape (n_channels,)
        Background noise per electrode, uV rms.
    lfp_w : ndarray, shape (K, n_channels); lfp_f, lfp_ph, lfp_mf, lfp_mph : (K,)
        LFP: K amplitude-modulated oscillations mixed per electrode.
    cm_gain : ndarray, shape (n_channels,)
        How strongly each electrode picks up the common-mode artifact.
    cm_rate_per_tick : float
        Probability of a common-mode artifact starting in a tick.
    cm_max_ticks : int
        Longest artifact, ticks (look-back for artifacts that started before ``first``).
    gain_uv : float
        Microvolts per ADC count.
    comp : ndarray, shape (n, K + 1), float64
        Scratch: LFP components and the common-mode signal of every row.
    spikes_on : bool
    """
    n, n_ch = out.shape
    n_comp = lfp_f.shape[0]
    two_pi = 2.0 * np.pi
    # per-row components: LFP oscillations and the common-mode artifact
    for i in range(n):
        tsec = (first + i) / fs
        for k in range(n_comp):
            comp[i, k] = np.sin(two_pi * lfp_f[k] * tsec + lfp_ph[k]) * \
                (1.0 + 0.5 * np.sin(two_pi * lfp_mf[k] * tsec + lfp_mph[k]))
        comp[i, n_comp] = 0.0
    if cm_rate_per_tick > 0.0:
        k_first = max(0, first // tick - cm_max_ticks)
        k_last = (first + n - 1) // tick
        for k in range(k_first, k_last + 1):
            if _uniform(key, k, 0x7FFFFFFF) >= cm_rate_per_tick:
                continue
            tau = (0.002 + 0.008 * _uniform(key, k, 0x7FFFFFFE)) * fs
            amp = 300.0 + 1200.0 * _uniform(key, k, 0x7FFFFFFD)
            if _uniform(key, k, 0x7FFFFFFC) < 0.5:
                amp = -amp
            onset = k * tick
            length = min(int(8.0 * tau), cm_max_ticks * tick)
            lo = max(onset, first)
            hi = min(onset + length, first + n)
            for s in range(lo, hi):
                u = (s - onset) / tau
                comp[s - first, n_comp] += amp * u * np.exp(1.0 - u)
    # background: noise table rows, LFP, common mode
    span = noise_tab.shape[0] - n_ch
    for i in range(n):
        off = int(_hash(key, first + i, 0x5EED) % np.uint64(span))
        nz = noise_tab[off:off + n_ch]
        row = out[i]
        ci = comp[i]
        cm = ci[n_comp]
        for c in range(n_ch):
            row[c] = nz[c] * noise_sd[c] + cm_gain[c] * cm
        for k in range(n_comp):  # component-major weights: each pass vectorises
            wk = lfp_w[k]
            ck = ci[k]
            for c in range(n_ch):
                row[c] += wk[c] * ck
    # spikes: Bernoulli per unit and tick at the cosine-tuned rate, anywhere in the tick
    if spikes_on:
        w = template.shape[0]
        k_first = max(0, (first - w) // tick)
        k_last = (first + n - 1) // tick
        dt = tick / fs
        for k in range(k_first, k_last + 1):
            vx, vy = velocity_at(k * tick, starts, lengths, x0, y0, x1, y1, fs)
            vx /= v_ref
            vy /= v_ref
            for c in range(n_ch):
                rate = base_hz[c] + depth_hz[c] * (vx * cos_pd[c] + vy * sin_pd[c])
                if rate <= 0.0:
                    continue
                if rate > 500.0:
                    rate = 500.0
                h = _hash(key, k, c + 1)
                if float(h >> np.uint64(11)) * _INV53 >= rate * dt:
                    continue
                s0 = k * tick + int(h & np.uint64(0x3FF)) % tick
                a = spike_amp[c]
                lo = max(s0, first)
                hi = min(s0 + w, first + n)
                for s in range(lo, hi):
                    out[s - first, c] += a * template[s - s0]
    # the ADC: int16 counts with a gain
    inv_gain = 1.0 / gain_uv
    for i in range(n):
        row = out[i]
        crow = counts[i]
        for c in range(n_ch):
            q = np.rint(row[c] * inv_gain)
            if q > 32767.0:
                q = 32767.0
            elif q < -32768.0:
                q = -32768.0
            crow[c] = np.int16(q)
            row[c] = q * gain_uv
