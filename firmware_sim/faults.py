"""Link-level fault injection: dropped frames, corrupted bytes, added latency.

Sample-level faults (stuck channel, noise bursts) are in :mod:`firmware_sim.streamer`; device
faults (disconnect, reboot, open contact) are scheduled by :mod:`firmware_sim.sim`.
Every injected fault is counted, so a test can check that the host counted it too.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

__all__ = ["FaultConfig", "LinkFaults"]


@dataclass(frozen=True)
class FaultConfig:
    """What to break, and when.

    Attributes
    ----------
    drop_frames : float
        Probability that a DATA frame is not transmitted (its frame counter is still used).
    corrupt_bytes : float
        Probability that a byte is hit by one flipped bit, independently for every byte in
        both directions (device -> host after encoding, host -> device before parsing).
    latency_ms : float
        Delay added to every device -> host frame.
    stuck_channel : int or None
        Channel that freezes at ``stuck_after_s``.
    stuck_after_s : float
    noise_bursts_per_s : float
    disconnect_after_s : float or None
        The link goes down (pty closed / socket connection dropped) after this many seconds.
    reboot_after_s : float or None
        The device reboots once after this many seconds.
    reboot_time_ms : float
        How long the reboot keeps the device silent.
    open_contact : int or None
        Contact whose lead breaks at ``open_contact_after_s``.
    open_contact_after_s : float
    faults_after_s : float
        Dropped frames, corrupted bytes and added latency start this many seconds into the
        run (so that a link can come up before it degrades).
    """

    drop_frames: float = 0.0
    corrupt_bytes: float = 0.0
    latency_ms: float = 0.0
    stuck_channel: int | None = None
    stuck_after_s: float = 0.0
    noise_bursts_per_s: float = 0.0
    disconnect_after_s: float | None = None
    reboot_after_s: float | None = None
    reboot_time_ms: float = 300.0
    open_contact: int | None = None
    open_contact_after_s: float = 0.0
    faults_after_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop_frames", "corrupt_bytes"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if self.latency_ms < 0 or self.noise_bursts_per_s < 0:
            raise ValueError("latency_ms and noise_bursts_per_s must be >= 0")


class LinkFaults:
    """Applies the link faults of a :class:`FaultConfig` to frames and bytes.

    Attributes
    ----------
    frames_dropped, frames_corrupted, bytes_corrupted_tx, bytes_corrupted_rx : int
        What was injected so far.
    """

    def __init__(self, config: FaultConfig, rng: np.random.Generator) -> None:
        self.cfg = config
        self._rng = rng
        self._delay: list[tuple[int, int, bytes]] = []
        self._n = 0
        self.frames_dropped = 0
        self.frames_corrupted = 0
        self.bytes_corrupted_tx = 0
        self.bytes_corrupted_rx = 0
        #: False before ``faults_after_s`` (set by the simulator's loop).
        self.active = config.faults_after_s <= 0

    def drop_data_frame(self) -> bool:
        """Decide whether the next DATA frame is lost on the way."""
        if self.active and self.cfg.drop_frames > 0 and \
                self._rng.random() < self.cfg.drop_frames:
            self.frames_dropped += 1
            return True
        return False

    def _corrupt(self, data: bytes) -> tuple[bytes, int]:
        p = self.cfg.corrupt_bytes
        if p <= 0 or not data or not self.active:
            return data, 0
        k = int(self._rng.binomial(len(data), p))
        if k == 0:
            return data, 0
        buf = bytearray(data)
        pos = self._rng.choice(len(buf), size=k, replace=False)
        bits = self._rng.integers(0, 8, size=k)
        for i, b in zip(pos.tolist(), bits.tolist(), strict=True):
            buf[i] ^= 1 << b
        return bytes(buf), k

    def corrupt_tx(self, frame: bytes) -> bytes:
        """Corrupt an outgoing frame's bytes (counts the frame if any byte was hit)."""
        out, k = self._corrupt(frame)
        if k:
            self.bytes_corrupted_tx += k
            self.frames_corrupted += 1
        return out

    def corrupt_rx(self, data: bytes) -> bytes:
        """Corrupt incoming bytes."""
        out, k = self._corrupt(data)
        self.bytes_corrupted_rx += k
        return out

    def delay(self, frame: bytes, now_us: int) -> None:
        """Queue ``frame`` for release after the configured latency."""
        self._n += 1
        delay = int(self.cfg.latency_ms * 1000) if self.active else 0
        heapq.heappush(self._delay, (now_us + delay, self._n, frame))

    def released(self, now_us: int) -> list[bytes]:
        """Frames whose delay is over, in order."""
        out = []
        while self._delay and self._delay[0][0] <= now_us:
            out.append(heapq.heappop(self._delay)[2])
        return out

    def next_release_us(self) -> int | None:
        return self._delay[0][0] if self._delay else None

    def counters(self) -> dict[str, int]:
        return {"frames_dropped": self.frames_dropped, "frames_corrupted": self.frames_corrupted,
                "bytes_corrupted_tx": self.bytes_corrupted_tx,
                "bytes_corrupted_rx": self.bytes_corrupted_rx}
