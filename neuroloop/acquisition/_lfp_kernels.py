"""Compiled kernel of the synthetic STN patient (private; see :mod:`.lfp_patient`).

:func:`lfp_block` advances the patient by ``n`` samples under one constant stimulation
setting. Every random deviate is drawn in a fixed order per sample (burst hazard, burst
length, oscillator drive, then each channel's background), so the stream does not depend on
how it is cut into blocks; all state lives in the ``state`` and ``rng`` arrays.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
from ._synth_kernels import _TWO_M53, _ZIG_RATIO, _ZIG_X, _next_u64, _normal_slow, _open_uniform

__all__ = ["lfp_block", "N_STATE", "N_PARAM", "N_METRIC"]

# state[] layout
S_SUPPRESSION = 0   # stimulation effect on beta, 0..1 (first-order, time constants below)
S_OSC1 = 1          # beta resonator y[n-1]
S_OSC2 = 2          # beta resonator y[n-2]
S_BURST_LEFT = 3    # samples left in the current burst (0: none)
S_BURST_LEN = 4     # length of the current burst, samples
S_BURST_AMP = 5     # peak envelope of the current burst, uV
S_BG0 = 6           # background AR(1) state of channel c at S_BG0 + c (up to 8 channels)
N_STATE = 6 + 8

# params[] layout
P_FS = 0
P_SEVERITY = 1          # disease drive without medication or stimulation (1 = default)
P_MED_EFFECT = 2        # fraction of the drive removed at peak medication
P_MED_PERIOD_S = 3      # dosing interval, s (0: no medication)
P_MED_PHASE_S = 4       # time since the last dose at sample 0, s
P_MED_TAU_ABS_S = 5     # absorption time constant, s
P_MED_TAU_EL_S = 6      # elimination time constant, s
P_ALPHA_ON = 7          # 1 - exp(-1 / (tau_on fs)): suppression while stimulated
P_ALPHA_OFF = 8         # 1 - exp(-1 / (tau_off fs)): recovery (rebound) without
P_DEPTH = 9             # largest fraction of the drive stimulation removes
P_I_LO = 10             # mA: below this, no effect
P_I_HI = 11             # mA: full effect
P_RATE = 12             # bursts per second at drive 1
P_DUR_S = 13            # mean burst length at drive 1, s
P_BURST_UV = 14         # burst peak at drive 1, uV
P_TONIC_UV = 15         # tonic beta amplitude at drive 1, uV
P_OSC_A1 = 16           # resonator coefficients (unit-variance output with gain P_OSC_G)
P_OSC_A2 = 17
P_OSC_G = 18
P_BG_A = 19             # background AR(1) coefficient
P_BG_UV = 20            # background innovation scale, uV
P_WHITE_UV = 21         # amplifier white noise, uV rms
P_ART_UV_PER_MA = 22    # stimulation artifact, uV per mA at the fundamental
P_ART_HARMONICS = 23    # number of harmonics of the stimulation frequency sensed
P_THRESHOLD = 24        # drive above which beta counts as pathological ("above threshold")
P_LABEL_UV = 25         # beta amplitude above which a sample is labelled "beta_burst"
N_PARAM = 26

# metrics[] layout (accumulated over every sample produced)
M_SAMPLES = 0
M_ABOVE = 1             # samples with the drive above P_THRESHOLD
M_BURST = 2             # samples inside a burst
M_STIM = 3              # samples with stimulation on
M_DRIVE_SUM = 4         # sum of the effective drive
M_TEED_J = 5            # delivered energy at a 1 kOhm load (Koss 2005), J
N_METRIC = 6


@jit
def _normal(rng: np.ndarray) -> float:
    bits = _next_u64(rng)
    u = 2.0 * (float(np.int64(bits >> np.uint64(11))) * _TWO_M53) - 1.0
    i = np.int64(bits & np.uint64(0xFF))
    if abs(u) < _ZIG_RATIO[i]:
        return u * _ZIG_X[i]
    return _normal_slow(rng, u, i, _ZIG_X, _ZIG_RATIO)


@jit
def medication_level(t_s: float, period_s: float, phase_s: float, tau_abs_s: float,
                     tau_el_s: float) -> float:
    """Plasma level of a dose repeated every ``period_s`` (Bateman curve, peak 1), 0..1."""
    if period_s <= 0.0:
        return 0.0
    tau = (t_s + phase_s) % period_s
    if tau_el_s <= tau_abs_s:
        return 0.0
    t_peak = tau_abs_s * tau_el_s / (tau_el_s - tau_abs_s) * math.log(tau_el_s / tau_abs_s)
    peak = math.exp(-t_peak / tau_el_s) - math.exp(-t_peak / tau_abs_s)
    return (math.exp(-tau / tau_el_s) - math.exp(-tau / tau_abs_s)) / peak


@jit
def lfp_block(n: int, first: int, out: np.ndarray, labels: np.ndarray, gains: np.ndarray,
              art_gains: np.ndarray, state: np.ndarray, rng: np.ndarray, params: np.ndarray,
              stim_ma: float, stim_hz: float, stim_pw_us: float, metrics: np.ndarray) -> None:
    """Advance the patient by ``n`` samples from stream index ``first``.

    Parameters
    ----------
    n : int
    first : int
        Stream index of ``out[0]``.
    out : ndarray, (>= n, n_channels) float64, uV
    labels : ndarray, (>= n,) int8
        1 while the beta amplitude exceeds ``P_LABEL_UV`` (a pathological burst), else 0.
    gains : ndarray, (n_channels,)
        How strongly each bipolar channel senses the beta generator.
    art_gains : ndarray, (n_channels,)
        How strongly each channel senses the stimulation artifact.
    state, rng, params, metrics
        See the layouts above; ``state``, ``rng`` and ``metrics`` are updated in place.
    stim_ma : float
        Summed cathodic current delivered during these samples, mA (0: off).
    stim_hz, stim_pw_us : float
        Its pulse rate and phase width.
    """
    fs = params[P_FS]
    n_ch = out.shape[1]
    # stimulation effect: amplitude between the thresholds, scaled by charge per pulse
    # (relative to 60 us) and by rate (high-frequency DBS, full effect from 100 Hz)
    u = 0.0
    if stim_ma > 0.0 and stim_hz > 0.0:
        eff_ma = stim_ma * min(stim_pw_us / 60.0, 2.0)
        u = (eff_ma - params[P_I_LO]) / (params[P_I_HI] - params[P_I_LO])
        u = min(max(u, 0.0), 1.0) * min(max((stim_hz - 40.0) / 60.0, 0.0), 1.0)
    # TEED per sample at a nominal 1 kOhm: I^2 R f PW / fs
    teed = (stim_ma * 1e-3) ** 2 * 1000.0 * stim_hz * stim_pw_us * 1e-6 / fs
    n_harm = int(params[P_ART_HARMONICS])
    for i in range(n):
        k = first + i
        t = k / fs
        med = medication_level(t, params[P_MED_PERIOD_S], params[P_MED_PHASE_S],
                               params[P_MED_TAU_ABS_S], params[P_MED_TAU_EL_S])
        drive0 = params[P_SEVERITY] * (1.0 - params[P_MED_EFFECT] * med)
        s = state[S_SUPPRESSION]
        if u > s:
            s += (u - s) * params[P_ALPHA_ON]
        else:
            s += (u - s) * params[P_ALPHA_OFF]
        state[S_SUPPRESSION] = s
        drive = drive0 * (1.0 - params[P_DEPTH] * s)
        # bursts: onset hazard and size follow the drive
        hazard = _open_uniform(rng)
        length_u = _open_uniform(rng)
        if state[S_BURST_LEFT] <= 0.0:
            if hazard < params[P_RATE] * drive * drive / fs:
                mean_len = params[P_DUR_S] * (0.4 + drive) * fs
                length = max(math.ceil(-math.log(length_u) * mean_len), 2.0)
                state[S_BURST_LEN] = length
                state[S_BURST_LEFT] = length
                state[S_BURST_AMP] = params[P_BURST_UV] * drive
        env = 0.0
        if state[S_BURST_LEFT] > 0.0:
            pos = state[S_BURST_LEN] - state[S_BURST_LEFT]
            env = state[S_BURST_AMP] * math.sin(math.pi * (pos + 0.5) / state[S_BURST_LEN])
            state[S_BURST_LEFT] -= 1.0
        amp = params[P_TONIC_UV] * drive + env
        y = (params[P_OSC_A1] * state[S_OSC1] + params[P_OSC_A2] * state[S_OSC2]
             + params[P_OSC_G] * _normal(rng))
        state[S_OSC2] = state[S_OSC1]
        state[S_OSC1] = y
        beta = amp * y
        art = 0.0
        if stim_ma > 0.0 and stim_hz > 0.0:
            for h in range(1, n_harm + 1):
                art += math.cos(2.0 * math.pi * h * stim_hz * t + 0.3 * h) / (h * h)
            art *= params[P_ART_UV_PER_MA] * stim_ma
        for c in range(n_ch):
            bg = params[P_BG_A] * state[S_BG0 + c] + params[P_BG_UV] * _normal(rng)
            state[S_BG0 + c] = bg
            out[i, c] = (gains[c] * beta + bg + params[P_WHITE_UV] * _normal(rng)
                         + art_gains[c] * art)
        labels[i] = 1 if amp > params[P_LABEL_UV] else 0
        metrics[M_SAMPLES] += 1.0
        if drive > params[P_THRESHOLD]:
            metrics[M_ABOVE] += 1.0
        if env > 0.0:
            metrics[M_BURST] += 1.0
        if stim_ma > 0.0:
            metrics[M_STIM] += 1.0
        metrics[M_DRIVE_SUM] += drive
        metrics[M_TEED_J] += teed
