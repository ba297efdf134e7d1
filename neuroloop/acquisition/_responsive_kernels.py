"""Compiled generator of the responsive-neurostimulation patient (cortical ECoG, seizures).

Private: :class:`neuroloop.acquisition.responsive.ResponsivePatient` builds the event tables
and calls :func:`generate` for each block. Every waveform is an analytic function of the
sample index and the event's parameters (phases are integrated in closed form), and the only
carried state is the background filter's, so the stream does not depend on block sizes.
"""

from __future__ import annotations

import math

from .._jit import jit

# seizure table columns
SZ_ONSET = 0        # first ictal sample
SZ_T1 = 1           # samples of low-voltage fast activity before rhythmic spiking
SZ_END0 = 2         # natural end (sample), for the frequency sweep
SZ_END = 3          # end actually taken (earlier when aborted)
SZ_F_FAST = 4       # Hz
SZ_A_FAST = 5       # uV
SZ_F_R0 = 6         # rhythmic spiking frequency at its start, Hz
SZ_F_R1 = 7         # ... and at the natural end, Hz
SZ_A_R = 8          # uV
SZ_SPREAD = 9       # samples from onset until the spread channels join
SZ_ABORT = 10       # sample at which stimulation aborted it, -1 if not
N_SZ = 11

# interictal spike table
SP_ONSET = 0
SP_AMP = 1          # uV
SP_SIGMA = 2        # samples (the sharp component's Gaussian width)
N_SP = 3

# artifact table
AR_ONSET = 0
AR_LEN = 1          # samples
AR_KIND = 2         # ART_*
AR_AMP = 3          # uV
AR_CH = 4           # channel (pops)
AR_FREQ = 5         # Hz (movement)
N_AR = 6
ART_EMG = 0
ART_MOVEMENT = 1
ART_POP = 2

#: Samples an interictal spike lasts (sharp component + slow wave), in units of 0.4 s.
SPIKE_SPAN_S = 0.4
#: Time constant of an aborted seizure's decay, s.
ABORT_TAU_S = 0.3
#: Fade-in of the fast activity and of rhythmic spiking, s; fade-out at the end, s.
FAST_RISE_S = 1.0
RHYTHM_RISE_S = 3.0
FADE_OUT_S = 1.5
#: Time constant of the amplifier's recovery transient after a burst, s.
RECOVERY_TAU_S = 0.03


@jit
def _spike_wave(phase):
    """Spike-and-wave shape of one cycle (phase in [0, 1)): a sharp spike then a slow wave."""
    a = (phase - 0.08) / 0.03
    b = (phase - 0.45) / 0.14
    return math.exp(-a * a) - 0.35 * math.exp(-b * b)


@jit
def _hann(pos, length):
    if length <= 1:
        return 1.0
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * pos / (length - 1))


@jit
def generate(out, labels, s0, noise, sos, z, bg_uv, shared_uv, focus_w, spread_w, emg_w,
             move_w, fs, sz, cursor, sp, ar, pend, stim, hold):
    """Write ``out.shape[0]`` samples starting at stream index ``s0``.

    Parameters
    ----------
    out : ndarray (n, n_ch), float64
        Samples, uV.
    labels : ndarray (n,), int8
        1 inside a seizure (onset to its end or its abort), else 0.
    noise : ndarray (n, n_ch + 2)
        Standard normal draws: columns 0..n_ch (background, the last of them shared by all
        channels) are filtered by ``sos``; column n_ch + 1 is the white EMG noise.
    sos : ndarray (n_sec, 6); z : ndarray (n_sec, 2, n_ch + 1)
        Background (1/f) filter and its state.
    bg_uv, focus_w, spread_w, emg_w, move_w : ndarray (n_ch,)
        Background RMS and spatial weights per channel.
    shared_uv : float
        RMS of the component shared by all channels.
    sz, sp, ar : ndarray
        Event tables (module constants), sorted by onset.
    cursor : ndarray (3,), int64
        First possibly active row of each table (advanced here).
    pend : ndarray (k, 2)
        Pending stimulation changes ``(from_sample, amplitude_ma)``, sorted; ``stim[2]``
        counts those applied.
    stim : ndarray (4,)
        ``[amplitude_ma now, sample the last burst ended, applied count, pending count]``.
    hold : ndarray (n_ch,)
        Last sample before blanking (amplifier blanked during a burst).
    """
    n, n_ch = out.shape
    n_sec = sos.shape[0]
    n_src = n_ch + 1
    span = int(SPIKE_SPAN_S * fs)
    for t in range(n):
        s = s0 + t
        # -- stimulation changes that take effect at this sample
        while stim[2] < stim[3] and pend[int(stim[2]), 0] <= s:
            new_amp = pend[int(stim[2]), 1]
            if stim[0] > 0.0 and new_amp <= 0.0:
                stim[1] = s
            stim[0] = new_amp
            stim[2] += 1
        # -- background: filtered noise per source
        for k in range(n_src):
            v = noise[t, k]
            for q in range(n_sec):
                yi = sos[q, 0] * v + z[q, 0, k]
                z[q, 0, k] = sos[q, 1] * v - sos[q, 4] * yi + z[q, 1, k]
                z[q, 1, k] = sos[q, 2] * v - sos[q, 5] * yi
                v = yi
            noise[t, k] = v
        atten = 1.0
        lab = 0
        for c in range(n_ch):
            out[t, c] = 0.0
        # -- seizures
        i = cursor[0]
        while i < sz.shape[0] and sz[i, SZ_END] + 2.0 * fs <= s:
            i += 1
        cursor[0] = i
        while i < sz.shape[0] and sz[i, SZ_ONSET] <= s:
            o = sz[i, SZ_ONSET]
            end = sz[i, SZ_END]
            if s < end + 2.0 * fs:
                tau = (s - o) / fs
                if s < end:
                    lab = 1
                fade = min(1.0, max(0.0, (end - s) / (FADE_OUT_S * fs)))
                ab = sz[i, SZ_ABORT]
                if ab >= 0 and s >= ab:
                    fade = math.exp(-(s - ab) / (ABORT_TAU_S * fs))
                t1 = sz[i, SZ_T1] / fs
                # low-voltage fast activity, fading out during the first second of spiking
                fast = 0.0
                if tau < t1 + 1.0:
                    env = min(1.0, tau / FAST_RISE_S)
                    if tau > t1:
                        env *= 1.0 - (tau - t1)
                    fast = sz[i, SZ_A_FAST] * env * math.sin(2.0 * math.pi * sz[i, SZ_F_FAST]
                                                             * tau)
                rhythm = 0.0
                if tau >= t1:
                    tr = tau - t1
                    dur = max((sz[i, SZ_END0] - o) / fs - t1, 1.0)
                    f0 = sz[i, SZ_F_R0]
                    f1 = sz[i, SZ_F_R1]
                    ph = f0 * tr + (f1 - f0) * tr * tr / (2.0 * dur)
                    rhythm = sz[i, SZ_A_R] * min(1.0, tr / RHYTHM_RISE_S) * _spike_wave(
                        ph - math.floor(ph))
                a_here = 1.0 - 0.6 * min(1.0, tau / 0.5) * fade
                if a_here < atten:
                    atten = a_here
                joined = min(1.0, max(0.0, (s - o - sz[i, SZ_SPREAD]) / (2.0 * fs)))
                for c in range(n_ch):
                    w = focus_w[c] + spread_w[c] * joined
                    out[t, c] += w * fade * (fast + rhythm)
            i += 1
        # -- interictal spikes (focus channels)
        j = cursor[1]
        while j < sp.shape[0] and sp[j, SP_ONSET] + span <= s:
            j += 1
        cursor[1] = j
        while j < sp.shape[0] and sp[j, SP_ONSET] <= s:
            d = s - sp[j, SP_ONSET]
            if d < span:
                a = (d - 3.0 * sp[j, SP_SIGMA]) / sp[j, SP_SIGMA]
                b = (d - 0.12 * fs) / (0.06 * fs)
                v = sp[j, SP_AMP] * (math.exp(-0.5 * a * a) - 0.3 * math.exp(-0.5 * b * b))
                for c in range(n_ch):
                    out[t, c] += focus_w[c] * v
            j += 1
        # -- artifacts
        m = cursor[2]
        while m < ar.shape[0] and ar[m, AR_ONSET] + ar[m, AR_LEN] <= s:
            m += 1
        cursor[2] = m
        while m < ar.shape[0] and ar[m, AR_ONSET] <= s:
            d = s - ar[m, AR_ONSET]
            ln = ar[m, AR_LEN]
            if d < ln:
                kind = int(ar[m, AR_KIND])
                if kind == ART_EMG:
                    v = ar[m, AR_AMP] * _hann(d, ln) * noise[t, n_ch + 1]
                    for c in range(n_ch):
                        out[t, c] += emg_w[c] * v
                elif kind == ART_MOVEMENT:
                    v = ar[m, AR_AMP] * _hann(d, ln) * math.sin(
                        2.0 * math.pi * ar[m, AR_FREQ] * d / fs)
                    for c in range(n_ch):
                        out[t, c] += move_w[c] * v
                else:
                    out[t, int(ar[m, AR_CH])] += ar[m, AR_AMP] * math.exp(-d / (0.2 * fs))
            m += 1
        # -- background under the events, attenuated at seizure onset
        for c in range(n_ch):
            out[t, c] += atten * (bg_uv[c] * noise[t, c] + shared_uv * noise[t, n_ch])
        # -- the amplifier is blanked during a burst; it recovers with a transient after
        if stim[0] > 0.0:
            for c in range(n_ch):
                out[t, c] = hold[c]
        else:
            since = s - stim[1]
            if stim[1] >= 0 and since < 10.0 * RECOVERY_TAU_S * fs:
                rec = 60.0 * math.exp(-since / (RECOVERY_TAU_S * fs))
                for c in range(n_ch):
                    out[t, c] += rec
            for c in range(n_ch):
                hold[c] = out[t, c]
        labels[t] = lab
