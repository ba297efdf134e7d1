"""RNS-style seizure detector: line length, area and bandpass detectors, per channel, AND/OR.

Input: the per-hop measures of :class:`~neuroloop.dsp.detectors.DetectorPipeline` (line
length, area and band RMS of each channel). Output: a :class:`DecoderOutput` whose state is
1 ("seizure", a detection) or 0, and four continuous outputs:

==================  ====  =============================================================
output              unit  meaning
==================  ====  =============================================================
``detector_score``  1     combined score; ``>= 1`` exactly when the detector detects
``line_length_pct`` %     largest line-length excess over its trend, detector channels
``area_pct``        %     largest area excess over its trend, detector channels
``band_rms_uv``     uV    largest band RMS on the bandpass detector's channels
==================  ====  =============================================================

The three detectors follow the NeuroPace RNS System (Sun et al. 2008, Epilepsia 49 Suppl 1:
"line length", "area" and "bandpass" tools; RNS System Physician Manual):

* **line length** and **area**: the mean of a short window (``window_s``) of the measure
  against the channel's long-term trend (``trend_s``, an exponential average); detection when
  the window exceeds the trend by ``threshold_pct`` percent.
* **bandpass**: the RMS in the pipeline's band (``[dsp] bands_hz``) at least
  ``min_amplitude_uv`` for at least ``min_duration_s``.

Each detector looks at ``channels`` (indices into the source's channels) combined by
``channel_logic`` ("or": any channel, "and": all), and the enabled detectors combine by
``combine``. The first ``trend_init_s`` seconds after a reset learn the trends; nothing is
detected then. The compiled step is :func:`._responsive_kernels.detector_step`.

Parameters come from the scenario's ``[decoder]`` table (``kind = "responsive"``), with
``hop_s`` and ``n_channels`` filled in from the scenario (:attr:`SCENARIO_PARAMS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from .._checks import Range, check_number, show_value
from ..errors import ConfigError, DecoderFileError
from . import _responsive_kernels as K
from .base import BaseDecoder, DecoderOutput, register_decoder

__all__ = ["ResponsiveDetector", "DETECTORS"]

#: Detector names, in kernel order (``_responsive_kernels.D_*``).
DETECTORS: tuple[str, ...] = ("line_length", "area", "bandpass")

_F64 = np.dtype(np.float64)
_TREND_KEYS = ("enabled", "channels", "channel_logic", "window_s", "trend_s", "threshold_pct")
_BAND_KEYS = ("enabled", "channels", "channel_logic", "min_amplitude_uv", "min_duration_s")
_WINDOW_S = Range(0.0, 60.0, lo_open=True, unit="s")
_TREND_S = Range(0.0, 86400.0, lo_open=True, unit="s")
_THRESHOLD_PCT = Range(0.0, 1e5, lo_open=True, unit="%")
_AMPLITUDE_UV = Range(0.0, 1e6, lo_open=True, unit="uV")
_DURATION_S = Range(0.0, 600.0, unit="s")
_HOP_S = Range(0.0, 10.0, lo_open=True, unit="s")
_MAX_WINDOW_HOPS = 4096


def _name(key: str) -> str:
    return f"decoder.{key}"


def _hops(key: str, seconds: float, hop_s: float, lo: int = 1) -> int:
    """``seconds`` as a whole number of hops (rounded, at least ``lo``)."""
    n = int(round(seconds / hop_s))
    if n < lo:
        n = lo
    if n > _MAX_WINDOW_HOPS * 1000:
        raise ConfigError(f"{_name(key)} = {seconds:g} s is {n} hops of {hop_s:g} s, too many; "
                          "use a shorter time")
    return n


class _Detector:
    """Validated settings of one detector (from its ``[decoder.<name>]`` table)."""

    def __init__(self, name: str, table: Any, n_channels: int, hop_s: float,
                 defaults: Mapping[str, Any]) -> None:
        keys = _BAND_KEYS if name == "bandpass" else _TREND_KEYS
        if table is None:
            table = {"enabled": False}
        if not isinstance(table, Mapping):
            raise ConfigError(f"{_name(name)} = {show_value(table)} must be a table, e.g. "
                              f"{name} = {{ channels = [0, 1], ... }}")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ConfigError(f"unknown key {_name(name)}.{unknown[0]}; known keys are "
                              f"{', '.join(keys)}")
        t = {**defaults, **table}
        self.name = name
        enabled = t.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{_name(name)}.enabled = {show_value(enabled)} must be true or "
                              "false")
        self.enabled = enabled
        chans = t.get("channels", list(range(n_channels)))
        if (not isinstance(chans, list) or not chans
                or not all(isinstance(c, int) and not isinstance(c, bool) for c in chans)
                or len(set(chans)) != len(chans)):
            raise ConfigError(f"{_name(name)}.channels = {show_value(chans)} must list distinct "
                              f"channel indices, e.g. [0, 1] (the source has {n_channels}: "
                              f"0..{n_channels - 1})")
        bad = [c for c in chans if not 0 <= c < n_channels]
        if bad:
            raise ConfigError(f"{_name(name)}.channels = {show_value(chans)}: channel {bad[0]} "
                              f"does not exist; the source has {n_channels} channels, use "
                              f"indices 0..{n_channels - 1}")
        self.channels = tuple(int(c) for c in chans)
        logic = t.get("channel_logic", "or")
        if logic not in ("or", "and"):
            raise ConfigError(f"{_name(name)}.channel_logic = {show_value(logic)} must be "
                              "\"or\" (any channel) or \"and\" (all channels)")
        self.logic_and = logic == "and"
        self.window_hops = 1
        self.threshold = 1.0
        self.alpha = 1.0
        self.min_amplitude_uv = 1.0
        self.min_hops = 1
        self.params: dict[str, Any] = {"enabled": enabled, "channels": list(self.channels),
                                       "channel_logic": logic}
        if name == "bandpass":
            amp = check_number(f"{_name(name)}.min_amplitude_uv",
                               t.get("min_amplitude_uv", 50.0), _AMPLITUDE_UV, hint="e.g. 40")
            dur = check_number(f"{_name(name)}.min_duration_s", t.get("min_duration_s", 1.0),
                               _DURATION_S, hint="e.g. 1.0")
            self.min_amplitude_uv = float(amp)
            self.min_hops = _hops(f"{name}.min_duration_s", float(dur), hop_s)
            self.params.update(min_amplitude_uv=float(amp), min_duration_s=float(dur))
        else:
            win = check_number(f"{_name(name)}.window_s", t.get("window_s", 1.0), _WINDOW_S,
                               hint="e.g. 1.0")
            trend = check_number(f"{_name(name)}.trend_s", t.get("trend_s", 60.0), _TREND_S,
                                 hint="e.g. 60")
            thr = check_number(f"{_name(name)}.threshold_pct", t.get("threshold_pct", 50.0),
                               _THRESHOLD_PCT, hint="e.g. 50 (window 50 % above its trend)")
            if float(trend) < float(win):
                raise ConfigError(f"{_name(name)}.trend_s = {float(trend):g} is shorter than "
                                  f"window_s = {float(win):g}; the long-term trend must be "
                                  "longer than the short window")
            self.window_hops = _hops(f"{name}.window_s", float(win), hop_s)
            if self.window_hops > _MAX_WINDOW_HOPS:
                raise ConfigError(f"{_name(name)}.window_s = {float(win):g} s is "
                                  f"{self.window_hops} hops; use at most "
                                  f"{_MAX_WINDOW_HOPS * hop_s:g} s")
            self.threshold = float(thr) / 100.0
            self.alpha = min(1.0, hop_s / float(trend))
            self.params.update(window_s=float(win), trend_s=float(trend),
                               threshold_pct=float(thr))


@register_decoder
class ResponsiveDetector(BaseDecoder):
    """RNS-style detector (module docstring).

    Parameters
    ----------
    n_states : int, default 2
        Must be 2 (``rest``, and the detection state).
    hop_s : float
        Control-cycle length, s (set from the scenario).
    n_channels : int
        Channels of the source (set from the scenario).
    line_length, area, bandpass : mapping, optional
        Each detector's table (keys in the module docstring); absent = disabled.
    combine : {"or", "and"}, default "or"
        How enabled detectors combine.
    trend_init_s : float, default 10
        Seconds of trend learning after a reset, during which nothing is detected.
    """

    name = "responsive"
    outputs = (("detector_score", "1"), ("line_length_pct", "%"), ("area_pct", "%"),
               ("band_rms_uv", "uV"))
    #: The detector's thresholds are the clinician's, not learned from labels (the labelled
    #: calibration segment is only measured; its own contract: tests/decoders/
    #: test_responsive_detector.py).
    supervised = False
    #: Parameters a session fills in from the scenario (see ``runtime.session``).
    SCENARIO_PARAMS: ClassVar[tuple[str, ...]] = ("hop_s", "n_channels")

    def __init__(self, n_states: int = 2, hop_s: float | None = None,
                 n_channels: int | None = None, line_length: Mapping[str, Any] | None = None,
                 area: Mapping[str, Any] | None = None,
                 bandpass: Mapping[str, Any] | None = None, combine: str = "or",
                 trend_init_s: float = 10.0) -> None:
        if n_states != 2:
            raise ConfigError(f"decoder.n_states = {show_value(n_states)}: the responsive "
                              "detector has two states (rest and a detection); list two "
                              "scenario intentions, e.g. [\"rest\", \"seizure\"]")
        if hop_s is None or n_channels is None:
            raise ConfigError("the responsive detector needs hop_s and n_channels (a session "
                              "sets them from the scenario)")
        self.hop_s = float(check_number(_name("hop_s"), hop_s, _HOP_S))
        self.n_channels = int(check_number(_name("n_channels"), n_channels,
                                           Range(1, 4096, integer=True)))
        if combine not in ("or", "and"):
            raise ConfigError(f"decoder.combine = {show_value(combine)} must be \"or\" (any "
                              "detector) or \"and\" (every enabled detector)")
        self.combine = combine
        self.trend_init_s = float(check_number(_name("trend_init_s"), trend_init_s,
                                               Range(0.0, 86400.0, lo_open=True, unit="s"),
                                               hint="e.g. 10"))
        tables = {"line_length": line_length, "area": area, "bandpass": bandpass}
        self.detectors = tuple(_Detector(n, tables[n], self.n_channels, self.hop_s, {})
                               for n in DETECTORS)
        if not any(d.enabled for d in self.detectors):
            raise ConfigError("decoder: no detector is enabled; set at least one of "
                              "decoder.line_length, decoder.area, decoder.bandpass")
        self._pack()
        self._fitted = False
        self._output = DecoderOutput(probabilities=np.zeros(2), values=np.zeros(K.N_VALUES))
        self._x_buf = np.zeros(self.n_features)
        self._shape = (self.n_features,)
        self.reset()

    # -- parameters ---------------------------------------------------------------------------
    def _pack(self) -> None:
        n = self.n_channels
        ds = self.detectors
        self._enabled = np.array([d.enabled for d in ds], dtype=np.bool_)
        self._mask = np.zeros((K.N_DETECTORS, n), dtype=np.bool_)
        for i, d in enumerate(ds):
            self._mask[i, list(d.channels)] = True
        self._logic_and = np.array([d.logic_and for d in ds], dtype=np.bool_)
        self._window = np.array([d.window_hops for d in ds], dtype=np.int64)
        self._threshold = np.array([d.threshold for d in ds])
        self._alpha = np.array([d.alpha for d in ds])
        band = ds[K.D_BAND]
        self._min_amp = float(band.min_amplitude_uv)
        self._min_hops = int(band.min_hops)
        self._init_hops = max(1, int(round(self.trend_init_s / self.hop_s)))
        w_max = int(max(self._window[:2].max(), 1))
        self._ring = np.zeros((2, n, w_max))
        self._trend = np.zeros((2, n))
        self._band_run = np.zeros(n, dtype=np.int64)
        self._istate = np.zeros(K.N_ISTATE, dtype=np.int64)

    def get_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_states": 2, "hop_s": self.hop_s, "n_channels": self.n_channels,
                               "combine": self.combine, "trend_init_s": self.trend_init_s}
        for d in self.detectors:
            out[d.name] = d.params
        return out

    @property
    def n_features(self) -> int:
        return 3 * self.n_channels

    @property
    def n_states(self) -> int:
        return 2

    @property
    def init_hops(self) -> int:
        """Hops of trend learning after a reset."""
        return self._init_hops

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> ResponsiveDetector:
        """Declare the schema and measure the detector on the calibration segment.

        The detector's thresholds are the clinician's (``[decoder]``), not learned; fitting
        records how the configured detector does on the labelled segment in
        :attr:`calibration_` (``sensitivity_hops``: fraction of seizure hops detected,
        ``false_positive_hops``: fraction of non-seizure hops detected, after the trend
        learning period).
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n_hops, {self.n_features}), got {X.shape}")
        if X.shape[1] != self.n_features:
            raise ConfigError(f"decoder.kind = \"responsive\" needs {self.n_features} measures "
                              f"per hop (line length, area, band RMS of {self.n_channels} "
                              f"channels) but the features have {X.shape[1]}; set [dsp] "
                              "features = \"detector\"")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        self._declare_schema(state_names, 2)
        self._fitted = True
        states = self.decode(X)
        after = np.arange(X.shape[0]) >= self._init_hops
        sz, inter = after & (y == 1), after & (y == 0)
        self.calibration_ = {
            "sensitivity_hops": float(states[sz].mean()) if sz.any() else float("nan"),
            "false_positive_hops": float(states[inter].mean()) if inter.any() else float("nan"),
        }
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("the responsive detector is not fitted; call fit() or load()")

    def _schema_changed(self) -> None:
        self._output.schema = self.output_schema_

    # -- online -------------------------------------------------------------------------------
    def reset(self) -> None:
        self._ring[...] = 0.0
        self._trend[...] = 0.0
        self._band_run[...] = 0
        self._istate[...] = 0
        out = self._output
        out.state = out.raw_state = 0
        out.probabilities[:] = (1.0, 0.0)
        out.confidence = 1.0
        out.valid = True
        out.values[:] = 0.0

    def step(self, features: np.ndarray) -> DecoderOutput:
        """One hop of measures (shape (3 * n_channels,)) -> the detection output."""
        if type(features) is not np.ndarray or features.dtype != _F64 \
                or not features.flags.c_contiguous or features.shape != self._shape:
            features = self._coerce(features)
        out = self._output
        r = K.detector_step(features, self._enabled, self._mask, self._logic_and, self.combine
                            == "and", self._window, self._threshold, self._alpha, self._min_amp,
                            self._min_hops, self._init_hops, self._ring, self._trend,
                            self._band_run, self._istate, out.values)
        if r < 0:
            out.valid = False
            out.state = out.raw_state = 0
            out.confidence = 0.0
            out.probabilities[0] = 1.0
            out.probabilities[1] = 0.0
        else:
            out.valid = True
            out.state = out.raw_state = r
            out.confidence = 1.0
            out.probabilities[0] = 1.0 - r
            out.probabilities[1] = float(r)
        return out

    def _coerce(self, features: npt.ArrayLike) -> np.ndarray:
        return copy_into(features, self._x_buf, "features")

    def warmup(self) -> None:
        """Compile the step with the real shapes (valid and invalid hops), then reset."""
        x = np.ones(self.n_features)
        for _ in range(self._init_hops + 2):
            self.step(x)
        x[0] = math.nan
        self.step(x)
        self.reset()

    def decode(self, X: np.ndarray) -> np.ndarray:
        """:meth:`step` over every row of ``X`` from a reset state; detections (0/1) per hop."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        self.reset()
        states = np.zeros(X.shape[0], dtype=np.int64)
        for i in range(X.shape[0]):
            states[i] = self.step(X[i]).state
        self.reset()
        return states

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """One-hot detection per hop (the online path from a reset state), (n_hops, 2)."""
        s = self.decode(X)
        return np.stack([1.0 - s, s.astype(np.float64)], axis=1)

    # -- persistence ----------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"n_channels": np.array([self.n_channels])}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = arrays.get("n_channels")
        if n is None or n.shape != (1,) or int(n[0]) != self.n_channels:
            raise DecoderFileError("responsive detector file is inconsistent (n_channels); "
                                   "retrain it with `neuroloop train`")
        self._declare_schema(None, 2)
        self._fitted = True

    def __repr__(self) -> str:
        return f"ResponsiveDetector({self.get_params()!r})"
