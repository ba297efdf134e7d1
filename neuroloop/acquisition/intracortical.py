"""Synthetic intracortical population at Neuralink-N1 scale: ``intracortical://raw`` and
``intracortical://binned``.

The model (and why)
-------------------
* **Movement intention.** A 2D cursor/hand performs a task that is the ground truth:
  ``task=centre-out`` (hold at the centre 0.5-1 s, reach to one of 8 targets on a 10 cm
  circle in 0.6-0.9 s, hold 0.4-0.7 s, return) or ``task=random-target`` (reach from wherever
  the hand is to a uniform target in a 20 x 20 cm square, duration growing with distance,
  hold 0.3-0.8 s). Reaches follow the minimum-jerk profile (Flash & Hogan 1985). Labels are
  ``rest`` while holding and ``reach`` while moving; :meth:`IntracorticalSource.true_velocity`
  gives the velocity (m/s) per bin, for calibration and scoring.
* **Cosine-tuned units** (Georgopoulos et al. 1982): one unit per electrode fires as an
  inhomogeneous Poisson process (Bernoulli per 1 ms tick) at
  ``base + depth * snr * (v . d) / 0.2 m/s``, clipped to [0, 500] Hz, with a base rate of
  5-20 Hz, a depth of 10-40 Hz (80 % of units tuned, the rest untuned) and a uniform preferred
  direction ``d``.
* **Spike waveforms**: a 1.6 ms biphasic extracellular waveform (trough, then a slower
  positive repolarisation), 25-120 uV trough per unit, so some units hide in the noise.
* **Background noise**: white, 6-12 uV rms per electrode (thermal and distant units).
* **LFP**: four amplitude-modulated oscillations (3, 8, 13, 22 Hz) mixed per electrode,
  tens of uV, far below the spike band.
* **Common-mode artifacts** (``artifact_rate_per_min``, default 6): an alpha-function transient
  of 0.3-1.5 mV, 2-10 ms time constant, on every electrode with a gain of 0.9-1.1 (movement,
  chewing, stimulation pick-up); a common-average reference removes most of it.
* **Headstage**: the sum is quantised to int16 counts at ``gain_uv`` (0.195 uV per count, as
  the Intan RHD2000 amplifiers of many implants) and saturates at the int16 range;
  :class:`~neuroloop.acquisition.base.Block` data are ``counts * gain_uv`` (microvolts), the
  counts themselves are in :attr:`IntracorticalSource.last_counts`.

Modes
-----
``raw``: 1024 electrodes (``n_channels``) at 30 kHz, type ``lfp`` (broadband intracortical).
``binned``: what the implant sends: per bin (``bin_ms``, default 20) and electrode, the
threshold crossings and the spike-band power computed *on the chip*, on the int16 counts, by
:class:`~neuroloop.dsp.spikes.SpikeBandFeatures` (thresholds at ``threshold_multiplier``
x RMS over the first ``threshold_calibration_s``). Each bin is one "sample" of
``2 * n_channels`` values (crossings, then spike-band power rounded to whole ADC counts), at
``1000 / bin_ms`` Hz. The firmware simulator streams exactly these bins over its link.

Streaming and speed
-------------------
Every draw is counter-based (:mod:`._intracortical_kernels`): the stream does not depend on
read sizes, and a block costs the same wherever it starts. The generator is one ``nogil``
kernel; :meth:`start_prefetch` runs it in the producer thread of
:class:`~neuroloop.acquisition.prefetch.ChunkProducer`, so the patient runs on one core while
the controller runs on the other, as an implant would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import _intracortical_kernels as K
from .base import Block, SourceInfo
from .generated import GeneratedSource

__all__ = ["IntracorticalSource", "TaskTable", "TASKS", "MODES", "INTENTION_NAMES",
           "DEFAULT_GAIN_UV"]

TASKS = ("centre-out", "random-target")
MODES = ("raw", "binned")
INTENTION_NAMES = ("rest", "reach")
DEFAULT_GAIN_UV = 0.195
_V_REF = 0.2  # m/s
_TEMPLATE_MS = 1.6
_N_NOISE = 1 << 20
_HORIZON_S = 600.0


def _template(fs: float) -> np.ndarray:
    """Unit-trough biphasic spike waveform sampled at ``fs`` (1.6 ms)."""
    n = max(4, int(round(_TEMPLATE_MS * 1e-3 * fs)))
    t_ms = np.arange(n) * 1000.0 / fs
    w = -np.exp(-0.5 * ((t_ms - 0.35) / 0.1) ** 2) + 0.35 * np.exp(-0.5 * ((t_ms - 0.75)
                                                                        / 0.25) ** 2)
    return np.ascontiguousarray(w / -w.min())


#: SCHED_FIFO priority of the producer thread in live runs: below the loop's (50), above
#: every time-shared process, so that 30.7 M samples/s keep coming on a busy machine.
PRODUCER_PRIORITY = 40


def _producer_priority() -> None:
    """Move the calling (producer) thread to SCHED_FIFO when the OS allows it."""
    import os

    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRODUCER_PRIORITY))
        except (OSError, PermissionError):
            pass  # time-shared: the summary's acquire stage shows what that costs


class TaskTable:
    """Seeded sequence of hold and reach segments, extended lazily (allocates; rare).

    Attributes
    ----------
    starts, lengths : int64 arrays   first sample and length of each segment
    x0, y0, x1, y1 : float64 arrays  start and end position (m)
    moving : int8 array               1 for a reach, 0 for a hold
    """

    def __init__(self, task: str, fs: float, seed: int, segment: int) -> None:
        self.task = task
        self.fs = fs
        self._rng = np.random.default_rng([seed, segment, 0x7A5C])
        self._rows: list[tuple[int, int, float, float, float, float, int]] = []
        self._end = 0
        self._pos = (0.0, 0.0)
        self._phase = 0
        self._refresh()

    def _add(self, seconds: float, target: tuple[float, float], moving: int) -> None:
        n = max(1, int(round(seconds * self.fs)))
        self._rows.append((self._end, n, *self._pos, *target, moving))
        self._end += n
        self._pos = target

    def extend_to(self, n_samples: int) -> None:
        """Draw segments until they cover ``n_samples`` samples."""
        if self._end > n_samples:
            return
        rng = self._rng
        while self._end <= n_samples:
            if self.task == "centre-out":
                if self._phase == 0:
                    self._add(rng.uniform(0.5, 1.0), (0.0, 0.0), 0)
                    a = 2.0 * math.pi * int(rng.integers(0, 8)) / 8.0
                    self._add(rng.uniform(0.6, 0.9), (0.1 * math.cos(a), 0.1 * math.sin(a)), 1)
                    self._phase = 1
                else:
                    self._add(rng.uniform(0.4, 0.7), self._pos, 0)
                    self._add(rng.uniform(0.6, 0.9), (0.0, 0.0), 1)
                    self._phase = 0
            else:
                self._add(rng.uniform(0.3, 0.8), self._pos, 0)
                tx, ty = (float(v) for v in rng.uniform(-0.1, 0.1, 2))
                dist = math.hypot(tx - self._pos[0], ty - self._pos[1])
                self._add(0.4 + 2.5 * dist + rng.uniform(0.0, 0.2), (tx, ty), 1)
        self._refresh()

    def _refresh(self) -> None:
        rows = self._rows or [(0, 1, 0.0, 0.0, 0.0, 0.0, 0)]
        cols = list(zip(*rows, strict=True))
        self.starts = np.array(cols[0], np.int64)
        self.lengths = np.array(cols[1], np.int64)
        self.x0, self.y0, self.x1, self.y1 = (np.array(c, np.float64) for c in cols[2:6])
        self.moving = np.array(cols[6], np.int8)

    @property
    def end(self) -> int:
        return self._end

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                              np.ndarray]:
        """``starts, lengths, x0, y0, x1, y1`` (the kernels' segment table)."""
        return self.starts, self.lengths, self.x0, self.y0, self.x1, self.y1


_FIXES = {
    "seed": "an integer >= 0, e.g. seed=1",
    "segment": "an integer >= 0",
    "patient": "an integer >= 0",
    "snr": "a finite number >= 0 (1.0 = default tuning depth)",
    "task": "centre-out or random-target",
    "mode": "raw or binned",
    "n_channels": "an integer from 1 to 4096, e.g. 1024",
    "sampling_rate_hz": "a rate from 2000 to 100000 Hz, e.g. 30000",
    "gain_uv": "a positive number of microvolts per count, e.g. 0.195",
    "artifact_rate_per_min": "a number >= 0 (events per minute), e.g. 6",
    "duration_s": "a positive number of seconds, or omit it for an endless stream",
    "max_block_samples": "an integer from 1 to 65536, e.g. 600",
    "bin_ms": "at least one sample period, e.g. 20",
    "threshold_multiplier": "a negative number, e.g. -4.5",
    "threshold_calibration_s": "a number of seconds in (0, 600], e.g. 1.0",
    "spikes": "true or false",
}


def _fail(key: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"intracortical source option {key}={value!r} {problem}; use "
                       f"{_FIXES[key]}")


def _num(key: str, value: Any, lo: float, hi: float, *, integer: bool = False,
         lo_open: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _fail(key, value, "is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise _fail(key, value, "is not a number")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo) \
            or (integer and not v.is_integer()):
        raise _fail(key, value, "is out of range")
    return v


class IntracorticalSource(GeneratedSource):
    """Streaming synthetic intracortical population (module docstring).

    Parameters
    ----------
    mode : {"raw", "binned"}
    seed, segment, patient : int
        ``patient`` fixes the units (tuning, amplitudes, noise levels); ``seed`` and
        ``segment`` the spikes, noise, task and artifacts.
    snr : float
        Tuning depth relative to the default.
    task : {"centre-out", "random-target"}
    n_channels : int
        Electrodes (1024 for an N1).
    sampling_rate_hz : float
        ADC rate (30 kHz).
    gain_uv : float
        Microvolts per int16 count.
    artifact_rate_per_min : float
        Common-mode artifacts per minute.
    duration_s : float, optional
        Finite stream length.
    max_block_samples : int
        Largest block :meth:`read` returns without prefetch (raw samples, or bins).
    bin_ms, threshold_multiplier, threshold_calibration_s : float
        On-chip binning (binned mode).
    spikes : bool
        False leaves the units silent (noise, LFP and artifacts only).
    """

    scheme = "intracortical"
    paced_by_device = False
    _PATIENT_NAME = "intracortical patient"

    def __init__(self, mode: str = "raw", *, seed: Any = 0, segment: Any = 0, patient: Any = 0,
                 snr: Any = 1.0, task: str = "centre-out", n_channels: Any = 1024,
                 sampling_rate_hz: Any = 30000.0, gain_uv: Any = DEFAULT_GAIN_UV,
                 artifact_rate_per_min: Any = 6.0, duration_s: Any = None,
                 max_block_samples: Any = 600, bin_ms: Any = 20.0,
                 threshold_multiplier: Any = -4.5, threshold_calibration_s: Any = 1.0,
                 spikes: Any = True) -> None:
        super().__init__()
        from ..dsp.spikes import SpikeBandFeatures, bin_samples_for, check_multiplier

        mode = str(mode).strip().strip("/")
        if mode not in MODES:
            raise _fail("mode", mode, "is not a mode")
        if task not in TASKS:
            raise _fail("task", task, "is not a task")
        self.mode, self.task = mode, task
        self.seed = int(_num("seed", seed, 0, 2**63 - 1, integer=True))
        self.segment = int(_num("segment", segment, 0, 2**63 - 1, integer=True))
        self.patient = int(_num("patient", patient, 0, 2**63 - 1, integer=True))
        self.snr = _num("snr", snr, 0.0, 1e3)
        n_ch = int(_num("n_channels", n_channels, 1, 4096, integer=True))
        fs = _num("sampling_rate_hz", sampling_rate_hz, 2000.0, 100000.0)
        self.gain_uv = _num("gain_uv", gain_uv, 0.0, 1000.0, lo_open=True)
        self.artifact_rate_per_min = _num("artifact_rate_per_min", artifact_rate_per_min, 0.0,
                                          600.0)
        self._total_raw: int | None = None
        if duration_s is not None:
            self._total_raw = int(round(_num("duration_s", duration_s, 0.0, 1e9, lo_open=True)
                                        * fs))
        self.max_block_samples = int(_num("max_block_samples", max_block_samples, 1, 65536,
                                          integer=True))
        if isinstance(spikes, str):
            spikes = spikes.strip().lower() in ("1", "true", "yes", "on")
        self.spikes = bool(spikes)
        self.fs = fs
        self.n_electrodes = n_ch
        self.tick = max(1, int(round(fs / 1000.0)))
        self.bin_samples = bin_samples_for(_num("bin_ms", bin_ms, 0.0, 1e4), fs,
                                           key="intracortical source option bin_ms")
        self.threshold_multiplier = check_multiplier(
            _num("threshold_multiplier", threshold_multiplier, -1e3, 1e3),
            key="intracortical source option threshold_multiplier")
        self.threshold_calibration_s = _num("threshold_calibration_s", threshold_calibration_s,
                                            0.0, 600.0, lo_open=True)
        self._key = np.uint64(int(K._hash(np.uint64(self.seed & (2**64 - 1)), self.segment,
                                          0x1C0)) ^ (self.patient * 0x2545F4914F6CDD1D
                                                     % 2**64))
        self._build_units()
        self.tasks = TaskTable(task, fs, self.seed, self.segment)
        self._horizon = 0
        self._ensure_horizon(int(_HORIZON_S * fs))
        names = tuple(f"ch{c + 1:04d}" for c in range(n_ch))
        self._chip: Any = None
        if mode == "raw":
            self.info = SourceInfo(names, ("lfp",) * n_ch, fs, "uV", INTENTION_NAMES)
            self._row_samples = 1
            block_rows = self.max_block_samples
        else:
            self._chip = SpikeBandFeatures(
                n_ch, fs, self.bin_samples, car=True,
                threshold_multiplier=self.threshold_multiplier,
                threshold_calibration_s=self.threshold_calibration_s, input_dtype="int16")
            # short names: the device's INFO message lists them all in one 16 KB frame
            fnames = tuple(f"tx{c + 1}" for c in range(n_ch)) + \
                tuple(f"sbp{c + 1}" for c in range(n_ch))
            self.info = SourceInfo(fnames, ("misc",) * (2 * n_ch), fs / self.bin_samples,
                                   "count", INTENTION_NAMES)
            self._row_samples = self.bin_samples
            block_rows = max(1, self.max_block_samples // self.bin_samples) \
                if self.max_block_samples >= self.bin_samples else 1
        self._block_rows = block_rows
        raw_rows = self.bin_samples if mode == "binned" else block_rows
        self._raw = np.zeros((raw_rows, n_ch))
        self._counts = np.zeros((raw_rows, n_ch), np.int16)
        self._raw_labels = np.zeros(raw_rows, np.int8)
        self._comp = np.zeros((raw_rows, self._lfp_f.shape[0] + 1))
        self._allocate_blocks(block_rows, self.info.n_channels)
        self._next_raw = 0  # next raw sample the generator produces
        self._vel = np.zeros((1, 2))

    # -- construction helpers ----------------------------------------------------------------
    def _build_units(self) -> None:
        rng = np.random.default_rng([self.patient, 0x0417])
        n, fs = self.n_electrodes, self.fs
        tuned = rng.random(n) < 0.8
        self._base = rng.uniform(5.0, 20.0, n)
        self._depth = np.where(tuned, rng.uniform(10.0, 40.0, n), 0.0) * self.snr
        pd = rng.uniform(0.0, 2.0 * math.pi, n)
        self._cos, self._sin = np.cos(pd), np.sin(pd)
        self._amp = rng.uniform(25.0, 120.0, n)
        self._noise_sd = rng.uniform(6.0, 12.0, n)
        self._lfp_f = np.array([3.1, 7.7, 13.3, 21.9])
        self._lfp_ph = rng.uniform(0.0, 2.0 * math.pi, 4)
        self._lfp_mf = np.array([0.11, 0.23, 0.37, 0.53])
        self._lfp_mph = rng.uniform(0.0, 2.0 * math.pi, 4)
        self._lfp_w = np.ascontiguousarray((rng.normal(0.0, 1.0, (n, 4))
                                            * [40.0, 25.0, 15.0, 10.0]).T)  # (K, n)
        self._cm_gain = rng.uniform(0.9, 1.1, n)
        self._template = _template(fs)
        noise_rng = np.random.default_rng([self.patient, self.seed, self.segment, 0x401CE])
        self._noise = noise_rng.standard_normal(_N_NOISE + n).astype(np.float32)
        self._cm_rate = self.artifact_rate_per_min / 60.0 * self.tick / fs
        self._cm_max_ticks = int(math.ceil(0.08 * 1000.0))

    def _ensure_horizon(self, n_samples: int) -> None:
        if n_samples + self.tick * 2 <= self._horizon:
            return
        horizon = max(n_samples + self.tick * 2, 2 * self._horizon)
        self.tasks.extend_to(horizon)
        self._horizon = horizon

    # -- URL ---------------------------------------------------------------------------------
    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]
                 ) -> IntracorticalSource:
        """``intracortical://raw?seed=1`` or ``intracortical://binned``."""
        if scheme != cls.scheme:
            raise ConfigError(f"IntracorticalSource cannot open {scheme}://; use "
                              "intracortical://raw or intracortical://binned")
        for key in options:
            if key not in _FIXES:
                raise ConfigError(f"unknown intracortical source option {key!r}; use one of: "
                                  + ", ".join(sorted(_FIXES)))
        opts = dict(options)
        mode = opts.pop("mode", None) or location or "raw"
        if location and opts.get("mode", location) != location:
            raise _fail("mode", mode, f"contradicts the URL's {location!r}")
        return cls(mode, **opts)

    # -- public extras -----------------------------------------------------------------------
    @property
    def last_counts(self) -> np.ndarray:
        """int16 ADC counts of the raw samples generated last (a view, overwritten)."""
        return self._counts

    @property
    def position(self) -> int:
        """Stream index (samples of :attr:`info`'s rate) of the next row :meth:`read` returns."""
        return self._read_index

    @property
    def n_samples_total(self) -> int | None:
        if self._total_raw is None:
            return None
        return self._total_raw // self._row_samples

    def true_velocity(self, first: int, n_bins: int, bin_samples: int,
                      out: np.ndarray | None = None) -> np.ndarray:
        """Mean true velocity (m/s) over bins of ``bin_samples`` *raw* samples from raw sample
        ``first``: shape (n_bins, 2) (x, y). Allocates ``out`` when not given."""
        if out is None:
            out = np.zeros((n_bins, 2))
        self._ensure_horizon(first + n_bins * bin_samples)
        K.mean_velocity(first, n_bins, bin_samples, *self.tasks.arrays(), self.fs, out)
        return out

    # -- generation --------------------------------------------------------------------------
    def _gen_raw(self, n: int) -> None:
        """The next ``n`` raw samples into ``_raw[:n]``, ``_counts[:n]``, labels."""
        first = self._next_raw
        self._ensure_horizon(first + n)
        t = self.tasks
        K.synth_raw_block(first, self._raw[:n], self._counts[:n], self._key, self.fs,
                          self.tick, *t.arrays(), self._base, self._depth, self._cos,
                          self._sin, _V_REF, self._amp, self._template, self._noise,
                          self._noise_sd, self._lfp_w, self._lfp_f, self._lfp_ph, self._lfp_mf,
                          self._lfp_mph, self._cm_gain, self._cm_rate, self._cm_max_ticks,
                          self.gain_uv, self._comp[:n], self.spikes)
        K.fill_task_labels(first, t.starts, t.moving, self._raw_labels[:n])
        self._next_raw = first + n

    def _fill(self, out: np.ndarray, labels: np.ndarray) -> int:
        """The next ``len(out)`` rows (raw samples or bins), fewer at the end; 0 = end."""
        rows = out.shape[0]
        if self._total_raw is not None:
            rows = min(rows, (self._total_raw - self._next_raw) // self._row_samples)
        if rows <= 0:
            return 0
        if self.mode == "raw":
            done = 0
            cap = self._raw.shape[0]
            while done < rows:
                n = min(cap, rows - done)
                self._gen_raw(n)
                out[done:done + n] = self._raw[:n]
                labels[done:done + n] = self._raw_labels[:n]
                done += n
            return rows
        chip = self._chip
        for r in range(rows):
            self._gen_raw(self.bin_samples)
            # the chip's arithmetic ends in integers: counts, and power in whole ADC counts
            np.rint(chip.step(self._counts), out=out[r])
            # a bin is labelled by its last sample (what the intention was when it ended)
            labels[r] = self._raw_labels[self.bin_samples - 1]
        return rows

    def warmup(self) -> None:
        """Compile every kernel with real shapes without advancing the stream."""
        save = self._next_raw
        tmp = np.zeros((1, self.info.n_channels))
        lab = np.zeros(1, np.int8)
        chip_state = None
        if self._chip is not None:
            chip_state = [getattr(self._chip, a).copy() for a in self._chip.SHADOW_STATE]
        self._fill(tmp, lab)
        if self._chip is not None and chip_state is not None:
            self._chip.warmup()
            for a, v in zip(self._chip.SHADOW_STATE, chip_state, strict=True):
                getattr(self._chip, a)[...] = v
        self._next_raw = save
        self.true_velocity(0, 1, 1, self._vel)
        self._warm = True

    def read_into(self, out: np.ndarray, labels: np.ndarray | None = None) -> int:
        """Generate the next ``len(out)`` rows straight into ``out`` (offline use)."""
        if self._producer is not None:
            raise RuntimeError("read_into cannot be mixed with a running prefetch; use read()")
        if labels is None:
            labels = np.empty(out.shape[0], np.int8)
        n = self._fill(out, labels)
        self._read_index += n
        return n

    # -- prefetch (the patient on its own core) --------------------------------------------
    def start_prefetch(self, chunk_samples: int, *, release_when_idle: bool = False,
                       depth: int = 8) -> bool:
        """Generate ``chunk_samples`` rows at a time ahead of the reader, in a thread (the
        kernels are ``nogil``); see :class:`~neuroloop.acquisition.prefetch.ChunkProducer`."""
        # a paced live run: the patient gets a core of its own
        on_start = _producer_priority if release_when_idle else None
        return self._start_producer(self._fill, first_index=self._read_index,
                                    chunk_samples=chunk_samples, depth=depth,
                                    release_when_idle=release_when_idle,
                                    on_thread_start=on_start)

    # -- GeneratedSource hooks ---------------------------------------------------------------
    def _read_direct(self, max_samples: int) -> Block | None:
        """The next rows into the preallocated buffer (rows of raw samples or bins)."""
        n = min(max_samples, self._block_rows)
        block = self._block
        first = self._read_index
        got = self._fill(self._buf[:n], self._lab[:n])
        if got == 0:
            return None
        if got == self._block_rows:
            block.data, block.labels = self._buf, self._lab  # no view per read
        else:
            block.data, block.labels = self._buf[:got], self._lab[:got]
        block.first_index = first
        self._read_index = first + got
        return block

    @property
    def exhausted(self) -> bool:
        """True when a finite stream (``duration_s``) has been read to its end."""
        if self._producer is not None:
            return self._producer.ended
        return self._total_raw is not None and \
            self._next_raw + self._row_samples > self._total_raw
