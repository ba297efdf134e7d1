"""Anti-replay bookkeeping for frames received from the device.

The device picks a random non-zero 32-bit *session* at every boot and stamps it on every frame;
within a session its sequence numbers strictly increase. The host accepts a frame only if its
session is the current one and its sequence number is new, or if it opens a session never seen
before (the device rebooted). Frames of a session the host has already left are replays.
The device side does the same for host frames in :mod:`firmware_sim.device`.
"""

from __future__ import annotations

from .codec import Header, ReplayError, _with_header

__all__ = ["SequenceGuard"]


class SequenceGuard:
    """Strictly increasing sequence numbers per session; old sessions are refused.

    Attributes
    ----------
    session : int or None
        Current session, None before the first frame.
    last_seq : int
        Sequence number of the last accepted frame of the current session (-1 before any).
    session_changes : int
        Times a new session replaced a previous one (device reboots seen).
    """

    def __init__(self) -> None:
        self.session: int | None = None
        self.last_seq = -1
        self.session_changes = 0
        self._old: set[int] = set()

    def check(self, header: Header) -> None:
        """Raise :class:`ReplayError` unless ``header`` may be accepted next."""
        if header.session == self.session:
            if header.seq <= self.last_seq:
                raise _with_header(ReplayError(
                    f"frame seq {header.seq} is not newer than {self.last_seq} (replayed or "
                    "reordered)"), header)
        elif header.session in self._old:
            raise _with_header(ReplayError(
                f"frame from an earlier device session 0x{header.session:08x} (replayed)"), header)

    def accept(self, header: Header) -> bool:
        """Check and record ``header``; True when it opened a new session."""
        self.check(header)
        new = header.session != self.session
        if new:
            if self.session is not None:
                self._old.add(self.session)
                self.session_changes += 1
            self.session = header.session
        self.last_seq = header.seq
        return new
