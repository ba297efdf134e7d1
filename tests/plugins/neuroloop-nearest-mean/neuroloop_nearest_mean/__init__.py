"""``nearest-mean``: a neuroloop decoder plugin (the worked example of docs/decoders.md).

Each state is represented by the mean of its standardised calibration features; a hop's
state probabilities are ``softmax(-d_k^2 / (2 * temperature))`` with ``d_k`` the distance to
state ``k``'s mean. No gate, no smoothing: the smallest decoder that honours the whole
contract (fit -> step -> save -> load, no allocation in step, NaN/inf -> invalid,
deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuroloop.decoders import BaseDecoder, DecoderOutput, OutputSchema
from neuroloop.errors import ConfigError, DecoderFileError

__all__ = ["NearestMeanDecoder"]


class NearestMeanDecoder(BaseDecoder):
    """Nearest class mean with softmax probabilities.

    Parameters
    ----------
    temperature : float, default 1.0
        Softness of the probabilities (> 0).
    n_states : int, optional
        Accepted (a session passes its state count); the model takes it from the labels.
    """

    name = "nearest-mean"
    outputs = (("confidence", "1"),)

    def __init__(self, temperature: float = 1.0, n_states: int | None = None) -> None:
        t = float(temperature)
        if not (np.isfinite(t) and t > 0):
            raise ConfigError(f"decoder parameter temperature={temperature!r} must be a "
                              "positive number, e.g. 1.0")
        self.temperature = t
        self._fitted = False

    def get_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    @property
    def n_features(self) -> int:
        return int(self.means_.shape[1])

    @property
    def n_states(self) -> int:
        return int(self.means_.shape[0])

    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> NearestMeanDecoder:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(np.int64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or not np.all(np.isfinite(X)):
            raise ConfigError("nearest-mean needs finite features (n_hops, n_features) and "
                              "one label per hop")
        k = int(y.max()) + 1
        if any(not np.any(y == c) for c in range(k)):
            raise ConfigError("every state needs calibration hops")
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        Z = (X - mean) / scale
        self._set(np.stack([Z[y == c].mean(axis=0) for c in range(k)]), mean, scale,
                  state_names)
        return self

    def _set(self, means: np.ndarray, mean: np.ndarray, scale: np.ndarray,
             state_names: Sequence[str] | None) -> None:
        self.means_, self.mean_, self.scale_ = means, mean, scale
        k, p = means.shape
        # everything step() touches is allocated here, once
        self._z = np.zeros(p)
        self._d2 = np.zeros(k)
        self._m2 = np.sum(means * means, axis=1)
        self._out = DecoderOutput(probabilities=np.zeros(k), values=np.zeros(1))
        self._fitted = True
        self._declare_schema(state_names, k)
        self.reset()

    def _schema_changed(self) -> None:
        self._out.schema = self.output_schema_

    def reset(self) -> None:
        o = self._out
        o.state = o.raw_state = 0
        o.probabilities[:] = 1.0 / o.probabilities.shape[0]
        o.confidence = 0.0
        o.valid = True
        o.values[:] = np.nan

    def step(self, features: np.ndarray) -> DecoderOutput:
        """One hop. Only ``out=`` ufuncs and loops over the few states: NumPy reductions
        (``np.max``, ``np.sum``, ``.all()``) allocate scratch on every call, which the
        contract's no-allocation test sees (compile with Numba for anything bigger)."""
        o = self._out
        np.subtract(features, self.mean_, out=self._z)
        np.divide(self._z, self.scale_, out=self._z)
        # squared distances ||m_k||^2 - 2 m_k.z + ||z||^2; a NaN/inf feature makes them all
        # non-finite, which is how invalid input is detected
        np.dot(self.means_, self._z, out=self._d2)
        np.multiply(self._d2, -2.0, out=self._d2)
        np.add(self._d2, self._m2, out=self._d2)
        np.add(self._d2, np.dot(self._z, self._z), out=self._d2)
        p = o.probabilities
        np.multiply(self._d2, -0.5 / self.temperature, out=p)
        top, state = -math.inf, 0
        for k in range(p.shape[0]):
            v = p.item(k)
            if not math.isfinite(v):
                o.state = o.raw_state = 0
                o.confidence = 0.0
                o.valid = False
                o.values[0] = np.nan
                return o
            if v > top:
                top, state = v, k
        np.subtract(p, top, out=p)
        np.exp(p, out=p)
        total = 0.0
        for k in range(p.shape[0]):
            total += p.item(k)
        np.divide(p, total, out=p)
        o.state = o.raw_state = state
        o.confidence = p.item(state)
        o.valid = True
        o.values[0] = o.confidence
        return o

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        d2 = ((Z[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        a = -0.5 * d2 / self.temperature
        a -= a.max(axis=1, keepdims=True)
        e = np.exp(a)
        return e / e.sum(axis=1, keepdims=True)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"means": self.means_, "mean": self.mean_, "scale": self.scale_}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            means, mean, scale = arrays["means"], arrays["mean"], arrays["scale"]
        except KeyError as exc:
            raise DecoderFileError(f"nearest-mean file lacks {exc.args[0]!r}") from None
        if means.ndim != 2 or mean.shape != (means.shape[1],) or scale.shape != mean.shape:
            raise DecoderFileError("nearest-mean file has inconsistent shapes; retrain it")
        self._set(means, mean, scale, OutputSchema.unnamed_states(means.shape[0]))
