"""``replay://DIR``: a recorded session as a source of samples.

The recorded samples come back block by block, exactly as stored, with recorded gaps kept:
a read returns at most ``max_samples`` consecutive samples and stops at a gap, so the next
block's ``first_index`` jumps just as it did live. Labels come from the recorded cycles'
``true_state`` (each sample gets the state of the cycle whose hop contains it), so a replay
reproduces the recorded ground truth.

Memory does not grow with the recording: samples, block index and cycle rows are read with
``os.preadv`` into small preallocated buffers (no memory map is touched), so a one-hour
recording replays in the same few megabytes as a one-minute one.

Pacing: the source never sleeps (``paced_by_device = False``). ``?realtime=1`` only sets
:attr:`ReplaySource.realtime`, which tells the loop/CLI to pace the replay on the wall clock
(bench demos); without it a replay runs as fast as the pipeline allows.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from ..acquisition.base import CHANNEL_TYPES, NO_LABEL, BaseSource, Block, SourceInfo
from ..errors import ConfigError
from ..records import FLAG_SOURCE_STALL
from .reader import Recording, open_recording

__all__ = ["ReplaySource"]

_INDEX_CHUNK = 4096
_CYCLE_CHUNK = 256
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"replay option {key}={value!r} is not a boolean; use {key}=1 or {key}=0")


class _CycleWindow:
    """Sequential access to recorded cycle rows through a small preallocated buffer."""

    def __init__(self, recording: Recording, rows: int = _CYCLE_CHUNK) -> None:
        self.recording = recording
        self.buf = np.zeros(rows, dtype=recording.cycle_dtype)
        self.base = 0
        self.n = 0
        names = recording.cycle_dtype.names or ()
        self.first_sample = self.buf["first_sample"] if "first_sample" in names else None
        self.true_state = self.buf["true_state"] if "true_state" in names else None
        self.available_ns = self.buf["available_ns"] if "available_ns" in names else None
        self.flags = self.buf["flags"] if "flags" in names else None

    def slot(self, i: int) -> int:
        """Buffer slot of cycle ``i`` (refilling the window so that it starts at ``i``)."""
        j = i - self.base
        if 0 <= j < self.n:
            return j
        self.base = i
        self.n = self.recording.read_cycles(i, self.buf)
        return 0


class ReplaySource(BaseSource):
    """Replay a session directory as a source.

    Parameters
    ----------
    path : str, Path or Recording
        Session directory written by :class:`~neuroloop.io.recorder.SessionRecorder`, or
        an already opened :class:`~neuroloop.io.reader.Recording`.
    realtime : bool
        Ask the loop to pace the replay on the wall clock (see :attr:`realtime`).

    Attributes
    ----------
    recording : Recording
        The opened recording; :meth:`recorded_cycle` reads its rows for the loop (recorded
        ``now_ns``, ``available_ns`` and ``flags`` reproduce time-based decisions).
    realtime : bool
        True when ``?realtime=1`` was given: the caller should use a wall clock and pace.
    info : SourceInfo
        From ``meta.json`` (channel names/types, rate, unit, intention names).
    """

    scheme: ClassVar[str] = "replay"
    paced_by_device: ClassVar[bool] = False

    def __init__(self, path: str | os.PathLike[str] | Recording, *,
                 realtime: bool = False) -> None:
        super().__init__()
        self.recording = path if isinstance(path, Recording) else open_recording(path)
        self.realtime = bool(realtime)
        rec = self.recording
        types = tuple(t if t in CHANNEL_TYPES else "misc" for t in rec.channel_types)
        self.info = SourceInfo(channel_names=rec.channel_names, channel_types=types,
                               sampling_rate_hz=rec.sampling_rate_hz, unit=rec.unit,
                               intention_names=rec.intention_names)
        self._index = np.zeros((_INDEX_CHUNK, 3), dtype=np.int64)
        self._index_base = 0
        self._index_n = 0
        self._labels_win = _CycleWindow(rec)
        self._rows = rec.cycle_stream()
        self._hop = int(rec.hop_samples) if rec.hop_samples else 1
        self._cap = 0
        self._data = np.zeros((0, rec.n_channels))
        self._labels = np.zeros(0, dtype=np.int8)
        self._full: Block | None = None
        self._reset()

    @classmethod
    def from_url(cls, scheme: str, location: str, options: dict[str, Any]) -> ReplaySource:
        """``replay://DIR?realtime=1`` (scheme ``replay``)."""
        opts = dict(options)
        for key in ("seed", "snr"):  # a scenario hands these to every source: a recording
            opts.pop(key, None)      # is already deterministic, so they are ignored
        realtime = _parse_bool("realtime", opts.pop("realtime", "0"))
        if opts:
            raise ConfigError(f"unknown replay option(s) {', '.join(sorted(opts))}; the only "
                              "option is realtime=0|1")
        if not location:
            raise ConfigError("replay URL has no directory; use replay://PATH/TO/SESSION")
        return cls(location, realtime=realtime)

    # -- cursor -----------------------------------------------------------------------------
    def _reset(self) -> None:
        self._block = 0  # current block-index row
        self._pos = 0  # samples of it already handed out
        self._cycle_cursor = 0  # first cycle whose hop may still cover unread samples
        self._samples_read = 0

    def _block_row(self, b: int) -> np.ndarray:
        j = b - self._index_base
        if not (0 <= j < self._index_n):
            self._index_base = b
            self._index_n = self.recording.read_blocks(b, self._index)
            j = 0
        return self._index[j]

    @property
    def exhausted(self) -> bool:
        """True once every recorded sample was handed out."""
        return self._block >= self.recording.n_blocks

    @property
    def n_recorded_cycles(self) -> int:
        """Cycle rows in the recording."""
        return self.recording.n_cycles

    def recorded_cycle(self, i: int) -> np.void:
        """Recorded cycle row ``i`` (a structured scalar, valid until the next call that
        moves the window). Sequential access reads 256 rows per disk read."""
        return self._rows[i]

    def next_sample_index(self) -> int | None:
        """Stream index of the next sample a read returns (None when every sample was read):
        a replayed stall reads the samples the live reader had received before it stalled."""
        if self._block >= self.recording.n_blocks:
            return None
        return int(self._block_row(self._block)[0]) + self._pos

    # -- BaseSource hooks -------------------------------------------------------------------
    def _open(self) -> None:
        self._reset()

    def _close(self) -> None:
        self.recording.close()

    def _ensure_capacity(self, max_samples: int) -> None:
        if max_samples != self._cap:
            self._cap = max_samples
            self._data = np.zeros((max_samples, self.recording.n_channels))
            self._labels = np.full(max_samples, NO_LABEL, dtype=np.int8)
            self._full = Block(data=self._data, first_index=0, labels=self._labels)

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        rec = self.recording
        n_blocks = rec.n_blocks
        if self._block >= n_blocks:
            return None
        self._ensure_capacity(max_samples)
        row = self._block_row(self._block)
        first_index = int(row[0]) + self._pos
        data_row = int(row[2]) + self._pos
        available = int(row[1]) - self._pos
        end_index = int(row[0]) + int(row[1])
        b = self._block
        while available < max_samples and b + 1 < n_blocks:  # extend over contiguous blocks
            nxt = self._block_row(b + 1)
            if int(nxt[0]) != end_index:
                break  # a recorded gap: stop here, the next read starts after it
            b += 1
            available += int(nxt[1])
            end_index = int(nxt[0]) + int(nxt[1])
        k = min(max_samples, available)
        got = rec.read_samples(data_row, self._data[:k])
        if got != k:  # pragma: no cover - the reader validated the sizes at open
            k = got
        # advance the cursor by k samples
        left = k
        while left > 0:
            row = self._block_row(self._block)
            rest = int(row[1]) - self._pos
            if left < rest:
                self._pos += left
                left = 0
            else:
                left -= rest
                self._block += 1
                self._pos = 0
        received_ns = self._fill_labels(first_index, k)
        self._samples_read += k
        if k == max_samples:
            block = self._full
            assert block is not None
            block.first_index = first_index
            block.received_ns = received_ns
            return block
        return Block(data=self._data[:k], first_index=first_index, labels=self._labels[:k],
                     received_ns=received_ns)

    def _fill_labels(self, s0: int, k: int) -> int:
        """Labels of samples [s0, s0+k) from the recorded cycles; return the recorded
        ``available_ns`` of the cycle whose hop ends at the block's last sample (0 if none)."""
        labels = self._labels
        labels[:k] = NO_LABEL
        win = self._labels_win
        if win.first_sample is None or win.true_state is None:
            return 0
        n_cycles = self.recording.n_cycles
        hop = self._hop
        s1 = s0 + k
        j = self._cycle_cursor
        while j < n_cycles:
            slot = win.slot(j)
            if int(win.first_sample[slot]) + hop > s0:
                break
            j += 1
        self._cycle_cursor = j
        received_ns = 0
        while j < n_cycles:
            slot = win.slot(j)
            start = int(win.first_sample[slot])
            if start >= s1:
                break
            if win.flags is not None and int(win.flags[slot]) & FLAG_SOURCE_STALL:
                j += 1  # a stalled cycle read no hop: it repeats the last first_sample
                continue
            stop = start + hop
            # a stalled cycle repeats the previous hop's first_sample with NO_LABEL: it must
            # not erase the labels its hop was decoded with
            if stop > s0 and win.true_state[slot] != NO_LABEL:
                labels[max(start, s0) - s0:min(stop, s1) - s0] = win.true_state[slot]
                if stop == s1 and win.available_ns is not None:
                    received_ns = int(win.available_ns[slot])
            j += 1
        return received_ns
