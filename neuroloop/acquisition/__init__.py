"""Sources of neural samples, chosen by URL.

========================================  ===============================================
URL                                       backend
========================================  ===============================================
``synthetic://bsi?seed=1&snr=1.0``        :class:`~neuroloop.acquisition.synthetic.SyntheticSource`
``intracortical://raw?seed=1``            :class:`~neuroloop.acquisition.intracortical.IntracorticalSource`
``serial:///dev/ttyUSB0?baud=921600``     :class:`~neuroloop.link.serial_source.SerialSource`
``socket://127.0.0.1:7000``, a path       :class:`~neuroloop.link.serial_source.SerialSource`
``replay://session-dir``                  :class:`~neuroloop.io.replay_source.ReplaySource`
``edf://file.edf?channels=C3..,C4..``     :class:`~neuroloop.io.edf.EdfSource`
``lsl://NAME``, ``lsl://?type=EEG``       :class:`~neuroloop.acquisition.lsl.LslSource`
``mne://file.vhdr?labels=T0:rest``        :class:`~neuroloop.io.mne_source.MneSource`
``lfp://stn?seed=1&severity=1.0``         :class:`~neuroloop.acquisition.lfp_patient.LfpPatientSource`
``npy://file.npy?rate=1000&channels=0,1`` :class:`~neuroloop.io.npy_source.NpySource`
========================================  ===============================================

Backends are imported lazily; third-party backends register through the entry-point group
``neuroloop.sources`` (name = URL scheme, value = ``module:Class``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError
from .base import NO_LABEL, BaseSource, Block, SourceInfo

__all__ = ["Block", "BaseSource", "SourceInfo", "NO_LABEL", "open_source", "register_source",
           "source_class", "parse_url"]

_BACKENDS: dict[str, str] = {
    "synthetic": "neuroloop.acquisition.synthetic:SyntheticSource",
    "intracortical": "neuroloop.acquisition.intracortical:IntracorticalSource",
    "serial": "neuroloop.link.serial_source:SerialSource",
    "socket": "neuroloop.link.serial_source:SerialSource",
    "replay": "neuroloop.io.replay_source:ReplaySource",
    "edf": "neuroloop.io.edf:EdfSource",
    "bdf": "neuroloop.io.edf:EdfSource",
    "lsl": "neuroloop.acquisition.lsl:LslSource",
    "mne": "neuroloop.io.mne_source:MneSource",
    "lfp": "neuroloop.acquisition.lfp_patient:LfpPatientSource",
    "npy": "neuroloop.io.npy_source:NpySource",
}


def register_source(scheme: str, target: str) -> None:
    """Register a backend ``module:Class`` for URLs starting with ``scheme://``."""
    _BACKENDS[scheme] = target


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split a source URL into ``(scheme, location, options)``.

    A bare path (``/dev/ttyUSB0``, ``/dev/pts/3``) is a serial device.
    """
    if "://" not in url:
        return "serial", url, {}
    parts = urlsplit(url)
    location = parts.netloc + parts.path
    return parts.scheme, location, dict(parse_qsl(parts.query))


def source_class(scheme: str) -> type[BaseSource]:
    """Import and return the backend class for ``scheme``."""
    target = _BACKENDS.get(scheme)
    if target is None:
        for ep in entry_points(group="neuroloop.sources"):
            if ep.name == scheme:
                plugin: type[BaseSource] = ep.load()
                return plugin
        known = ", ".join(sorted(_BACKENDS))
        raise ConfigError(f"unknown source scheme {scheme!r}; use one of: {known}")
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    backend: type[BaseSource] = getattr(module, cls_name)
    return backend


def open_source(url: str, **options: Any) -> BaseSource:
    """Create (not yet open) the source named by ``url``; ``options`` override URL query keys."""
    scheme, location, query = parse_url(url)
    cls = source_class(scheme)
    merged: dict[str, Any] = {**query, **options}
    return cls.from_url(scheme, location, merged)  # type: ignore[attr-defined]
