"""A NumPy ``.npy`` recording as a source: ``npy://PATH?rate=HZ&channels=I,J&decimate=N``.

For raw arrays without a header of their own, such as the motor-cortex beta ECoG of
``../shared/data/ecog/beta_ecog_m1.npy`` (1 channel x 1000 Hz, 10 s, microvolts; Cole et al.
2017)::

    npy://../shared/data/ecog/beta_ecog_m1.npy?rate=1000&decimate=4&channels=0,0

``rate`` (required) is the file's sampling rate in Hz; ``channels`` picks columns by index
(repeats allowed, default all; a 1-D array is one column); ``decimate`` (default 1) lowers the
rate by an integer factor after an anti-aliasing filter (``scipy.signal.resample_poly``), so
that a 1 kHz recording can feed a 250 Hz preset. The scenario's rate and channel count are
checked against what the source delivers, so a file at the wrong rate is refused with one
line. The file is loaded once (memory-mapped, at most :data:`MAX_VALUES` values) and served
in blocks; it has no labels (``NO_LABEL``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..acquisition.base import NO_LABEL, BaseSource, Block, SourceInfo
from ..errors import ConfigError

__all__ = ["NpySource", "MAX_VALUES"]

#: Largest recording (samples x channels) an npy source loads.
MAX_VALUES = 1 << 27

_KNOWN = ("rate", "channels", "decimate", "seed", "max_block_samples")


def _fail(key: str, value: Any, fix: str) -> ConfigError:
    return ConfigError(f"npy source option {key}={value!r} {fix}")


class NpySource(BaseSource):
    """A ``.npy`` array (n_samples,) or (n_samples, n_channels), microvolts, as a finite
    source (module docstring).

    Parameters
    ----------
    path : str or path-like
    rate : float
        Sampling rate of the file, Hz.
    channels : sequence of int, optional
        Columns to deliver (repeats allowed).
    decimate : int
        Integer rate reduction after anti-alias filtering (1 = none).

    Raises
    ------
    ConfigError
        Missing or unreadable file, not a numeric 1-D/2-D array, a non-finite value, a bad
        option (one line naming it and the fix).
    """

    scheme: ClassVar[str] = "npy"
    paced_by_device: ClassVar[bool] = False

    def __init__(self, path: str | os.PathLike[str], *, rate: float,
                 channels: list[int] | None = None, decimate: int = 1,
                 max_block_samples: int = 4096) -> None:
        super().__init__()
        p = Path(path)
        if not (isinstance(rate, int | float) and math.isfinite(rate) and 0 < rate <= 1e6):
            raise _fail("rate", rate, "must be the file's sampling rate in Hz, e.g. rate=1000")
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise ConfigError(f"npy source {p}: no such file; check the path") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"npy source {p}: not a readable .npy array ({exc}); give a "
                              "file written by numpy.save") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.dtype.kind not in "fiu" or arr.shape[0] < 1:
            raise ConfigError(f"npy source {p}: shape {arr.shape} {arr.dtype} is not a "
                              "numeric (n_samples,) or (n_samples, n_channels) array")
        if arr.size > MAX_VALUES:
            raise ConfigError(f"npy source {p}: {arr.size} values is more than {MAX_VALUES}; "
                              "cut the recording")
        cols = list(range(arr.shape[1])) if channels is None else channels
        for c in cols:
            if not 0 <= c < arr.shape[1]:
                raise _fail("channels", ",".join(map(str, cols)),
                            f"names column {c}, but {p} has {arr.shape[1]} column(s) "
                            f"(0..{arr.shape[1] - 1})")
        data = np.ascontiguousarray(arr[:, cols], dtype=np.float64)
        if not np.isfinite(data).all():
            raise ConfigError(f"npy source {p}: the recording holds NaN or infinite values; "
                              "clean it first")
        if decimate > 1:
            from scipy.signal import resample_poly

            data = np.ascontiguousarray(resample_poly(data, 1, decimate, axis=0))
        self.path = p
        self._data = data
        self._labels = np.full(data.shape[0], NO_LABEL, dtype=np.int8)
        fs = float(rate) / decimate
        self.info = SourceInfo(channel_names=tuple(f"ch{c}" for c in cols),
                               channel_types=("ecog",) * len(cols), sampling_rate_hz=fs)
        self._pos = 0
        self._block = Block(data=data[:0], first_index=0, labels=self._labels[:0])
        self.max_block_samples = int(max_block_samples)

    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]) -> NpySource:
        """``npy://PATH?rate=...&channels=...&decimate=...`` (a relative path is relative to
        the working directory)."""
        unknown = sorted(set(options) - set(_KNOWN))
        if unknown:
            raise ConfigError(f"unknown npy source option {unknown[0]!r}; use rate, channels, "
                              "decimate")
        if "rate" not in options:
            raise ConfigError(f"npy source {location}: give its sampling rate, e.g. "
                              f"npy://{location}?rate=1000")
        try:
            rate = float(options["rate"])
        except (TypeError, ValueError):
            raise _fail("rate", options["rate"], "is not a number; e.g. rate=1000") from None
        channels = None
        if options.get("channels") not in (None, ""):
            raw = options["channels"]
            try:
                channels = ([int(x) for x in str(raw).split(",")] if not isinstance(raw, list)
                            else [int(x) for x in raw])
            except ValueError:
                raise _fail("channels", raw, "must list column indices, e.g. channels=0,1"
                            ) from None
        try:
            decimate = int(str(options.get("decimate", 1)))
        except ValueError:
            raise _fail("decimate", options.get("decimate"), "must be an integer >= 1, e.g. "
                        "decimate=4") from None
        if not 1 <= decimate <= 1000:
            raise _fail("decimate", decimate, "must be an integer in 1..1000, e.g. decimate=4")
        return cls(location, rate=rate, channels=channels, decimate=decimate)

    @property
    def exhausted(self) -> bool:
        return self._pos >= self._data.shape[0]

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        n = min(max_samples, self.max_block_samples, self._data.shape[0] - self._pos)
        if n <= 0:
            return None
        b = self._block
        b.data = self._data[self._pos:self._pos + n]
        b.labels = self._labels[self._pos:self._pos + n]
        b.first_index = self._pos
        self._pos += n
        return b
