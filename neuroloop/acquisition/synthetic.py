"""The synthetic patient: a seeded, deterministic, streaming ECoG/EEG source.

``synthetic://bsi?seed=1&snr=1.0`` or ``synthetic://eeg-bci`` (see :func:`open_source`).

Presets
-------
``bsi`` - 64-channel ECoG at 586 Hz (``ECOG01..ECOG64``, type ``ecog``) from an 8x8 grid
(4 mm pitch) over the leg motor cortex of both hemispheres (columns 0-3 left hemisphere,
4-7 right, row 0 rostral), modelled on the WIMAGINE implants of the brain-spine interface
(Lorach et al., Nature 2023). Seven intention states, ``rest`` and left/right hip flexion,
knee extension and ankle dorsiflexion.

``eeg-bci`` - 32-channel scalp EEG at 250 Hz (10-20 names of the actiCAP 32 montage, type
``eeg``), states ``rest``, ``left``, ``right`` (motor imagery / attempted movement).

Physiology (and why)
--------------------
* **Aperiodic 1/f background.** Cortical field potentials have a power-law spectrum
  ``P ~ 1/f**chi``; ECoG exponents are steeper (chi ~ 2, Miller et al. 2009) than scalp EEG
  (chi ~ 1-1.5, Donoghue et al. 2020). We use chi = 1.8 (ECoG) and 1.4 (EEG) between 1 Hz and
  120 Hz (EEG: 60 Hz), flat below 1 Hz, made by a pole-zero "pinking" cascade of white noise.
  Each channel has its own background plus a component shared by all channels (common
  reference and volume conduction; a common-average reference removes most of it).
* **ECoG movement signature.** Each movement has a spatial map on the grid: a Gaussian blob
  (sigma 1 electrode = 4 mm) centred on its somatotopic spot in the *contralateral*
  hemisphere (left leg -> right hemisphere) and a weaker (0.35) mirror blob ipsilaterally,
  as ipsilateral leg cortex also activates. Foot/ankle lies nearest the midline, the hip
  most lateral, the knee between, so neighbouring joints overlap partially. During a
  movement the local high-gamma (70-150 Hz, a correlate of population firing) amplitude
  rises by ``1 + 1.5 * snr * w`` and the beta (13-30 Hz) amplitude falls by
  ``1 / (1 + 0.8 * snr * w)`` with a broader map (sigma 1.6, beta desynchronisation is less
  focal); ``w`` is the channel's map weight (0-1). Beta generators are also seen by the 4
  neighbouring electrodes at 0.3 (volume conduction at 4 mm pitch); high gamma is local.
* **EEG sensorimotor rhythms.** Two mu (8.5-12.5 Hz) and two beta (14-28 Hz) generators
  under C3 and C4 project to the scalp with a Gaussian spread (sigma 0.3 head radius:
  neighbours FC1/FC5/CP1/CP5 see ~0.4-0.5, Cz ~0.25). Attempting a *left* movement
  desynchronises the C4 generators (mu and beta amplitude / (1 + snr)),
  *right* the C3 ones; the ipsilateral generators drop by a fifth of that. A posterior alpha
  generator (8.5-11.5 Hz, occipital, not task related) is the distractor in the same band.
* **Task envelope.** Modulations follow the scripted intention through a one-pole envelope
  (time constant 40 ms ECoG, 80 ms EEG) and are scaled per segment by a strength drawn in
  [0.8, 1.2] (trial-to-trial variability), applied in the log domain so that a factor never
  changes sign. Labels switch at the segment onset; the neural change follows within
  about two time constants.
* **Mains interference.** 50 Hz (``line_hz``; 0 disables) with harmonics (ECoG 2nd 0.1,
  3rd 0.25; EEG 2nd 0.1) below Nyquist; amplitude (ECoG 6 uV, EEG 8 uV) and phase vary per
  electrode (impedance), so a common-average reference does not cancel it.
* **Artifacts** (Poisson, ``artifact_rate_per_min``, default 1/min): *movement spike* (40 %;
  an alpha-function transient, tau 15-40 ms, 0.5-1.5x a preset scale of 400 uV ECoG /
  150 uV EEG, on every channel with a smooth spatial gradient), *saturation* (30 %; a cluster
  of neighbouring channels pinned at the amplifier rail, +/-3000 uV ECoG / 1000 uV EEG, for
  100-300 ms) and *flat channel* (30 %; one channel holds its value for 0.5-3 s). All
  samples are clipped at the rail. :attr:`SyntheticSource.artifacts` lists the events.
* **Difficulty.** ``snr`` multiplies every modulation depth above (1.0 = default; 0 = no
  task information; higher = easier). At ``snr=1`` a shrinkage LDA on 8-band log power
  (59-sample hops) trained on 120 s classifies the 7 ECoG states per hop with accuracy
  well above 0.9 on fresh data (measured 0.95; 0.98 on hops that do not straddle a
  transition), at ``snr=0.3`` about 0.55 (``tests/acquisition/test_synthetic_decodability.py``).

Seeds and segments
------------------
``patient`` (default 0) fixes the anatomy: map centres, channel gains, line-noise phases.
``seed`` draws the data: the noise, the intention schedule and the artifacts. ``segment``
(default 0) picks another, independent stretch of data of the same seed. A decoder
calibrated on ``seed=1000`` (or on ``segment=1``) therefore transfers to a closed-loop run on
``seed=1``: same patient, different data. The stream is bit-identical across runs and
processes for the same options and does not depend on the read sizes.

Streaming
---------
Compiled kernels (:mod:`._synth_kernels`) generate every block into a buffer allocated at
construction; :meth:`SyntheticSource.read` returns the same :class:`Block` each time (valid
until the next read) and allocates nothing after :meth:`SyntheticSource.warmup`, except
when the schedule and artifact tables are extended (every hour of stream, doubling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import _synth_kernels as K
from ._synth_models import PRESETS, Model, PresetSpec, build_model
from .base import BaseSource, SourceInfo
from .generated import GeneratedSource
from .schedule import Schedule

__all__ = ["SyntheticSource", "ArtifactTable", "generate", "PRESET_NAMES", "ARTIFACT_KINDS"]

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

#: ``synthetic://<name>`` patients that react to stimulation (``stimulation_applied``), each
#: its own source class (``module:Class``), imported on first use.
_PATIENT_MODELS: dict[str, str] = {
    "responsive": "neuroloop.acquisition.responsive:ResponsivePatient",
}

#: Artifact kind names indexed by the kernel's kind codes.
ARTIFACT_KINDS: tuple[str, ...] = ("spike", "saturation", "flat")
_KIND_P = (0.4, 0.3, 0.3)

_STREAM_NOISE = 0x401CE
_STREAM_ARTIFACTS = 0xA27F
_HORIZON_S = 3600.0  # schedule/artifact tables are drawn this far ahead, then doubled


# --------------------------------------------------------------------------------------------
# artifacts
# --------------------------------------------------------------------------------------------
class ArtifactTable:
    """Seeded Poisson sequence of artifact events, extended lazily in draw order.

    Attributes (arrays of the events drawn so far, sorted by onset)
    ----------
    onset : int64 (n_events,)      first sample
    length : int64 (n_events,)     duration in samples
    kind : int8 (n_events,)        index into :data:`ARTIFACT_KINDS`
    amp : float64 (n_events,)      spike amplitude (uV) or the signed rail value
    tau : float64 (n_events,)      spike time constant in samples (1 for other kinds)
    weights : float64 (n_events, n_channels)   per-channel weight, 0 = untouched
    hold : float64 (n_events, n_channels)      value held by a flat channel (kernel state)
    """

    def __init__(self, model: Model, spec: PresetSpec, rate_per_min: float, seed: int,
                 segment: int) -> None:
        self._model = model
        self._fs = spec.sampling_rate_hz
        self._rail = spec.rail_uv
        self._n_ch = len(spec.channel_names)
        self.rate_per_min = float(rate_per_min)
        self._rng = np.random.default_rng([seed, segment, _STREAM_ARTIFACTS])
        self.onset = np.zeros(0, np.int64)
        self.length = np.zeros(0, np.int64)
        self.kind = np.zeros(0, np.int8)
        self.amp = np.zeros(0)
        self.tau = np.zeros(0)
        self.weights = np.zeros((0, self._n_ch))
        self.hold = np.zeros((0, self._n_ch))
        self._next = self._draw_gap(0.0)

    @property
    def n_events(self) -> int:
        return int(self.onset.shape[0])

    def _draw_gap(self, t: float) -> float:
        if self.rate_per_min <= 0:
            return math.inf
        return t + float(self._rng.exponential(60.0 * self._fs / self.rate_per_min))

    def extend_to(self, n_samples: int) -> None:
        """Draw every event with an onset before ``n_samples`` (allocates; rare)."""
        rows: list[tuple[int, int, int, float, float, np.ndarray]] = []
        while self._next < n_samples:
            rows.append(self._draw_event(int(self._next)))
            self._next = self._draw_gap(self._next)
        if not rows:
            return
        self.onset = np.concatenate([self.onset, np.array([r[0] for r in rows], np.int64)])
        self.length = np.concatenate([self.length, np.array([r[1] for r in rows], np.int64)])
        self.kind = np.concatenate([self.kind, np.array([r[2] for r in rows], np.int8)])
        self.amp = np.concatenate([self.amp, np.array([r[3] for r in rows])])
        self.tau = np.concatenate([self.tau, np.array([r[4] for r in rows])])
        self.weights = np.ascontiguousarray(
            np.concatenate([self.weights, np.array([r[5] for r in rows])]))
        self.hold = np.ascontiguousarray(
            np.concatenate([self.hold, np.zeros((len(rows), self._n_ch))]))

    def _draw_event(self, onset: int) -> tuple[int, int, int, float, float, np.ndarray]:
        rng = self._rng
        fs = self._fs
        pos = self._model.positions
        kind = int(rng.choice(3, p=_KIND_P))
        w = np.zeros(self._n_ch)
        if kind == K.ARTIFACT_SPIKE:
            tau = rng.uniform(0.015, 0.040) * fs
            length = int(math.ceil(8.0 * tau))
            sign = 1.0 if rng.integers(0, 2) else -1.0
            amp = sign * self._model.artifact_scale_uv * rng.uniform(0.5, 1.5)
            angle = rng.uniform(0.0, 2.0 * math.pi)
            proj = pos @ np.array([math.cos(angle), math.sin(angle)])
            span = np.ptp(proj)
            w = 0.65 + 0.35 * (2.0 * (proj - proj.min()) / span - 1.0)
            return onset, length, kind, amp, tau, w
        centre = int(rng.integers(0, self._n_ch))
        if kind == K.ARTIFACT_SATURATION:
            length = int(round(rng.uniform(0.1, 0.3) * fs))
            d = np.hypot(pos[:, 0] - pos[centre, 0], pos[:, 1] - pos[centre, 1])
            w[d <= self._model.neighbour_radius] = 1.0
            amp = self._rail if rng.integers(0, 2) else -self._rail
            return onset, length, kind, amp, 1.0, w
        length = int(round(rng.uniform(0.5, 3.0) * fs))
        w[centre] = 1.0
        return onset, length, kind, 0.0, 1.0, w

    def events(self, first: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """Events with onset in ``[first, stop)``: dicts with ``onset``, ``n_samples``,
        ``kind`` (name) and ``channels`` (indices of the affected channels)."""
        out = []
        for i in range(self.n_events):
            o = int(self.onset[i])
            if o < first or (stop is not None and o >= stop):
                continue
            out.append({"onset": o, "n_samples": int(self.length[i]),
                        "kind": ARTIFACT_KINDS[int(self.kind[i])],
                        "channels": tuple(int(c) for c in np.flatnonzero(self.weights[i]))})
        return out


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    seed: int = 0
    snr: float = 1.0
    artifact_rate_per_min: float | None = None
    line_hz: float | None = None
    duration_s: float | None = None
    segment: int = 0
    patient: int = 0
    max_block_samples: int = 4096


_FIXES = {
    "seed": "an integer >= 0, e.g. seed=1",
    "segment": "an integer >= 0, e.g. segment=1",
    "patient": "an integer >= 0, e.g. patient=0",
    "snr": "a finite number >= 0, e.g. snr=1.0 (higher is easier)",
    "artifact_rate_per_min": "a finite number >= 0 (events per minute), e.g. 1.0",
    "line_hz": "0 (off) or a mains frequency below Nyquist, e.g. 50 or 60",
    "duration_s": "a finite number of seconds > 0, or omit it for an endless stream",
    "max_block_samples": "an integer between 1 and 1048576, e.g. 4096",
    "n_channels": "omit it or give the preset's channel count",
    "sampling_rate_hz": "omit it or give the preset's sampling rate",
}


def _fail(key: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"synthetic source option {key}={value!r} {problem}; use {_FIXES[key]}")


def _as_int(key: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise _fail(key, value, "is not an integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _fail(key, value, "is not an integer") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int | np.integer):
        raise _fail(key, value, "is not an integer")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise _fail(key, value, "is out of range")
    return v


def _as_float(key: str, value: Any, lo: float, hi: float = math.inf,
              lo_inclusive: bool = True) -> float:
    if isinstance(value, bool):
        raise _fail(key, value, "is not a number")
    if isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            raise _fail(key, value, "is not a number") from None
    elif isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
    else:
        raise _fail(key, value, "is not a number")
    if not math.isfinite(v) or v > hi or v < lo or (v == lo and not lo_inclusive):
        raise _fail(key, value, "is out of range")
    return v


def _parse_preset(preset: Any) -> PresetSpec:
    name = str(preset).strip().strip("/") if isinstance(preset, str) else preset
    if name not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {preset!r}; use synthetic://"
                          + " or synthetic://".join((*PRESET_NAMES, *_PATIENT_MODELS)))
    return PRESETS[name]


def _check_known(options: Mapping[str, Any]) -> None:
    for key in options:
        if key not in _FIXES:
            raise ConfigError(f"unknown synthetic source option {key!r}; use one of: "
                              + ", ".join(sorted(_FIXES)))


def _parse_options(spec: PresetSpec, options: Mapping[str, Any]) -> _Options:
    _check_known(options)
    o = {k: v for k, v in options.items() if v is not None}
    nyq = spec.sampling_rate_hz / 2.0
    if o.get("n_channels") is not None:
        n = _as_int("n_channels", o["n_channels"], 1)
        if n != len(spec.channel_names):
            raise ConfigError(
                f"synthetic source option n_channels={o['n_channels']!r} does not match preset "
                f"{spec.name!r}, which has {len(spec.channel_names)} channels; omit it or use "
                f"n_channels={len(spec.channel_names)}")
    if o.get("sampling_rate_hz") is not None:
        r = _as_float("sampling_rate_hz", o["sampling_rate_hz"], 0.0, lo_inclusive=False)
        if r != spec.sampling_rate_hz:
            raise ConfigError(
                f"synthetic source option sampling_rate_hz={o['sampling_rate_hz']!r} does not "
                f"match preset {spec.name!r}, which runs at {spec.sampling_rate_hz:g} Hz; omit "
                f"it or use sampling_rate_hz={spec.sampling_rate_hz:g}")
    out = _Options(
        seed=_as_int("seed", o.get("seed", 0), 0, (1 << 63) - 1),
        snr=_as_float("snr", o.get("snr", 1.0), 0.0, 1e6),
        artifact_rate_per_min=(None if o.get("artifact_rate_per_min") is None else
                               _as_float("artifact_rate_per_min",
                                         o["artifact_rate_per_min"], 0.0, 6000.0)),
        line_hz=(None if o.get("line_hz") is None else
                 _as_float("line_hz", o["line_hz"], 0.0)),
        duration_s=(None if o.get("duration_s") is None else
                    _as_float("duration_s", o["duration_s"], 0.0, 1e9, lo_inclusive=False)),
        segment=_as_int("segment", o.get("segment", 0), 0, (1 << 63) - 1),
        patient=_as_int("patient", o.get("patient", 0), 0, (1 << 63) - 1),
        max_block_samples=_as_int("max_block_samples", o.get("max_block_samples", 4096), 1,
                                  1 << 20),
    )
    if out.line_hz is not None and out.line_hz >= nyq:
        raise _fail("line_hz", o["line_hz"], f"is not below Nyquist ({nyq:g} Hz)")
    return out


# --------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------
class SyntheticSource(GeneratedSource):
    """Streaming synthetic patient (see the module docstring for the model).

    Parameters
    ----------
    preset : {"bsi", "eeg-bci"}
    seed : int
        Draws the noise, the schedule and the artifacts (>= 0).
    snr : float
        Task modulation depth relative to the default (1.0); 0 removes task information.
    artifact_rate_per_min : float, optional
        Artifact events per minute (preset default 1.0; 0 disables).
    line_hz : float, optional
        Mains frequency (preset default 50; 0 disables line noise).
    duration_s : float, optional
        Finite length; :attr:`exhausted` becomes True after it. Endless when omitted.
    segment : int
        Independent stretch of data of the same seed (e.g. calibration = 0, loop = 1).
    patient : int
        Anatomy (map centres, channel gains); keep it fixed between calibration and loop.
    max_block_samples : int
        Largest block :meth:`read` returns (buffer size, fixed at construction).
    n_channels, sampling_rate_hz : optional
        Accepted only when equal to the preset's (a consistency check from configs).

    Raises
    ------
    ConfigError
        Unknown preset or a bad option (the message names the key, the value and the fix).
    """

    scheme = "synthetic"
    paced_by_device = False
    _PATIENT_NAME = "synthetic patient"

    def __init__(
        self,
        preset: str = "bsi",
        *,
        seed: int | str = 0,
        snr: float | str = 1.0,
        artifact_rate_per_min: float | str | None = None,
        line_hz: float | str | None = None,
        duration_s: float | str | None = None,
        segment: int | str = 0,
        patient: int | str = 0,
        max_block_samples: int | str = 4096,
        n_channels: int | str | None = None,
        sampling_rate_hz: float | str | None = None,
    ) -> None:
        super().__init__()
        spec = _parse_preset(preset)
        opts = _parse_options(spec, {
            "seed": seed, "snr": snr, "artifact_rate_per_min": artifact_rate_per_min,
            "line_hz": line_hz, "duration_s": duration_s, "segment": segment,
            "patient": patient, "max_block_samples": max_block_samples,
            "n_channels": n_channels, "sampling_rate_hz": sampling_rate_hz,
        })
        self.preset = spec.name
        self.options = opts
        fs = spec.sampling_rate_hz
        self.info = SourceInfo(
            channel_names=spec.channel_names,
            channel_types=(spec.channel_type,) * len(spec.channel_names),
            sampling_rate_hz=fs,
            unit="uV",
            intention_names=spec.intention_names,
        )
        line_hz = spec.line_hz if opts.line_hz is None else opts.line_hz
        rate = spec.artifact_rate_per_min if opts.artifact_rate_per_min is None \
            else opts.artifact_rate_per_min
        self.seed = opts.seed
        self.snr = opts.snr
        self.segment = opts.segment
        self.patient = opts.patient
        self.line_hz = line_hz
        self.artifact_rate_per_min = rate
        self.rail_uv = spec.rail_uv
        self._model = build_model(spec.name, opts.patient, opts.snr, line_hz)
        self._total = (None if opts.duration_s is None else int(round(opts.duration_s * fs)))

        self.schedule = Schedule(spec.intention_names, fs, opts.seed, segment=opts.segment)
        self.artifacts = ArtifactTable(self._model, spec, rate, opts.seed, opts.segment)
        self._horizon = 0
        self._ensure_horizon(int(round(min(_HORIZON_S, opts.duration_s or _HORIZON_S) * fs)))

        m = self._model
        n_src = m.sos.shape[0]
        self._rng = K.xoshiro_seed_state(opts.seed, opts.segment, _STREAM_NOISE)
        self._runs = K.source_runs(K.pack_sections(m.sos, m.n_sections))
        self._zi = np.zeros((m.sos.shape[1], 2, n_src))
        self._slots = K.lead_field_slots(
            *K.lead_field_by_channel(m.mix_ptr, m.mix_ch, m.mix_w, len(spec.channel_names)),
            n_src)
        self._mains = K.mains_table(m.line_hz, m.line_a, m.line_b, fs)
        self._scratch = np.zeros(n_src + 1)
        self._envelope = np.ones((2, n_src))  # current envelope, its target
        self._cursor = np.array([0, 0, -1], np.int64)
        self._env_alpha = 1.0 - math.exp(-1.0 / (m.envelope_tau_s * fs))

        n_max = opts.max_block_samples
        self.max_block_samples = n_max
        self._allocate_blocks(n_max, len(spec.channel_names))

    # -- construction from a URL -------------------------------------------------------------
    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]
                 ) -> BaseSource:
        """Build from ``synthetic://<preset>?key=value...`` (see :func:`open_source`); a
        patient model of :data:`_PATIENT_MODELS` is built by its own class."""
        if scheme != cls.scheme:
            raise ConfigError(f"SyntheticSource cannot open scheme {scheme!r}; use synthetic://")
        plant = _PATIENT_MODELS.get(location.strip().strip("/"))
        if plant is not None:  # a patient that reacts to stimulation has its own class
            import importlib

            module_name, _, cls_name = plant.partition(":")
            model: Any = getattr(importlib.import_module(module_name), cls_name)
            return model.from_url(scheme, location, options)
        spec = _parse_preset(location)
        _check_known(options)
        return cls(spec.name, **dict(options))

    # -- public extras -----------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Stream index of the next sample :meth:`read` will return."""
        return self._read_index if self._producer is not None else self._next_index

    @property
    def n_samples_total(self) -> int | None:
        """Length of a finite stream in samples (None when endless)."""
        return self._total

    @property
    def task_maps(self) -> dict[str, np.ndarray]:
        """Spatial maps of the task modulation: name -> (n_states, n_channels), 0..1.

        ``bsi``: ``"high_gamma"`` and ``"beta"``; ``eeg-bci``: ``"mu"`` and ``"beta"`` (the
        contralateral generator's scalp projection). Rest rows are zero. Copies.
        """
        return {k: v.copy() for k, v in self._model.task_maps.items()}

    def start_prefetch(self, chunk_samples: int, *, release_when_idle: bool = False,
                       depth: int = 8) -> bool:
        """Generate the stream ahead of the reader, ``chunk_samples`` at a time, in a thread.

        From then on :meth:`read` returns samples the thread produced before they were asked
        for (the patient model runs outside the controller's measured path). The samples are
        exactly those of a direct read. Stopped by :meth:`close`. With ``release_when_idle``
        a chunk that was read is handed back for refilling only by :meth:`idle` (a paced live
        loop calls it before it waits), so the producer's Python code never takes the GIL from
        a cycle being computed.

        Returns
        -------
        bool
            True (this source supports prefetching).
        """
        return self._start_producer(self._fill_next, first_index=self._next_index,
                                    chunk_samples=chunk_samples, depth=depth,
                                    release_when_idle=release_when_idle)

    def warmup(self) -> None:
        """Compile the kernels with the real argument types, without advancing the stream."""
        m = self._model
        K.synth_block(
            1, self._next_index, self._buf, self._lab,
            self.schedule.onsets, self.schedule.states, self.schedule.strengths,
            self._cursor.copy(), self._rng.copy(), *self._runs, self._zi.copy(),
            m.logmod, self._envelope.copy(), self._env_alpha,
            *self._slots, m.line_hz, m.line_a, m.line_b, self._mains,
            self.info.sampling_rate_hz, self.rail_uv,
            self.artifacts.onset, self.artifacts.length, self.artifacts.kind,
            self.artifacts.amp, self.artifacts.tau, self.artifacts.weights,
            self.artifacts.hold.copy(), self._scratch.copy(),
        )
        K.fill_labels(self.schedule.onsets, self.schedule.states, 0, 1, self._lab)
        self._warm = True

    def read_into(self, out: np.ndarray, labels: np.ndarray | None = None) -> int:
        """Generate the next ``len(out)`` samples straight into ``out`` (offline use).

        Parameters
        ----------
        out : ndarray, shape (n, n_channels), float64, C-contiguous
        labels : ndarray, shape (n,), int8, optional

        Returns
        -------
        int
            Samples written (fewer than ``n`` only at the end of a finite stream).
        """
        if self._producer is not None:
            raise RuntimeError("read_into cannot be mixed with a running prefetch; use read()")
        n_ch = self.info.n_channels
        if out.ndim != 2 or out.shape[1] != n_ch or out.dtype != np.float64 \
                or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float64 array of shape (n, {n_ch})")
        n = out.shape[0]
        if labels is None:
            labels = np.empty(n, np.int8)
        elif labels.shape != (n,) or labels.dtype != np.int8:
            raise ValueError(f"labels must be an int8 array of shape ({n},)")
        return self._fill_next(out, labels)

    # -- internals ---------------------------------------------------------------------------
    def _ensure_horizon(self, n_samples: int) -> None:
        if n_samples <= self._horizon:
            return
        horizon = max(n_samples, 2 * self._horizon)
        if self._total is not None:
            horizon = max(n_samples, min(horizon, self._total))
        self.schedule.extend_to(horizon)
        self.artifacts.extend_to(horizon)
        self._horizon = horizon

    def _generate(self, n: int, out: np.ndarray, labels: np.ndarray) -> None:
        first = self._next_index
        self._ensure_horizon(first + n)
        m = self._model
        a = self.artifacts
        s = self.schedule
        run_ptr, run_sos = self._runs
        slot_plan, slot_w = self._slots
        K.synth_block(  # no *args: a star call builds a list before the argument tuple
            n, first, out, labels, s.onsets, s.states, s.strengths, self._cursor, self._rng,
            run_ptr, run_sos, self._zi, m.logmod, self._envelope,
            self._env_alpha, slot_plan, slot_w, m.line_hz, m.line_a, m.line_b,
            self._mains, self.info.sampling_rate_hz, self.rail_uv,
            a.onset, a.length, a.kind, a.amp, a.tau, a.weights, a.hold, self._scratch,
        )
        self._next_index = first + n


def generate(
    preset: str = "bsi",
    duration_s: float = 60.0,
    seed: int = 0,
    snr: float = 1.0,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``duration_s`` seconds of the synthetic patient at once (offline).

    The same generator as the stream: ``generate(...)`` equals the concatenation of
    :meth:`SyntheticSource.read` blocks with the same options.

    Parameters
    ----------
    preset : {"bsi", "eeg-bci"}
    duration_s : float
        Seconds to generate (> 0).
    seed : int
    snr : float
    **options
        Any other :class:`SyntheticSource` option (``segment``, ``patient``,
        ``artifact_rate_per_min``, ``line_hz``).

    Returns
    -------
    data : ndarray, shape (n_samples, n_channels), float64, microvolts
    labels : ndarray, shape (n_samples,), int8
        Ground-truth intention per sample.
    """
    options.pop("max_block_samples", None)  # read_into bypasses the block buffer
    src = SyntheticSource(preset, seed=seed, snr=snr, duration_s=duration_s,
                          max_block_samples=1, **options)
    n = src.n_samples_total or 0
    data = np.empty((n, src.info.n_channels))
    labels = np.empty(n, np.int8)
    src.read_into(data, labels)
    return data, labels
