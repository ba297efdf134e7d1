"""The responsive-neurostimulation patient: cortical ECoG with seizures that stimulation can abort.

``synthetic://responsive?seed=1`` (see :func:`~neuroloop.acquisition.open_source`).

Four bipolar ECoG channels at 250 Hz, as the NeuroPace RNS System records them (Sun et al.
2008, Epilepsia 49 Suppl 1; RNS System Physician Manual): ``D0-D1`` and ``D2-D3`` on a depth
lead in the seizure focus, ``S0-S1`` and ``S2-S3`` on a cortical strip over neighbouring
cortex (the ``rns-strip-depth`` array of the electrode catalogue).

Model (and why)
---------------
* **Background**: 1/f**1.8 noise (ECoG, Miller et al. 2009), 40 uV RMS per channel plus a
  15 uV component shared by all channels.
* **Seizures** (Poisson, mean interval ``seizure_interval_s``, at least 60 s apart) follow the
  most common electrographic onset of mesial temporal and neocortical seizures (Perucca et al.
  2014, Brain 137:183; Lagarde et al. 2019, Epilepsia): *low-voltage fast activity* first
  (20-32 Hz, 25-45 uV, the background attenuated by 60 %), for 2-5 s, evolving into
  *rhythmic spiking* (spike-and-wave from 6-9 Hz slowing to 2.5-4 Hz, 150-350 uV) for 20-60 s.
  Onset on the depth channels; the strip joins 1-4 s later (spread).
* **Interictal spikes** (Poisson, ``spike_rate_per_min``; a fifth in brief bursts of 2-4 at
  about 4 Hz): sharp waves of 150-400 uV with a slow wave, on the focus channels. They tempt
  line length and area detectors without being seizures.
* **Artifacts** (Poisson, ``artifact_rate_per_min``): chewing/EMG bursts (1-4 s, broadband,
  strip channels, near the temporalis muscle), movement (0.5-1.5 s, 1-3 Hz, 200-600 uV, all
  channels) and electrode pops (a step decaying in 0.2 s on one channel).
* **Stimulation** (:meth:`ResponsivePatient.stimulation_applied`): while a burst is on the
  amplifiers are blanked (the samples hold their last value, as RNS blanks sensing during
  therapy), followed by a 30 ms recovery transient. A burst that starts during a seizure
  aborts it with probability ``abort_p_max * exp(-delay / abort_tau_s) * min(1, I /
  effective_ma)``, where ``delay`` is the time since the electrographic onset and ``I`` the
  burst's current: early stimulation works best (Kossoff et al. 2004, Epilepsia 45:1560;
  Morrell 2011, Neurology 77:1295). An aborted seizure decays within about a second. The
  uniform draw deciding each burst is fixed by the seed in advance, so the same patient
  without stimulation (``--compare-unstimulated``) has exactly the same seizures.

Labels: 1 ("seizure") from the electrographic onset to the end (or the abort), else 0.
The stream is a function of the seed, the options and the stimulation applied, never of the
read sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import Range, check_number
from ..errors import ConfigError
from . import _responsive_kernels as K
from ._synth_models import aperiodic_sos, unit_variance
from .base import BaseSource, Block, SourceInfo

__all__ = ["ResponsivePatient", "CHANNEL_NAMES"]

CHANNEL_NAMES: tuple[str, ...] = ("D0-D1", "D2-D3", "S0-S1", "S2-S3")
_INTENTIONS = ("rest", "seizure")
_DEFAULT_HORIZON_S = 7 * 86400.0
_MAX_BURSTS_DRAWN = 16
_PENDING = 256

_OPTIONS: dict[str, tuple[Range, Any]] = {
    "seed": (Range(0, 2**63 - 1, integer=True), 0),
    "segment": (Range(0, 2**63 - 1, integer=True), 0),
    "patient": (Range(0, 2**63 - 1, integer=True), 0),
    "snr": (Range(0.0, 100.0), 1.0),
    "duration_s": (Range(0.0, 7 * 86400.0, lo_open=True, unit="s"), None),
    "sampling_rate_hz": (Range(100.0, 5000.0, unit="Hz"), 250.0),
    "n_channels": (Range(4, 4, integer=True), 4),
    "seizure_interval_s": (Range(60.0, 86400.0, unit="s"), 300.0),
    "spike_rate_per_min": (Range(0.0, 600.0), 4.0),
    "artifact_rate_per_min": (Range(0.0, 600.0), 1.0),
    "abort_p_max": (Range(0.0, 1.0), 0.9),
    "abort_tau_s": (Range(0.0, 3600.0, lo_open=True, unit="s"), 8.0),
    "effective_ma": (Range(0.0, 100.0, lo_open=True, unit="mA"), 1.0),
    "max_block_samples": (Range(1, 1 << 20, integer=True), 4096),
}


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} of synthetic://responsive; use one of: "
                          f"{', '.join(sorted(_OPTIONS))}")
    out: dict[str, Any] = {}
    for key, (rng, default) in _OPTIONS.items():
        value = options.get(key)
        if value is None:
            out[key] = default
            continue
        if isinstance(value, str):
            try:
                value = float(value) if not rng.integer else int(value)
            except ValueError:
                raise ConfigError(f"synthetic://responsive option {key}={value!r} is not a "
                                  "number") from None
        out[key] = check_number(f"synthetic://responsive option {key}", value, rng)
    return out


class ResponsivePatient(BaseSource):
    """The responsive-neurostimulation patient (module docstring).

    Parameters (all optional, also as URL query keys)
    ----------
    seed : int
        Draws the noise and every event (seizures, spikes, artifacts, abort draws).
    segment : int
        An independent stretch of the same seed (calibration uses another seed).
    snr : float
        Multiplies the seizure amplitudes (1 = default; 0 = invisible seizures).
    duration_s : float
        Finite length (endless when omitted; events are drawn for 7 days).
    sampling_rate_hz : float
        250 Hz by default (as RNS records); another rate for running a real recording's
        scenario (the model is defined in seconds and hertz).
    seizure_interval_s, spike_rate_per_min, artifact_rate_per_min : float
        Event rates (defaults 300 s, 4/min, 1/min).
    abort_p_max, abort_tau_s, effective_ma : float
        Abort probability model (defaults 0.9, 8 s, 1 mA).
    """

    scheme = "synthetic"
    paced_by_device = False
    reacts_to_stimulation = True

    def __init__(self, **options: Any) -> None:
        super().__init__()
        o = _check_options(options)
        self.options = o
        fs = float(o["sampling_rate_hz"])
        self.info = SourceInfo(channel_names=CHANNEL_NAMES, channel_types=("ecog",) * 4,
                               sampling_rate_hz=fs, unit="uV", intention_names=_INTENTIONS)
        self.seed = int(o["seed"])
        self._fs = fs
        self._total: int | None = (None if o["duration_s"] is None
                                   else int(round(o["duration_s"] * fs)))
        horizon_s = o["duration_s"] or _DEFAULT_HORIZON_S
        rng = np.random.default_rng([self.seed, int(o["segment"]), 0x5E12])
        self.seizures = self._draw_seizures(rng, horizon_s)
        self.abort_draws = rng.random((self.seizures.shape[0], _MAX_BURSTS_DRAWN))
        self.spikes = self._draw_spikes(rng, horizon_s)
        self.artifacts = self._draw_artifacts(rng, horizon_s)
        self._natural_end = self.seizures[:, K.SZ_END].copy()
        self._bursts_in = np.zeros(self.seizures.shape[0], dtype=np.int64)
        self._noise_rng = np.random.default_rng([self.seed, int(o["segment"]), 0x401CE])
        self._sos = unit_variance(aperiodic_sos(1.8, 1.0, min(100.0, 0.4 * fs), fs))
        self._z = np.zeros((self._sos.shape[0], 2, 5))
        self._bg = np.full(4, 40.0)
        self._focus = np.array([1.0, 0.8, 0.0, 0.0])
        self._spread = np.array([0.0, 0.2, 0.7, 0.6])
        self._emg = np.array([0.1, 0.1, 1.0, 0.9])
        self._move = np.array([0.8, 0.9, 1.0, 0.85])
        self._cursor = np.zeros(3, dtype=np.int64)
        self._pend = np.zeros((_PENDING, 2))
        self._stim = np.array([0.0, -1.0, 0.0, 0.0])
        self._hold = np.zeros(4)
        n_max = int(o["max_block_samples"])
        self._buf = np.zeros((n_max, 4))
        self._noise = np.zeros((n_max, 6))
        self._lab = np.zeros(n_max, dtype=np.int8)
        self._block = Block(data=self._buf[:0], labels=self._lab[:0])
        self._next = 0
        self._last_amp = 0.0
        self.n_bursts = 0
        self.n_aborted = 0

    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]
                 ) -> ResponsivePatient:
        return cls(**dict(options))

    # -- event tables ---------------------------------------------------------------------------
    def _draw_seizures(self, rng: np.random.Generator, horizon_s: float) -> np.ndarray:
        fs, o = self._fs, self.options
        rows = []
        t = float(rng.exponential(o["seizure_interval_s"])) + 30.0
        while t < horizon_s:
            t1 = rng.uniform(2.0, 5.0)
            dur = t1 + rng.uniform(20.0, 60.0)
            onset = round(t * fs)
            end = onset + round(dur * fs)
            snr = float(o["snr"])
            rows.append((onset, round(t1 * fs), end, end, rng.uniform(20.0, 32.0),
                         snr * rng.uniform(25.0, 45.0), rng.uniform(6.0, 9.0),
                         rng.uniform(2.5, 4.0), snr * rng.uniform(150.0, 350.0),
                         round(rng.uniform(1.0, 4.0) * fs), -1.0))
            t += dur + 60.0 + float(rng.exponential(o["seizure_interval_s"]))
        return np.array(rows, dtype=np.float64).reshape(-1, K.N_SZ)

    def _draw_spikes(self, rng: np.random.Generator, horizon_s: float) -> np.ndarray:
        fs, rate = self._fs, self.options["spike_rate_per_min"] / 60.0
        rows = []
        if rate > 0:
            t = float(rng.exponential(1.0 / rate))
            while t < horizon_s:
                n = int(rng.integers(2, 5)) if rng.random() < 0.2 else 1
                for k in range(n):
                    rows.append((round((t + k * rng.uniform(0.22, 0.3)) * fs),
                                 rng.uniform(150.0, 400.0), rng.uniform(0.008, 0.015) * fs))
                t += 1.5 + float(rng.exponential(1.0 / rate))
        return np.array(rows, dtype=np.float64).reshape(-1, K.N_SP)

    def _draw_artifacts(self, rng: np.random.Generator, horizon_s: float) -> np.ndarray:
        fs, rate = self._fs, self.options["artifact_rate_per_min"] / 60.0
        rows = []
        if rate > 0:
            t = float(rng.exponential(1.0 / rate))
            while t < horizon_s:
                kind = int(rng.choice(3, p=(0.45, 0.35, 0.2)))
                if kind == K.ART_EMG:
                    row = (round(t * fs), round(rng.uniform(1.0, 4.0) * fs), kind,
                           rng.uniform(40.0, 120.0), 0, 0.0)
                elif kind == K.ART_MOVEMENT:
                    row = (round(t * fs), round(rng.uniform(0.5, 1.5) * fs), kind,
                           rng.uniform(200.0, 600.0), 0, rng.uniform(1.0, 3.0))
                else:
                    row = (round(t * fs), round(1.0 * fs), kind, rng.choice((-1.0, 1.0))
                           * rng.uniform(300.0, 1000.0), int(rng.integers(0, 4)), 0.0)
                rows.append(row)
                t += 5.0 + float(rng.exponential(1.0 / rate))
        return np.array(rows, dtype=np.float64).reshape(-1, K.N_AR)

    # -- public extras ----------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Stream index of the next sample :meth:`read` returns."""
        return self._next

    @property
    def exhausted(self) -> bool:
        return self._total is not None and self._next >= self._total

    def seizure_onsets(self, stop: int | None = None) -> list[tuple[int, int]]:
        """``(onset_sample, 1)`` of every seizure starting before ``stop`` (the truth that
        detection latency is measured from)."""
        on = self.seizures[:, K.SZ_ONSET]
        if stop is not None:
            on = on[on < stop]
        return [(int(s), 1) for s in on]

    def seizure_intervals(self, stop: int) -> np.ndarray:
        """``(onset, end)`` samples of the seizures starting before ``stop``; ``end`` is the
        abort's when stimulation aborted one (shape (n, 2), int64)."""
        sel = self.seizures[:, K.SZ_ONSET] < stop
        return self.seizures[sel][:, [K.SZ_ONSET, K.SZ_END]].astype(np.int64)

    def stimulation_applied(self, amplitude_ma: np.ndarray, frequency_hz: float,
                            pulse_width_us: float, from_sample: int) -> None:
        """The stimulator delivers ``amplitude_ma`` (signed current per contact, mA; all zero
        = off) from stream sample ``from_sample`` on (samples already generated are never
        changed: a later ``from_sample`` is moved to the next sample to generate).

        A burst (off -> on) that starts during a seizure may abort it (module docstring);
        its current is the summed cathodic current.
        """
        amp = 0.0
        for a in np.asarray(amplitude_ma, dtype=np.float64).ravel():
            if a < 0.0:
                amp -= float(a)
        if not (math.isfinite(amp) and math.isfinite(frequency_hz) and frequency_hz > 0
                and math.isfinite(pulse_width_us) and pulse_width_us > 0):
            amp = 0.0
        if amp == self._last_amp:
            return
        s = max(int(from_sample), self._next)
        starts = amp > 0 and self._last_amp <= 0
        self._last_amp = amp
        k = int(self._stim[3])
        if k >= _PENDING:  # never in practice: pending changes are applied every read
            self._compact_pending()
            k = int(self._stim[3])
        self._pend[k, 0] = s
        self._pend[k, 1] = amp
        self._stim[3] = k + 1
        if starts:
            self.n_bursts += 1
            self._burst_started(s, amp)

    def _burst_started(self, s: int, amp: float) -> None:
        sz = self.seizures
        i = int(np.searchsorted(sz[:, K.SZ_ONSET], s, side="right")) - 1
        if i < 0 or s >= sz[i, K.SZ_END] or sz[i, K.SZ_ABORT] >= 0:
            return
        o = self.options
        delay_s = (s - sz[i, K.SZ_ONSET]) / self._fs
        p = o["abort_p_max"] * math.exp(-delay_s / o["abort_tau_s"]) * min(
            1.0, amp / o["effective_ma"])
        b = min(int(self._bursts_in[i]), _MAX_BURSTS_DRAWN - 1)
        self._bursts_in[i] += 1
        if self.abort_draws[i, b] < p:
            sz[i, K.SZ_ABORT] = s
            sz[i, K.SZ_END] = min(sz[i, K.SZ_END], s + round(1.0 * self._fs))
            self.n_aborted += 1

    def _compact_pending(self) -> None:
        done = int(self._stim[2])
        n = int(self._stim[3]) - done
        self._pend[:n] = self._pend[done:done + n]
        self._stim[2] = 0
        self._stim[3] = n

    def metrics(self) -> dict[str, float]:
        """Seizures so far, how many stimulation aborted, time in seizure, bursts received."""
        stop = self._next
        iv = self.seizure_intervals(stop)
        aborted = int(np.sum(self.seizures[self.seizures[:, K.SZ_ONSET] < stop, K.SZ_ABORT]
                             >= 0))
        ictal = np.minimum(iv[:, 1], stop) - iv[:, 0]
        return {"seizures": float(iv.shape[0]), "seizures_aborted": float(aborted),
                "seizure_time_s": round(float(ictal.sum()) / self._fs, 3),
                "bursts_received": float(self.n_bursts)}

    # -- BaseSource hooks -------------------------------------------------------------------------
    def _open(self) -> None:
        self.warmup()  # compile before any loop reads (a compile in the loop is a bug)

    def _close(self) -> None:
        pass

    def warmup(self) -> None:
        """Compile the generator (on a scratch copy of the state; the stream is unchanged)."""
        out = np.zeros((2, 4))
        K.generate(out, np.zeros(2, np.int8), 0, np.zeros((2, 6)), self._sos,
                   np.zeros_like(self._z), self._bg, 15.0, self._focus, self._spread, self._emg,
                   self._move, self._fs, self.seizures[:0], np.zeros(3, np.int64),
                   self.spikes[:0], self.artifacts[:0], np.zeros((1, 2)),
                   np.array([0.0, -1.0, 0.0, 0.0]), np.zeros(4))

    def read_into(self, out: np.ndarray, labels: np.ndarray | None = None) -> int:
        """Generate the next ``out.shape[0]`` samples into ``out`` (and their labels into
        ``labels``), as a device's firmware streams them; the number written (fewer at the
        end of a finite stream)."""
        n = out.shape[0]
        done = 0
        while done < n:
            blk = self._read(n - done, None)
            if blk is None:
                break
            k = blk.n_samples
            out[done:done + k] = blk.data
            if labels is not None:
                labels[done:done + k] = blk.labels
            done += k
        return done

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        n = min(max_samples, self._buf.shape[0])
        if self._total is not None:
            n = min(n, self._total - self._next)
            if n <= 0:
                return None
        out, noise, lab = self._buf[:n], self._noise[:n], self._lab[:n]
        self._noise_rng.standard_normal(out=noise)
        K.generate(out, lab, self._next, noise, self._sos, self._z, self._bg, 15.0,
                   self._focus, self._spread, self._emg, self._move, self._fs, self.seizures,
                   self._cursor, self.spikes, self.artifacts, self._pend, self._stim,
                   self._hold)
        if self._stim[2] == self._stim[3]:
            self._stim[2] = self._stim[3] = 0.0
        blk = self._block
        blk.data = out
        blk.labels = lab
        blk.first_index = self._next
        self._next += n
        return blk
