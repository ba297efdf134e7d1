"""neuroloop.link: the wire protocol shared by the host and the device, and the host's end.

Protocol (``docs/protocol.md`` has every byte and the test vectors):
:mod:`~neuroloop.link.framing` (COBS, 0x00 delimiter), :mod:`~neuroloop.link.crc` (CRC-32),
:mod:`~neuroloop.link.auth` (truncated HMAC-SHA256), :mod:`~neuroloop.link.keys` (key files
and environment), :mod:`~neuroloop.link.messages` (payloads), :mod:`~neuroloop.link.codec`
(header, tag, CRC), :mod:`~neuroloop.link.parser` (streaming parser),
:mod:`~neuroloop.link.session` (anti-replay), :mod:`~neuroloop.link.capacity` (UART budget).

Host side: :mod:`~neuroloop.link.device` (:class:`DeviceLink`, :func:`open_device_link`),
:mod:`~neuroloop.link.serial_source`, :mod:`~neuroloop.link.serial_stimulator`.
Imported lazily: ``import neuroloop.link`` does not open anything or start threads.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DeviceLink", "open_device_link", "LinkKeys", "load_keys", "generate_key_file",
           "StreamParser", "link_utilisation", "SerialSource", "SerialStimulator"]

_LAZY = {
    "DeviceLink": ".device", "open_device_link": ".device", "LinkKeys": ".keys",
    "load_keys": ".keys", "generate_key_file": ".keys", "StreamParser": ".parser",
    "link_utilisation": ".capacity", "SerialSource": ".serial_source",
    "SerialStimulator": ".serial_stimulator",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'neuroloop.link' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod, __name__), name)
