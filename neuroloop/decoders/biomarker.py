"""``beta-biomarker``: a continuous biomarker and where it stands in the patient's calibration
distribution, instead of a classifier.

The feature vector's first entry is the biomarker (the smoothed band power in dB of the
``adbs`` preset's :class:`~neuroloop.dsp.biomarker.BiomarkerPipeline`). Fit (calibration,
unstimulated, no labels needed) keeps its percentiles 0..100 after ``settle_hops`` hops.
Online, per hop:

``beta_power_db`` [dB]
    The biomarker as it comes.
``beta_percentile`` [%]
    Its rank in the calibration distribution, 0..100 (a threshold "above the 75th percentile
    of calibration beta", as Little et al. 2013 set theirs, is ``75`` here).

The discrete state is ``beta_burst`` (1) at or above ``state_percentile`` and ``rest`` (0)
below, with probabilities ``[1 - r, r]`` (``r`` = percentile / 100); a non-finite hop is
invalid (the supervisor's fallback). ``[decoder]`` keys: ``state_percentile`` (default 75),
``settle_hops`` (calibration hops skipped while the filters settle, default 20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from . import _biomarker_kernels as BK
from .base import BaseDecoder, DecoderOutput, register_decoder

__all__ = ["BiomarkerDecoder"]

_PCT = np.linspace(0.0, 100.0, 101)


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"decoder.{name} = {value!r} is outside [{lo:g}, {hi:g}]; use a "
                          f"number in that range")
    return float(value)


@register_decoder
class BiomarkerDecoder(BaseDecoder):
    """A biomarker and its calibration percentile (module docstring)."""

    name = "beta-biomarker"
    outputs = (("beta_power_db", "dB"), ("beta_percentile", "%"))
    supervised: ClassVar[bool] = False

    def __init__(self, n_states: int = 2, state_percentile: float = 75.0,
                 settle_hops: int = 20) -> None:
        if n_states != 2:
            raise ConfigError(f"decoder kind beta-biomarker has 2 states (rest, beta_burst), "
                              f"the scenario has {n_states}; list two intentions")
        self.state_percentile = _number("state_percentile", state_percentile, 0.0, 100.0)
        self.settle_hops = int(_number("settle_hops", settle_hops, 0, 100000))
        self.quantiles_ = np.zeros(0)
        self._n_feat = 0
        self._out = DecoderOutput(state=0, raw_state=0, probabilities=np.array([1.0, 0.0]),
                                  confidence=0.0, valid=True, values=np.full(2, np.nan))
        self._declare_schema(None, 2)

    def get_params(self) -> dict[str, Any]:
        return {"n_states": 2, "state_percentile": self.state_percentile,
                "settle_hops": self.settle_hops}

    @property
    def n_features(self) -> int:
        return self._n_feat

    @property
    def n_states(self) -> int:
        return 2

    def _schema_changed(self) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            out.schema = self.output_schema_

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            state_names: Sequence[str] | None = None) -> BiomarkerDecoder:
        """Keep the percentiles of the calibration biomarker ``X[:, 0]`` (labels unused)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] < 1 or X.shape[0] < self.settle_hops + 10:
            raise ConfigError(f"beta-biomarker needs at least {self.settle_hops + 10} "
                              f"calibration hops, got {X.shape[0] if X.ndim == 2 else 0}; "
                              "lengthen decoder.calibration_s")
        self._declare_schema(state_names, 2)
        marker = X[self.settle_hops:, 0]
        marker = marker[np.isfinite(marker)]
        if marker.size < 10:
            raise ConfigError("the calibration biomarker is not finite; check the source")
        self.quantiles_ = np.percentile(marker, _PCT)
        self._n_feat = int(X.shape[1])
        self.reset()
        return self

    def reset(self) -> None:
        out = self._out
        out.state = out.raw_state = 0
        out.probabilities[:] = (1.0, 0.0)
        out.confidence = 0.0
        out.valid = True
        out.values[:] = np.nan

    def step(self, features: np.ndarray) -> DecoderOutput:
        out = self._out
        v = float(features[0])
        pct = BK.rank_percent(v, self.quantiles_)
        out.values[0] = v
        out.values[1] = pct
        if not math.isfinite(v):
            out.state = out.raw_state = 0
            out.valid = False
            out.confidence = 0.0
            return out
        r = pct / 100.0
        state = 1 if pct >= self.state_percentile else 0
        out.probabilities[0] = 1.0 - r
        out.probabilities[1] = r
        out.state = out.raw_state = state
        out.confidence = 1.0 - r if state == 0 else r
        out.valid = True
        return out

    def warmup(self) -> None:
        BK.rank_percent(0.0, self.quantiles_)
        self.step(np.zeros(max(self._n_feat, 1)))
        self.reset()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per hop ``[1 - r, r]`` with ``r`` the biomarker's calibration rank / 100."""
        r = np.interp(np.asarray(X, dtype=np.float64)[:, 0], self.quantiles_, _PCT) / 100.0
        return np.column_stack([1.0 - r, r])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"quantiles": self.quantiles_, "n_features": np.array([self._n_feat])}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.quantiles_ = np.asarray(arrays["quantiles"], dtype=np.float64)
        self._n_feat = int(arrays["n_features"][0])
        self._declare_schema(None, 2)
        self.reset()
