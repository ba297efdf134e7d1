"""A synthetic subthalamic (STN) local field potential that reacts to stimulation: ``lfp://stn``.

The patient of the ``adbs`` preset: two bipolar channels around the stimulating contact of a
DBS lead (``LFP0-2`` and ``LFP1-3``, as Percept senses "sandwich" pairs), 250 Hz by default
(Percept) or 1000 Hz. It is a *plant*: beta rises without stimulation and falls with it.

Model (per sample, see :mod:`._lfp_kernels`)
--------------------------------------------
* **Disease drive** ``D0(t) = severity * (1 - med_effect * m(t))``, with a medication level
  ``m(t)`` in 0..1 that follows a Bateman curve (absorption ~20 min, elimination ~90 min,
  levodopa) repeated every ``medication_period_s`` (default 4 h) -- the OFF/ON cycles that
  shift the beta baseline (Neumann 2016; Kuhn 2006).
* **Suppression** ``s`` (0..1) follows the stimulation effect ``u`` with a time constant
  ``suppression_tau_s`` (default 2 s) while rising and ``rebound_tau_s`` (default 20 s) while
  falling: beta stays low for a while after stimulation stops and returns gradually (Kuhn
  2008, Bronte-Stewart 2009). ``u`` grows linearly with the delivered amplitude from
  ``effect_from_ma`` to ``effect_full_ma`` (charge per pulse relative to 60 us, full effect
  from 100 Hz). The effective drive is ``D = D0 * (1 - depth * s)``.
* **Beta bursts** start with a hazard ``rate * D^2`` per second, last on average
  ``burst_s * (0.4 + D)`` and peak at ``burst_uv * D`` (longer and larger bursts in the
  more pathological state, Tinkhauser 2017), on top of tonic beta ``tonic_uv * D``; the
  carrier is a resonator at ``beta_hz`` (default 20 Hz, about 4 Hz wide).
* **Background**: 1/f-like AR(1) noise per channel plus amplifier white noise.
* **Stimulation artifact**: the harmonics ``h = 1..6`` of the stimulation frequency at
  ``artifact_uv_per_ma * I / h^2``, sampled at the sensing rate, so they appear at their
  aliases (130 Hz at 250 Hz: 120, 10, 110, 20, 100, 30 Hz -- two of them inside beta); the
  pipeline must notch them (``[dsp] notch_hz = [10.0]`` removes every alias of 130 Hz at
  250 Hz, since all are multiples of gcd(130, 250) = 10 Hz).

Labels: ``1`` ("beta_burst") while the beta amplitude exceeds ``label_uv``, else ``0``
("rest"). Metrics (:meth:`LfpPatientSource.metrics`): the time the drive spent above the
pathological threshold (``beta_above_threshold_pct``), time in bursts, the stimulation the
patient actually received and its energy (TEED at 1 kOhm), and the mean drive.

Stimulation reaches the model through :meth:`stimulation_applied` (the loop, or firmware_sim's
output stage); the command's ``from_sample`` is where it starts acting. Prefetching is held
back by a :class:`~neuroloop.acquisition.prefetch.StimulationHorizon`: the producer thread
never makes a sample whose stimulation is not yet known, so the stream is a function of the
seed and the commands only.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import Range, check_number
from .._jit import jit
from ..errors import ConfigError, DeviceError
from . import _lfp_kernels as L
from ._synth_kernels import xoshiro_seed_state
from .base import SourceInfo, stimulation_effect_sample
from .generated import GeneratedSource
from .prefetch import StimulationHorizon

__all__ = ["LfpPatientSource", "OPTIONS", "INTENTIONS", "CHANNELS"]

#: Ground-truth states (the scenario's intentions).
INTENTIONS = ("rest", "beta_burst")
#: Bipolar sensing pairs around stimulating contact 1 of a 4-contact lead.
CHANNELS = ("LFP0-2", "LFP1-3")
_GAINS = np.array([1.0, 0.7])
_ART_GAINS = np.array([1.0, 1.6])  # the pair that straddles the stimulating contact less
_MAX_COMMANDS = 256

#: option -> (range, default, hint)
OPTIONS: dict[str, tuple[Range, float, str]] = {
    "seed": (Range(0, 2**32 - 1, integer=True), 0, "e.g. seed=1"),
    "segment": (Range(0, 2**31 - 1, integer=True), 0, "e.g. segment=1"),
    "sampling_rate_hz": (Range(250.0, 1000.0), 250.0, "250 (Percept) or 1000"),
    "n_channels": (Range(2, 2, integer=True), 2, "the patient has 2 bipolar channels"),
    "duration_s": (Range(0.0, 1e7, lo_open=True), 0.0, "seconds, or omit it"),
    "severity": (Range(0.0, 3.0), 1.0, "1 is the default patient"),
    "snr": (Range(0.0, 10.0), 1.0, "scales the beta amplitude"),
    "beta_hz": (Range(13.0, 30.0), 20.0, "the patient's beta peak"),
    "medication_period_s": (Range(0.0, 86400.0), 14400.0, "0 disables medication"),
    "medication_phase_s": (Range(0.0, 86400.0), 12000.0, "time since the last dose"),
    "medication_effect": (Range(0.0, 1.0), 0.5, "fraction of the drive removed at peak"),
    "suppression_tau_s": (Range(0.05, 600.0), 2.0, "e.g. 2"),
    "rebound_tau_s": (Range(0.05, 600.0), 20.0, "e.g. 20"),
    "depth": (Range(0.0, 1.0), 0.85, "fraction of the drive stimulation can remove"),
    "effect_from_ma": (Range(0.0, 20.0), 0.5, "mA"),
    "effect_full_ma": (Range(0.01, 25.5), 2.5, "mA"),
    "artifact_uv_per_ma": (Range(0.0, 1000.0), 8.0, "uV per mA"),
    "patient": (Range(0, 2**31 - 1, integer=True), 0, "e.g. 0"),
    "max_block_samples": (Range(1, 1 << 20, integer=True), 4096, "e.g. 4096"),
}


def _option(key: str, value: Any) -> float:
    rng, _, hint = OPTIONS[key]
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if rng.integer else float(text)
        except ValueError:
            raise ConfigError(f"lfp source option {key} = {value!r} is not a number; use a "
                              f"value in {rng.text()} ({hint})") from None
    if rng.integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    return float(check_number(f"lfp source option {key}", value, rng, hint=hint))


@jit
def _cathodic(amplitude_ma: np.ndarray) -> float:
    total = 0.0
    for c in range(amplitude_ma.shape[0]):
        if amplitude_ma[c] < 0.0:
            total -= amplitude_ma[c]
    return total


class LfpPatientSource(GeneratedSource):
    """Streaming synthetic STN LFP that reacts to stimulation (module docstring).

    Parameters
    ----------
    seed : int
        Draws every random number (bursts, oscillator, background).
    **options
        Any key of :data:`OPTIONS` (as numbers or URL strings).

    Raises
    ------
    ConfigError
        An unknown option or a value outside its range (one line naming it).
    """

    scheme = "lfp"
    paced_by_device = False
    reacts_to_stimulation = True
    _PREFETCH_WAIT_S = 30.0
    _PATIENT_NAME = "STN patient"
    _STUCK_HINT = " (or no stimulation command came)"

    def __init__(self, seed: int | str = 0, **options: Any) -> None:
        super().__init__()
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown lfp source option {unknown[0]!r}; use one of: "
                              + ", ".join(sorted(OPTIONS)))
        o = {k: _option(k, options[k]) if options.get(k) is not None else float(d)
             for k, (_, d, _h) in OPTIONS.items() if k != "seed"}
        o["seed"] = _option("seed", seed)
        if not o["effect_full_ma"] > o["effect_from_ma"]:
            raise ConfigError(f"lfp source option effect_full_ma = {o['effect_full_ma']:g} "
                              f"must be above effect_from_ma = {o['effect_from_ma']:g}")
        fs = o["sampling_rate_hz"]
        self.options = o
        self.seed = int(o["seed"])
        self.info = SourceInfo(channel_names=CHANNELS, channel_types=("lfp", "lfp"),
                               sampling_rate_hz=fs, unit="uV", intention_names=INTENTIONS)
        self._total = int(round(o["duration_s"] * fs)) if o["duration_s"] > 0 else None
        self.params = self._params(o)
        self._state = np.zeros(L.N_STATE)
        self._rng = xoshiro_seed_state(self.seed, int(o["segment"]), 0x57A7)
        self._metrics = np.zeros(L.N_METRIC)
        # with prefetch, figures are those of the samples the reader has taken (the producer
        # may be a hop ahead): a snapshot per produced chunk, in order
        self._snapshots = np.zeros((16, L.N_METRIC))
        self._chunks_made = 0
        self._read_metrics = np.zeros(L.N_METRIC)
        self._gains = _GAINS * o["snr"]
        self._art_gains = _ART_GAINS.copy()
        # commands: a ring written by stimulation_applied, read by the generator
        self._cmd_from = np.zeros(_MAX_COMMANDS, np.int64)
        self._cmd = np.zeros((_MAX_COMMANDS, 3))  # cathodic mA, Hz, us
        self._cmd_written = 0
        self._cmd_read = 0
        self._stim = np.zeros(3)  # in force at _next_index
        self._last_from = -1
        n_max = int(o["max_block_samples"])
        self.max_block_samples = n_max
        self._allocate_blocks(n_max, 2)
        self._horizon: StimulationHorizon | None = None
        self._pf_first = 0

    @staticmethod
    def _params(o: Mapping[str, float]) -> np.ndarray:
        fs = o["sampling_rate_hz"]
        p = np.zeros(L.N_PARAM)
        p[L.P_FS] = fs
        p[L.P_SEVERITY] = o["severity"]
        p[L.P_MED_EFFECT] = o["medication_effect"]
        p[L.P_MED_PERIOD_S] = o["medication_period_s"]
        p[L.P_MED_PHASE_S] = o["medication_phase_s"]
        p[L.P_MED_TAU_ABS_S] = 1200.0
        p[L.P_MED_TAU_EL_S] = 5400.0
        p[L.P_ALPHA_ON] = 1.0 - math.exp(-1.0 / (o["suppression_tau_s"] * fs))
        p[L.P_ALPHA_OFF] = 1.0 - math.exp(-1.0 / (o["rebound_tau_s"] * fs))
        p[L.P_DEPTH] = o["depth"]
        p[L.P_I_LO] = o["effect_from_ma"]
        p[L.P_I_HI] = o["effect_full_ma"]
        p[L.P_RATE] = 1.5
        p[L.P_DUR_S] = 0.35
        p[L.P_BURST_UV] = 6.0
        p[L.P_TONIC_UV] = 1.5
        # resonator at beta_hz, pole radius r (bandwidth ~ (1 - r) fs / pi ~ 4 Hz)
        r = 1.0 - 4.0 * math.pi / fs
        w = 2.0 * math.pi * o["beta_hz"] / fs
        a1, a2 = 2.0 * r * math.cos(w), -r * r
        # unit output variance of y = a1 y1 + a2 y2 + g e
        var = (1.0 - a2) / ((1.0 + a2) * ((1.0 - a2) ** 2 - a1 * a1))
        p[L.P_OSC_A1], p[L.P_OSC_A2], p[L.P_OSC_G] = a1, a2, 1.0 / math.sqrt(var)
        p[L.P_BG_A] = 0.95
        p[L.P_BG_UV] = 1.0
        p[L.P_WHITE_UV] = 0.5
        p[L.P_ART_UV_PER_MA] = o["artifact_uv_per_ma"]
        p[L.P_ART_HARMONICS] = 6
        p[L.P_THRESHOLD] = 0.6
        p[L.P_LABEL_UV] = 3.0
        return p

    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]
                 ) -> LfpPatientSource:
        """``lfp://stn?seed=1&severity=1.2...`` (the location must be ``stn``)."""
        if location.strip("/") not in ("stn", ""):
            raise ConfigError(f"lfp source {location!r} is not a known patient; use lfp://stn")
        return cls(**dict(options))

    # -- stimulation -------------------------------------------------------------------------
    def stimulation_applied(self, amplitude_ma: np.ndarray, frequency_hz: float,
                            pulse_width_us: float, from_sample: int) -> None:
        """See :meth:`BaseSource.stimulation_applied`. Allocation-free (a preallocated ring);
        a command with the same ``from_sample`` as the previous one replaces it."""
        frm = int(from_sample)
        if frm < self._last_from:
            frm = self._last_from  # never back in time
        w = self._cmd_written
        if frm == self._last_from and w > self._cmd_read:
            w -= 1  # replace the pending command that starts at the same sample
        elif w - self._cmd_read >= _MAX_COMMANDS:
            raise DeviceError("the STN patient fell more than 256 commands behind; "
                              "its generator is stuck")
        slot = w % _MAX_COMMANDS
        self._cmd_from[slot] = frm
        self._cmd[slot, 0] = _cathodic(amplitude_ma)
        self._cmd[slot, 1] = frequency_hz
        self._cmd[slot, 2] = pulse_width_us
        self._cmd_written = w + 1
        self._last_from = frm
        if self._horizon is not None:
            self._horizon.advance(frm)

    def metrics(self) -> dict[str, float]:
        m = self._read_metrics if self._producer is not None else self._metrics
        n = max(m[L.M_SAMPLES], 1.0)
        fs = self.info.sampling_rate_hz
        return {
            "beta_above_threshold_pct": 100.0 * m[L.M_ABOVE] / n,
            "burst_time_pct": 100.0 * m[L.M_BURST] / n,
            "stim_delivered_pct": 100.0 * m[L.M_STIM] / n,
            "teed_delivered_mj": 1e3 * m[L.M_TEED_J],
            "mean_drive": m[L.M_DRIVE_SUM] / n,
            "simulated_s": m[L.M_SAMPLES] / fs,
        }

    # -- generation --------------------------------------------------------------------------
    def _generate(self, n: int, out: np.ndarray, labels: np.ndarray) -> None:
        """The next ``n`` samples, applying each command at its ``from_sample``."""
        done = 0
        while done < n:
            first = self._next_index
            # commands that start at or before this sample take effect now
            while self._cmd_read < self._cmd_written:
                slot = self._cmd_read % _MAX_COMMANDS
                if self._cmd_from[slot] > first:
                    break
                self._stim[:] = self._cmd[slot]
                self._cmd_read += 1
            stop = n
            if self._cmd_read < self._cmd_written:
                nxt = int(self._cmd_from[self._cmd_read % _MAX_COMMANDS]) - first
                stop = min(n, done + nxt)
            k = stop - done
            L.lfp_block(k, first, out[done:stop], labels[done:stop], self._gains,
                        self._art_gains, self._state, self._rng, self.params,
                        float(self._stim[0]), float(self._stim[1]), float(self._stim[2]),
                        self._metrics)
            self._next_index = first + k
            done = stop

    def warmup(self) -> None:
        """Compile the kernel with the real types without advancing the stream."""
        L.lfp_block(1, 0, self._buf, self._lab, self._gains, self._art_gains,
                    self._state.copy(), self._rng.copy(), self.params, 1.0, 130.0, 60.0,
                    np.zeros(L.N_METRIC))
        _cathodic(np.zeros(4))
        self._warm = True

    def _fill_next(self, out: np.ndarray, labels: np.ndarray) -> int:
        n = out.shape[0]
        if self._total is not None:
            n = min(n, self._total - self._next_index)
        if n <= 0:
            return 0
        horizon = self._horizon
        if horizon is not None and not horizon.wait_for(self._next_index + n):
            return 0  # closing
        self._generate(n, out, labels)
        if horizon is not None:
            self._snapshots[self._chunks_made % self._snapshots.shape[0]] = self._metrics
            self._chunks_made += 1
        return n

    def read_into(self, out: np.ndarray, labels: np.ndarray | None = None) -> int:
        """Generate the next ``len(out)`` samples into ``out`` (offline, firmware_sim)."""
        if self._producer is not None:
            raise RuntimeError("read_into cannot be mixed with a running prefetch; use read()")
        if labels is None:
            labels = np.empty(out.shape[0], np.int8)
        return self._fill_next(out, labels)

    def start_prefetch(self, chunk_samples: int, *, release_when_idle: bool = False,
                       depth: int = 4) -> bool:
        """Produce hops in a thread, never past the known stimulation (module docstring).

        The horizon starts at :func:`stimulation_effect_sample` of the first hop (samples
        before it are unstimulated whatever the loop decides), so the producer makes the
        first hop ahead and then each next hop as soon as the command of the hop before
        it is known: it runs while the loop waits for that hop to be due.
        """
        if self._producer is not None:
            return True
        if not self._warm:
            self.warmup()
        hop = int(chunk_samples)
        self._horizon = StimulationHorizon(
            max(self._last_from, stimulation_effect_sample(self._next_index - 1, hop)))
        # the reader's figures start from those of the samples made so far (before the thread)
        self._pf_first = self._next_index
        self._read_metrics[:] = self._metrics
        weakref.finalize(self, self._horizon.close)
        return self._start_producer(self._fill_next, first_index=self._next_index,
                                    chunk_samples=hop, depth=depth,
                                    release_when_idle=release_when_idle)

    # -- prefetch hooks ----------------------------------------------------------------------
    def _chunk_taken(self, slot: int) -> None:
        """The reader starts on a produced chunk: its figures become that chunk's."""
        p = self._producer
        assert p is not None
        k = (int(p.first[slot]) - self._pf_first) // p.chunk_samples
        self._read_metrics[:] = self._snapshots[k % self._snapshots.shape[0]]

    def _prefetch_stopped(self) -> None:
        self._metrics[:] = self._read_metrics  # figures of what was read

    # -- BaseSource hooks --------------------------------------------------------------------
    def _close(self) -> None:
        if self._horizon is not None:
            self._horizon.close()
        super()._close()
