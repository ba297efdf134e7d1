"""Preset anatomy and spectra of the synthetic patient (private; see :mod:`.synthetic`).

A *model* is everything :func:`._synth_kernels.synth_block` needs besides the stream state:
the sources (their SOS filters, task modulation and lead field), the mains components, the
amplifier rail, and the electrode positions used to draw artifacts. It is a pure function of
the preset, the patient number, ``snr`` and ``line_hz``; the seed only drives the noise, the
schedule and the artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = ["PRESETS", "PresetSpec", "Model", "build_model", "aperiodic_sos", "bandpass_sos",
           "BSI_INTENTIONS", "EEG_INTENTIONS", "EEG_CHANNELS"]

BSI_INTENTIONS = ("rest", "left_hip_flexion", "right_hip_flexion", "left_knee_extension",
                  "right_knee_extension", "left_ankle_dorsiflexion", "right_ankle_dorsiflexion")
EEG_INTENTIONS = ("rest", "left", "right")

#: 32-channel 10-20 montage (the common actiCAP 32 layout) with 2-D scalp positions: x from the
#: left to the right ear, y from inion to nasion, head radius 1 (azimuthal projection).
EEG_CHANNELS: tuple[tuple[str, float, float], ...] = (
    ("Fp1", -0.31, 0.95), ("Fp2", 0.31, 0.95), ("F7", -0.81, 0.59), ("F3", -0.41, 0.55),
    ("Fz", 0.0, 0.50), ("F4", 0.41, 0.55), ("F8", 0.81, 0.59), ("FC5", -0.65, 0.27),
    ("FC1", -0.22, 0.25), ("FC2", 0.22, 0.25), ("FC6", 0.65, 0.27), ("T7", -1.0, 0.0),
    ("C3", -0.50, 0.0), ("Cz", 0.0, 0.0), ("C4", 0.50, 0.0), ("T8", 1.0, 0.0),
    ("TP9", -0.95, -0.31), ("CP5", -0.65, -0.27), ("CP1", -0.22, -0.25), ("CP2", 0.22, -0.25),
    ("CP6", 0.65, -0.27), ("TP10", 0.95, -0.31), ("P7", -0.81, -0.59), ("P3", -0.41, -0.55),
    ("Pz", 0.0, -0.50), ("P4", 0.41, -0.55), ("P8", 0.81, -0.59), ("PO9", -0.59, -0.81),
    ("O1", -0.31, -0.95), ("Oz", 0.0, -1.0), ("O2", 0.31, -0.95), ("PO10", 0.59, -0.81),
)


@dataclass(frozen=True)
class PresetSpec:
    """Fixed facts of a preset (what the source advertises)."""

    name: str
    channel_names: tuple[str, ...]
    channel_type: str
    sampling_rate_hz: float
    intention_names: tuple[str, ...]
    line_hz: float
    artifact_rate_per_min: float
    rail_uv: float


PRESETS: dict[str, PresetSpec] = {
    "bsi": PresetSpec("bsi", tuple(f"ECOG{i:02d}" for i in range(1, 65)), "ecog", 586.0,
                      BSI_INTENTIONS, 50.0, 1.0, 3000.0),
    "eeg-bci": PresetSpec("eeg-bci", tuple(c[0] for c in EEG_CHANNELS), "eeg", 250.0,
                          EEG_INTENTIONS, 50.0, 1.0, 1000.0),
}


@dataclass
class Model:
    """Arrays of one patient model (see :func:`._synth_kernels.synth_block`)."""

    sos: np.ndarray  # (n_src, max_sec, 6)
    n_sections: np.ndarray  # (n_src,) int64
    logmod: np.ndarray  # (n_states, n_src)
    mix_ptr: np.ndarray  # (n_src + 1,) int64
    mix_ch: np.ndarray  # (nnz,) int64
    mix_w: np.ndarray  # (nnz,) float64
    line_hz: np.ndarray  # (n_harm,)
    line_a: np.ndarray  # (n_harm, n_ch)
    line_b: np.ndarray  # (n_harm, n_ch)
    positions: np.ndarray  # (n_ch, 2): electrode positions (grid units or head radii)
    neighbour_radius: float  # distance within which electrodes count as neighbours
    artifact_scale_uv: float  # typical movement-spike amplitude
    envelope_tau_s: float
    #: Spatial task maps, name -> (n_states, n_channels) weight 0..1 of each state on each
    #: channel (bsi: "high_gamma", "beta"; eeg-bci: "mu", "beta" = the contralateral ERD map).
    task_maps: dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------
# filter design (SciPy designs, the kernel only applies)
# --------------------------------------------------------------------------------------------
def aperiodic_sos(exponent: float, f_lo_hz: float, f_hi_hz: float, sampling_rate_hz: float,
                  n_pairs: int = 6) -> np.ndarray:
    """SOS of a ``1/f**exponent`` power spectrum between ``f_lo_hz`` and ``f_hi_hz``.

    Real poles are spaced geometrically over the range with a real zero after each, a
    fraction ``exponent / 2`` of the way (in log frequency) to the next pole: each pole-zero
    pair falls at -20 dB/decade, so on average the power falls at ``-10 * exponent``
    dB/decade (the classic pole-zero "pinking" filter). Flat below ``f_lo_hz``.
    Output unnormalised; see :func:`unit_variance`.
    """
    if not 0.0 < exponent < 2.0:
        raise ValueError(f"exponent must be in (0, 2), got {exponent}")
    poles_hz = np.geomspace(f_lo_hz, f_hi_hz, n_pairs)
    ratio = (f_hi_hz / f_lo_hz) ** (1.0 / (n_pairs - 1))
    zeros_hz = poles_hz * ratio ** (exponent / 2.0)
    p = np.exp(-2.0 * np.pi * poles_hz / sampling_rate_hz)
    z = np.exp(-2.0 * np.pi * zeros_hz / sampling_rate_hz)
    return signal.zpk2sos(z, p, 1.0)


def bandpass_sos(lo_hz: float, hi_hz: float, sampling_rate_hz: float,
                 order: int = 2) -> np.ndarray:
    """Butterworth band-pass SOS (``order`` sections) for band-limited rhythms."""
    return signal.butter(order, [lo_hz, hi_hz], btype="bandpass", fs=sampling_rate_hz,
                         output="sos")


def unit_variance(sos: np.ndarray, n_impulse: int = 1 << 15) -> np.ndarray:
    """Scale ``sos`` so that unit-variance white noise comes out with unit variance."""
    impulse = np.zeros(n_impulse)
    impulse[0] = 1.0
    h = signal.sosfilt(sos, impulse)
    gain = float(np.sqrt(np.sum(h * h)))
    out = np.array(sos, dtype=np.float64, copy=True)
    out[0, :3] /= gain
    return out


# --------------------------------------------------------------------------------------------
# model assembly
# --------------------------------------------------------------------------------------------
class _Builder:
    """Accumulates sources (filter, modulation per state, lead-field column)."""

    def __init__(self, n_states: int, n_channels: int) -> None:
        self.n_states = n_states
        self.n_channels = n_channels
        self.sos: list[np.ndarray] = []
        self.logmod: list[np.ndarray] = []
        self.columns: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, sos: np.ndarray, weights: np.ndarray,
            factors: np.ndarray | None = None) -> None:
        """Add one source.

        Parameters
        ----------
        sos : (n_sec, 6) unit-variance filter
        weights : (n_channels,) microvolts per unit source on each channel (0 = not seen)
        factors : (n_states,) amplitude factor of the source in each state (default all 1)
        """
        if factors is None:
            factors = np.ones(self.n_states)
        if np.any(factors <= 0):
            raise ValueError("amplitude factors must be positive")
        nz = np.flatnonzero(weights)
        self.sos.append(sos)
        self.logmod.append(np.log(factors))
        self.columns.append((nz.astype(np.int64), weights[nz].astype(np.float64)))

    def arrays(self) -> tuple[np.ndarray, ...]:
        n_src = len(self.sos)
        max_sec = max(s.shape[0] for s in self.sos)
        sos = np.zeros((n_src, max_sec, 6))
        sos[:, :, 0] = 1.0
        sos[:, :, 3] = 1.0
        n_sec = np.zeros(n_src, np.int64)
        for i, s in enumerate(self.sos):
            if not np.allclose(s[:, 3], 1.0):
                raise ValueError("SOS sections must be normalised (a0 == 1)")
            sos[i, : s.shape[0]] = s
            n_sec[i] = s.shape[0]
        logmod = np.ascontiguousarray(np.array(self.logmod).T)
        ptr = np.zeros(n_src + 1, np.int64)
        ptr[1:] = np.cumsum([c[0].shape[0] for c in self.columns])
        ch = np.concatenate([c[0] for c in self.columns]).astype(np.int64)
        w = np.concatenate([c[1] for c in self.columns]).astype(np.float64)
        return sos, n_sec, logmod, ptr, ch, w


def _line(rng: np.random.Generator, n_ch: int, line_hz: float, fs: float, amp_uv: float,
          spread: float, harmonics: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Mains fundamental and harmonics below Nyquist; per-channel amplitude and phase."""
    gains = amp_uv * rng.uniform(1.0 - spread, 1.0 + spread, size=n_ch)
    phase = rng.normal(0.0, 0.25, size=n_ch)
    freqs, a_rows, b_rows = [], [], []
    if line_hz > 0:
        for h, rel in enumerate(harmonics, start=1):
            f = h * line_hz
            if f >= fs / 2 or rel == 0:
                continue
            freqs.append(f)
            a_rows.append(rel * gains * np.cos(h * phase))
            b_rows.append(rel * gains * np.sin(h * phase))
    if not freqs:
        return np.zeros(0), np.zeros((0, n_ch)), np.zeros((0, n_ch))
    return np.array(freqs), np.array(a_rows), np.array(b_rows)


def _ecog_grid() -> np.ndarray:
    """(64, 2) positions (row, col) of the 8x8 grid, row-major (ECOG01 at row 0, col 0)."""
    r, c = np.divmod(np.arange(64), 8)
    return np.column_stack([r, c]).astype(np.float64)


# Somatotopy of the leg area (grid units, 8x8 grid, 4 mm pitch): columns 0-3 lie over the
# left hemisphere, 4-7 over the right, the midline between columns 3 and 4; row 0 is rostral.
# The ankle/foot sits nearest the midline (it dips into the interhemispheric fissure), the hip
# most lateral, the knee between them. Centres are for the right hemisphere (left leg).
_BSI_CENTRES_RIGHT_HEMI = {"hip": (2.0, 6.3), "knee": (3.6, 5.3), "ankle": (5.2, 4.4)}

# ECoG amplitudes (uV rms at rest) and modulation depths at snr = 1
BSI_APERIODIC_UV = 14.0
BSI_COMMON_UV = 9.0
BSI_BETA_UV = 5.0
BSI_HG_UV = 2.5
BSI_HG_DEPTH = 1.5
BSI_BETA_DEPTH = 0.8
BSI_IPSI = 0.35


def _bsi_model(patient: int, snr: float, line_hz: float, fs: float) -> Model:
    rng = np.random.default_rng([patient, 0xB51])
    pos = _ecog_grid()
    n_ch = 64
    names = BSI_INTENTIONS
    b = _Builder(len(names), n_ch)

    # Task maps: per movement a high-gamma blob (sigma 1 grid unit) on the contralateral
    # hemisphere and a weaker (BSI_IPSI) mirror blob ipsilaterally; beta maps are broader.
    w_hg = np.zeros((len(names), n_ch))
    w_beta = np.zeros((len(names), n_ch))
    for k, name in enumerate(names):
        if name == "rest":
            continue
        side, joint = name.split("_")[0], name.split("_")[1]
        r0, c0 = _BSI_CENTRES_RIGHT_HEMI[joint]
        r0 += rng.normal(0.0, 0.3)
        c0 += rng.normal(0.0, 0.3)
        contra = (r0, c0) if side == "left" else (r0, 7.0 - c0)
        ipsi = (r0, 7.0 - c0) if side == "left" else (r0, c0)
        for (rc, cc), amp in ((contra, 1.0), (ipsi, BSI_IPSI)):
            d2 = (pos[:, 0] - rc) ** 2 + (pos[:, 1] - cc) ** 2
            w_hg[k] += amp * np.exp(-d2 / (2 * 1.0**2))
            w_beta[k] += amp * np.exp(-d2 / (2 * 1.6**2))
    w_hg = np.minimum(w_hg, 1.0)
    w_beta = np.minimum(w_beta, 1.0)

    # aperiodic background: independent per channel plus a shared component
    ap = unit_variance(aperiodic_sos(1.8, 1.0, 120.0, fs))
    ap_gain = BSI_APERIODIC_UV * rng.uniform(0.8, 1.2, n_ch)
    for ch in range(n_ch):
        w = np.zeros(n_ch)
        w[ch] = ap_gain[ch]
        b.add(ap, w)
    b.add(ap, BSI_COMMON_UV * rng.uniform(0.8, 1.2, n_ch))

    # beta (13-30 Hz): one generator under each electrode, seen by its 4 neighbours at 0.3;
    # desynchronises (amplitude / (1 + BSI_BETA_DEPTH snr w)) during movement
    beta = unit_variance(bandpass_sos(13.0, 30.0, fs))
    beta_gain = BSI_BETA_UV * rng.uniform(0.7, 1.3, n_ch)
    for ch in range(n_ch):
        d = np.hypot(pos[:, 0] - pos[ch, 0], pos[:, 1] - pos[ch, 1])
        w = np.where(d == 0, 1.0, np.where(d <= 1.0, 0.3, 0.0)) * beta_gain[ch]
        b.add(beta, w, 1.0 / (1.0 + BSI_BETA_DEPTH * snr * w_beta[:, ch]))

    # high gamma (70-150 Hz): local, rises (amplitude * (1 + BSI_HG_DEPTH snr w)) in movement
    hg = unit_variance(bandpass_sos(70.0, 150.0, fs))
    hg_gain = BSI_HG_UV * rng.uniform(0.7, 1.3, n_ch)
    for ch in range(n_ch):
        w = np.zeros(n_ch)
        w[ch] = hg_gain[ch]
        b.add(hg, w, 1.0 + BSI_HG_DEPTH * snr * w_hg[:, ch])

    sos, n_sec, logmod, ptr, mch, mw = b.arrays()
    lhz, la, lb = _line(rng, n_ch, line_hz, fs, 6.0, 0.5, (1.0, 0.1, 0.25))
    maps = {"high_gamma": w_hg, "beta": w_beta}
    return Model(sos, n_sec, logmod, ptr, mch, mw, lhz, la, lb, pos, 1.5, 400.0, 0.04, maps)


def _eeg_model(patient: int, snr: float, line_hz: float, fs: float) -> Model:
    rng = np.random.default_rng([patient, 0xEE6])
    pos = np.array([(x, y) for _, x, y in EEG_CHANNELS])
    names = [c[0] for c in EEG_CHANNELS]
    n_ch = len(names)
    states = EEG_INTENTIONS
    b = _Builder(len(states), n_ch)

    def spread(x0: float, y0: float, sigma: float) -> np.ndarray:
        d2 = (pos[:, 0] - x0) ** 2 + (pos[:, 1] - y0) ** 2
        return np.exp(-d2 / (2 * sigma**2))

    # aperiodic: independent per channel plus a strong shared component (volume conduction)
    ap = unit_variance(aperiodic_sos(1.4, 1.0, 60.0, fs))
    ap_gain = 9.0 * rng.uniform(0.8, 1.2, n_ch)
    for ch in range(n_ch):
        w = np.zeros(n_ch)
        w[ch] = ap_gain[ch]
        b.add(ap, w)
    b.add(ap, 8.0 * rng.uniform(0.85, 1.15, n_ch))

    # posterior alpha (8-12 Hz), not task related
    alpha = unit_variance(bandpass_sos(8.5, 11.5, fs))
    b.add(alpha, 12.0 * spread(0.0, -0.9, 0.45))

    # sensorimotor mu (8-13 Hz) and beta (13-30 Hz) under C3 (left hemisphere) and C4 (right);
    # contralateral event-related desynchronisation: "left" suppresses the C4 generators,
    # "right" the C3 ones, ipsilateral generators drop by a fifth of that.
    erd_map = np.zeros((len(states), n_ch))
    mu = unit_variance(bandpass_sos(8.5, 12.5, fs))
    bt = unit_variance(bandpass_sos(14.0, 28.0, fs))
    for hemi_x, contra_state in ((-0.5, "right"), (0.5, "left")):
        for sos_, amp, depth in ((mu, 8.0, 1.0), (bt, 5.0, 1.0)):
            factors = np.ones(len(states))
            for k, st in enumerate(states):
                if st == "rest":
                    continue
                rel = 1.0 if st == contra_state else 0.2
                factors[k] = 1.0 / (1.0 + depth * snr * rel)
            x0 = hemi_x + rng.normal(0.0, 0.03)
            lead = spread(x0, rng.normal(0.0, 0.03), 0.3)
            b.add(sos_, amp * lead, factors)
        erd_map[states.index(contra_state)] = lead

    sos, n_sec, logmod, ptr, mch, mw = b.arrays()
    lhz, la, lb = _line(rng, n_ch, line_hz, fs, 8.0, 0.7, (1.0, 0.1))
    maps = {"mu": erd_map, "beta": erd_map.copy()}
    return Model(sos, n_sec, logmod, ptr, mch, mw, lhz, la, lb, pos, 0.45, 150.0, 0.08, maps)


_BUILDERS = {"bsi": _bsi_model, "eeg-bci": _eeg_model}


def build_model(preset: str, patient: int, snr: float, line_hz: float) -> Model:
    """The model arrays of ``preset`` for patient number ``patient``."""
    spec = PRESETS[preset]
    return _BUILDERS[preset](patient, snr, line_hz, spec.sampling_rate_hz)
