"""The implant's DATA FIFO: bulk frames wait here, unencoded, so that replies go first.

A real implant's radio gives control replies (ACK, NAK, INFO) and housekeeping frames
(HEARTBEAT, STATUS) priority over bulk data: a host that ARMs or STOPs while the line is
busy with a backlog of bins must not wait for the backlog to drain (at 3 Mbaud, the 1024-
electrode binned stream alone takes 71 % of the line, so a backlog of a second of bins takes
about three seconds to drain while the stream goes on).

Control frames go straight to the transport's queue. DATA frames wait in :class:`DataFifo`
(a preallocated ring of samples, so streaming allocates nothing) and move to the transport
one at a time, only when its queue is empty, i.e. when the line has taken everything before.
A DATA frame is *encoded when it leaves the FIFO*, so its sequence number and HMAC tag are
taken at that moment: frames always reach the line in sequence-number order, as the host's
anti-replay check (:class:`~neuroloop.link.session.SequenceGuard`) requires, although a
reply may overtake bins produced before it. A frame already started is always finished (a
partial frame is never interrupted), so a reply waits for at most one DATA frame plus what the
byte pipe itself buffers (a pty's ~15 kB).

When the FIFO is full the new frame is refused (counted in :attr:`DataFifo.overflow`; the
device raises ``TX_OVERFLOW`` in its next STATUS), like the transport's queue before.
"""

from __future__ import annotations

import numpy as np

from neuroloop.link.messages import Data

__all__ = ["DataFifo"]


class DataFifo:
    """A ring of DATA frames not yet encoded.

    Parameters
    ----------
    samples_per_frame, n_channels : int
        Shape of one frame's samples (int16).
    max_bytes : int
        Capacity in sample bytes (at least two frames are kept).

    Attributes
    ----------
    capacity : int
        Frames the ring holds.
    overflow : int
        Frames refused because the ring was full.
    """

    def __init__(self, samples_per_frame: int, n_channels: int, max_bytes: int) -> None:
        frame_bytes = max(1, int(samples_per_frame) * int(n_channels) * 2)
        self.capacity = max(2, int(max_bytes) // frame_bytes)
        self._samples = np.zeros((self.capacity, samples_per_frame, n_channels), dtype="<i2")
        self._labels = np.zeros((self.capacity, samples_per_frame), dtype=np.int8)
        self._has_labels = np.zeros(self.capacity, dtype=bool)
        self._counter = np.zeros(self.capacity, dtype=np.int64)
        self._first = np.zeros(self.capacity, dtype=np.int64)
        self._stamp_us = np.zeros(self.capacity, dtype=np.int64)
        self._scale = np.zeros(self.capacity, dtype=np.float64)
        self._head = 0  # oldest frame
        self._n = 0
        self.overflow = 0
        self.high_water = 0

    def __len__(self) -> int:
        return self._n

    def push(self, msg: Data, timestamp_us: int) -> bool:
        """Copy ``msg`` (its samples may be reused by the caller) to the tail; False, and
        counted in :attr:`overflow`, when the ring is full."""
        if self._n >= self.capacity:
            self.overflow += 1
            return False
        k = (self._head + self._n) % self.capacity
        self._samples[k] = msg.samples
        self._has_labels[k] = msg.labels is not None
        if msg.labels is not None:
            self._labels[k] = msg.labels
        self._counter[k] = msg.frame_counter
        self._first[k] = msg.first_sample_index
        self._scale[k] = msg.uv_per_lsb
        self._stamp_us[k] = timestamp_us
        self._n += 1
        self.high_water = max(self.high_water, self._n)
        return True

    def pop(self) -> tuple[Data, int]:
        """The oldest frame and its timestamp (device time its last sample was acquired, us).

        The message's arrays are views into the ring: encode it before the next :meth:`push`.
        """
        if self._n == 0:
            raise IndexError("pop from an empty DATA FIFO")
        k = self._head
        self._head = (self._head + 1) % self.capacity
        self._n -= 1
        labels = self._labels[k] if self._has_labels[k] else None
        msg = Data(int(self._counter[k]), int(self._first[k]), float(self._scale[k]),
                   self._samples[k], labels)
        return msg, int(self._stamp_us[k])

    def clear(self) -> None:
        """Forget every waiting frame (the radio rebooted)."""
        self._head = 0
        self._n = 0
