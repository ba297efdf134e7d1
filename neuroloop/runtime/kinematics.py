"""Continuous targets: calibrating a kinematics decoder and scoring it in closed loop.

A decoder that declares ``continuous_targets = True`` (the ``kalman`` family) is fitted on
features and the *true kinematics* of each hop, not on intention labels. A source that knows
them (the synthetic intracortical population, :mod:`neuroloop.acquisition.intracortical`)
offers ``true_velocity(first_raw_sample, n_bins, bin_samples)``; calibration streams such a
source through the scenario's feature pipeline hop by hop (a 1024 x 30 kHz calibration block
never sits in memory), and :class:`VelocityScore` keeps the decoded velocity of every cycle of
a run to compare it with the truth afterwards (correlation per axis, in the run summary).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..acquisition import open_source
from ..config import Scenario
from ..errors import ConfigError
from ..records import LoopListener

__all__ = ["raw_samples_per_row", "calibration_kinematics", "VelocityScore"]

Progress = Callable[[str], None]


def raw_samples_per_row(scenario: Scenario) -> int:
    """Raw (ADC) samples behind one row of the stream: a bin when the implant sends bins."""
    p = scenario.dsp.params
    return int(p.get("bin_samples", 1)) if p.get("acquisition") == "binned" else 1


def _warmup_hops(scenario: Scenario) -> int:
    """Hops before the features mean anything: the thresholds' calibration plus one bin."""
    p = scenario.dsp.params
    cal_s = float(p.get("threshold_calibration_s", 1.0)) if p else 0.0
    return int(math.ceil(cal_s / scenario.hop_s)) + 1


def calibration_kinematics(scenario: Scenario, pipeline: Any, source_options: dict[str, Any],
                           *, url: str | None = None, duration_s: float | None = None,
                           progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and true velocity of every hop of a calibration segment.

    Parameters
    ----------
    scenario : Scenario
    pipeline : feature pipeline of the scenario (reset before and after)
    source_options : dict
        Options of the calibration source (its seed is the decoder's ``calibration_seed``).
    url : str, optional
        Default: the scenario's source.
    duration_s : float, optional
        Default: ``decoder.calibration_s``.

    Returns
    -------
    X : ndarray, shape (n_hops, n_features)
        NaN rows for the hops before the features are calibrated (the decoder skips them).
    Y : ndarray, shape (n_hops, 2)
        Mean true velocity (m/s) over each hop.

    Raises
    ------
    ConfigError
        When the source does not know the kinematics.
    """
    url = url or scenario.source.url
    duration_s = duration_s or scenario.decoder.calibration_s
    hop = scenario.dsp.hop_samples
    n_hops = int(duration_s / scenario.hop_s)
    per_row = raw_samples_per_row(scenario)
    skip = _warmup_hops(scenario)
    if n_hops < skip + 10:
        raise ConfigError(f"decoder.calibration_s = {duration_s:g} s gives {n_hops} hops; the "
                          f"{scenario.decoder.kind} decoder needs at least {skip + 10} "
                          f"({(skip + 10) * scenario.hop_s:g} s), e.g. 30")
    with open_source(url, **source_options) as src:
        truth = getattr(src, "true_velocity", None)
        if truth is None:
            raise ConfigError(f"the {scenario.decoder.kind} decoder is fitted on true "
                              f"kinematics, which {url} does not know; calibrate from a "
                              "source that does (intracortical://raw or intracortical://binned)")
        if progress:
            progress(f"calibrating: {duration_s:g} s ({n_hops} hops) from {url}")
        pipeline.reset()
        X = np.full((n_hops, pipeline.n_features), np.nan)
        Y = np.zeros((n_hops, 2))
        buf = np.zeros((hop, src.info.n_channels))
        got_hops = 0
        for h in range(n_hops):
            got = 0
            while got < hop:
                block = src.read(hop - got, timeout=5.0)
                if block is None:
                    break
                buf[got:got + block.n_samples] = block.data
                got += block.n_samples
            if got < hop:
                break
            feats = pipeline.step(buf)
            if h >= skip:
                X[h] = feats
            truth(h * hop * per_row, 1, hop * per_row, Y[h:h + 1])
            got_hops = h + 1
        pipeline.reset()
    return X[:got_hops], Y[:got_hops]


class VelocityScore(LoopListener):
    """Keeps each cycle's first sample and decoded velocity (two outputs) in preallocated
    arrays; :meth:`result` compares them with the source's true velocity.

    Parameters
    ----------
    capacity : int
        Cycles kept (the run's length; later cycles are not scored).
    output_index : (int, int)
        Positions of the x and y velocity in the decoder's outputs.
    hop_raw_samples : int
        Raw samples per cycle.
    per_row : int
        Raw samples per stream row (a bin in binned mode, else 1).
    """

    def __init__(self, capacity: int, output_index: tuple[int, int], hop_raw_samples: int,
                 per_row: int) -> None:
        self.first = np.zeros(capacity, np.int64)
        self.decoded = np.full((capacity, 2), np.nan)
        self.n = 0
        self._ix, self._iy = output_index
        self.hop_raw = int(hop_raw_samples)
        self.per_row = int(per_row)

    def on_cycle(self, record: np.ndarray) -> None:
        n = self.n
        if n >= self.first.shape[0]:
            return
        r = record[0]
        out = r["outputs"]
        self.first[n] = r["first_sample"]
        self.decoded[n, 0] = out[self._ix]
        self.decoded[n, 1] = out[self._iy]
        self.n = n + 1

    def result(self, source: Any, skip_s: float = 2.0, hop_s: float = 0.02) -> dict[str, Any]:
        """Correlation and RMS error per axis of decoded vs true velocity (after ``skip_s``
        of threshold calibration and filter settling); empty when the source has no truth."""
        truth = getattr(source, "true_velocity", None)
        if truth is None or self.n == 0:
            return {}
        n = self.n
        true = np.zeros((n, 2))
        for k in range(n):
            truth(int(self.first[k]) * self.per_row, 1, self.hop_raw, true[k:k + 1])
        start = min(n, int(math.ceil(skip_s / hop_s)))
        dec, tru = self.decoded[start:n], true[start:]
        ok = np.all(np.isfinite(dec), axis=1)
        dec, tru = dec[ok], tru[ok]
        out: dict[str, Any] = {"cycles_scored": int(dec.shape[0])}
        if dec.shape[0] < 3:
            return out
        for i, axis in enumerate("xy"):
            sd = float(np.std(dec[:, i])) * float(np.std(tru[:, i]))
            out[f"corr_{axis}"] = (round(float(np.corrcoef(dec[:, i], tru[:, i])[0, 1]), 4)
                                   if sd > 0 else None)
            out[f"rmse_{axis}_m_per_s"] = round(float(np.sqrt(np.mean((dec[:, i]
                                                                      - tru[:, i]) ** 2))), 5)
        return out
