"""Record only some raw channels: a listener that hands a recorder a channel subset.

At 1024 electrodes x 30 kHz the raw stream is 245 MB/s as float64 (880 GB an hour; 220 GB as
int16). The intracortical scenario records every cycle's features, decoder outputs and
commands (the cycle records, a few kB per 20 ms bin) and, of the raw samples, only the
electrodes listed in ``[dsp] record_raw_channels`` (``neuroloop run --record``). Such a
recording is for inspection; a replay needs every channel of the stream, so record without
the key (or in binned mode, where the stream is the bins) to replay it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..records import LoopListener

__all__ = ["RawChannelSubset", "check_raw_subset"]


def check_raw_subset(channels: Any, n_channels: int,
                     key: str = "dsp.record_raw_channels") -> np.ndarray:
    """Validate a list of electrode indices (0-based) against ``n_channels``.

    Raises
    ------
    ConfigError
        One line naming the key, the missing electrode and the valid range.
    """
    if not isinstance(channels, list | tuple) or not channels:
        raise ConfigError(f"{key} = {channels!r} must be a non-empty list of electrode "
                          f"indices, e.g. [0, 1, 2, 3]")
    out = []
    for c in channels:
        if isinstance(c, bool) or not isinstance(c, int):
            raise ConfigError(f"{key} has {c!r}, which is not an electrode index; use "
                              f"integers 0..{n_channels - 1}")
        if not 0 <= c < n_channels:
            raise ConfigError(f"{key} names electrode {c}, which does not exist (the source "
                              f"has {n_channels}: 0..{n_channels - 1}); drop it or fix the index")
        out.append(c)
    if len(set(out)) != len(out):
        raise ConfigError(f"{key} lists an electrode twice; list each once")
    return np.asarray(out, dtype=np.intp)


class RawChannelSubset(LoopListener):
    """Forward everything to ``inner`` but only ``channels`` of the raw samples.

    Parameters
    ----------
    inner : LoopListener
        Usually a :class:`~neuroloop.io.recorder.SessionRecorder`.
    channels : sequence of int
        Electrode indices kept (validated by :func:`check_raw_subset`).
    max_block : int
        Largest block expected (buffer size; a larger one is taken in pieces).
    """

    def __init__(self, inner: LoopListener, channels: Sequence[int] | np.ndarray,
                 max_block: int = 4096) -> None:
        self.inner = inner
        self.index = np.asarray(channels, dtype=np.intp)
        self._buf = np.zeros((max_block, self.index.shape[0]))

    def on_start(self, meta: dict) -> None:
        meta = dict(meta)
        ch = dict(meta.get("channels") or {})
        names, types = ch.get("names"), ch.get("types")
        if names is not None:
            ch["names"] = [names[i] for i in self.index]
        if types is not None:
            ch["types"] = [types[i] for i in self.index]
        meta["channels"] = ch
        meta["raw_channel_subset"] = [int(i) for i in self.index]
        self.inner.on_start(meta)

    def on_samples(self, data: np.ndarray, first_index: int) -> None:
        n = data.shape[0]
        step = self._buf.shape[0]
        for k in range(0, n, step):
            m = min(step, n - k)
            out = self._buf[:m] if m != step else self._buf
            np.take(data if m == n else data[k:k + m], self.index, axis=1, out=out)
            self.inner.on_samples(out, first_index + k)

    def on_armed(self, armed_ns: int) -> None:
        self.inner.on_armed(armed_ns)

    def on_cycle(self, record: np.ndarray) -> None:
        self.inner.on_cycle(record)

    def on_events(self, events: list) -> None:
        self.inner.on_events(events)

    def on_stop(self, summary: dict) -> None:
        self.inner.on_stop(summary)

    def __getattr__(self, name: str) -> Any:  # n_cycles, close, directory... of the recorder
        return getattr(self.inner, name)
