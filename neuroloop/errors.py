"""The neuroloop exception tree.

Every error the library raises on purpose derives from :class:`NeuroloopError`, so a caller can
catch them all in one place. The CLI turns any of them into one line on stderr and exit code 2.
Argument mistakes made by programmers stay :class:`ValueError` / :class:`TypeError`.

Safety trips are *not* exceptions: the supervisor reports them as events and states.
"""

from __future__ import annotations

__all__ = [
    "NeuroloopError",
    "ConfigError",
    "DeviceError",
    "ProtocolError",
    "AuthenticationError",
    "RecordingError",
    "DecoderFileError",
]


class NeuroloopError(Exception):
    """Base class of every error neuroloop raises on purpose.

    The message is one line that says what is wrong and how to fix it.
    """


class ConfigError(NeuroloopError, ValueError):
    """A scenario, limits or command-line value is invalid (names the key, value and fix)."""


class DeviceError(NeuroloopError):
    """A device could not be opened, vanished, or answered in a way we cannot use."""


class ProtocolError(NeuroloopError):
    """A frame on the wire is malformed (bad COBS, CRC, length, version or type)."""


class AuthenticationError(ProtocolError):
    """A frame's HMAC tag did not verify or its sequence number was not new."""


class RecordingError(NeuroloopError):
    """A session recording is missing, incomplete, corrupt or of an unknown format version."""


class DecoderFileError(NeuroloopError):
    """A saved decoder file is missing, corrupt or of another format version."""
