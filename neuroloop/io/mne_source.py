"""``MneSource``: any file MNE-Python reads, as a source (``mne://FILE``).

``mne://path/run.vhdr?channels=C3,C4&labels=T0:rest,T1:left&type=eeg&scale=1`` opens the file
with ``mne.io.read_raw`` (BrainVision ``.vhdr``, GDF, FIF, EDF/BDF, EEGLAB ``.set``, ...),
streams the selected channels in microvolts (MNE holds volts) and turns the file's
annotations into intention labels by name, exactly as ``edf://`` does (the same label map,
the same rules; :class:`~neuroloop.io.edf.EdfSource` is the base class, only the reading
differs). Channel types come from the file (MNE ``seeg``/``dbs`` -> ``lfp``; ``type=``
overrides them all). A file MNE cannot read is a one-line error naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..acquisition.base import CHANNEL_TYPES
from ..errors import ConfigError, RecordingError
from .edf import _GENERIC_OPTIONS, Annotation, EdfSource, _Header, _select_channels

__all__ = ["MneSource", "read_raw_checked"]

#: MNE channel type -> (neuroloop channel type, factor to microvolts)
_FROM_MNE: dict[str, tuple[str, float]] = {
    "eeg": ("eeg", 1e6), "ecog": ("ecog", 1e6), "seeg": ("lfp", 1e6), "dbs": ("lfp", 1e6),
    "emg": ("emg", 1e6), "eog": ("misc", 1e6), "ecg": ("misc", 1e6), "stim": ("stim", 1.0),
}


def read_raw_checked(path: str | os.PathLike[str]) -> Any:
    """``mne.io.read_raw(path, preload=False)``, with every failure a one-line error."""
    import mne

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"file {p} does not exist; check the mne:// path")
    if p.is_dir() and p.suffix.lower() not in (".ds", ".mff"):
        raise ConfigError(f"{p} is a directory, not a recording MNE reads (for a neuroloop "
                          "session use replay://DIR)")
    try:
        return mne.io.read_raw(p, preload=False, verbose="error")
    except Exception as exc:  # noqa: BLE001 - MNE raises many kinds; all mean "cannot read"
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise RecordingError(f"MNE-Python cannot read {p} ({type(exc).__name__}: {detail}); "
                             "use a BrainVision, GDF, FIF, EDF/BDF or other file MNE "
                             "supports") from None


class MneSource(EdfSource):
    """A recording read through MNE-Python as a source (scheme ``mne``).

    Parameters
    ----------
    path : str or Path
    channels : sequence of str, optional
        Channel names to stream, in this order (exact, or ignoring case and trailing dots).
    scale : float
        Extra factor after the conversion to microvolts.
    label_map : str or mapping, optional
        Annotation description -> intention name (``"T0:rest,T1:left,T2:right"``).
    channel_type : str, optional
        Type reported for every channel instead of the file's.
    chunk_s : float
        Seconds read from the file at a time.
    """

    scheme: ClassVar[str] = "mne"

    def __init__(self, path: str | os.PathLike[str], *, channels: Sequence[str] | None = None,
                 scale: float = 1.0, label_map: str | Mapping[str, str] | None = None,
                 channel_type: str | None = None, chunk_s: float = 1.0) -> None:
        super(EdfSource, self).__init__()  # BaseSource: the header comes from MNE, not EDFlib
        if channel_type is not None and channel_type not in CHANNEL_TYPES:
            raise ConfigError(f"type={channel_type!r} is not a channel type; use one of "
                              f"{', '.join(CHANNEL_TYPES)}")
        if not (np.isfinite(scale) and scale != 0):
            raise ConfigError(f"scale={scale!r} must be a finite, non-zero number")
        self.path = Path(path)
        raw = read_raw_checked(self.path)
        names = [str(n) for n in raw.ch_names]
        if not names:
            raise RecordingError(f"{self.path} holds no channels; nothing to read")
        idx = _select_channels(names, channels, self.path)
        mne_types = raw.get_channel_types()
        types: list[str] = []
        factors = np.empty(len(idx))
        for j, i in enumerate(idx):
            nl_type, factor = _FROM_MNE.get(mne_types[i], ("misc", 1.0))
            types.append(channel_type or nl_type)
            factors[j] = factor * scale
        sfreq = float(raw.info["sfreq"])
        ann = raw.annotations
        offset = raw.first_time if ann.orig_time is not None else 0.0
        annotations = tuple(Annotation(float(o) - offset, float(d), str(t))
                            for o, d, t in zip(ann.onset, ann.duration, ann.description,
                                               strict=True))
        hdr = _Header(self.path, tuple(idx), tuple(names[i] for i in idx), sfreq,
                      int(raw.n_times), factors, annotations, None)
        self._raw = raw
        self._setup(hdr, label_map, tuple(types), chunk_s)

    @classmethod
    def from_url(cls, scheme: str, location: str, options: dict[str, Any]) -> MneSource:
        """``mne://FILE?channels=A,B&scale=1&labels=T0:rest,T1:left&type=eeg``."""
        opts = dict(options)
        for key in _GENERIC_OPTIONS:
            opts.pop(key, None)
        channels = opts.pop("channels", None)
        chan_list = ([c for c in str(channels).split(",") if c.strip()]
                     if channels is not None else None)
        try:
            scale = float(opts.pop("scale", 1.0))
        except (TypeError, ValueError):
            raise ConfigError("mne option scale must be a number; e.g. scale=1.0") from None
        labels = opts.pop("labels", opts.pop("label_map", None))
        channel_type = opts.pop("type", None)
        if opts:
            raise ConfigError(f"unknown mne option(s) {', '.join(sorted(opts))}; use "
                              "channels=, scale=, labels=, type=")
        if not location:
            raise ConfigError("mne URL has no file; use mne://PATH/TO/FILE (.vhdr, .gdf, .fif, "
                              ".edf, ...)")
        return cls(location, channels=chan_list, scale=scale, label_map=labels,
                   channel_type=None if channel_type is None else str(channel_type))

    # -- EdfSource's reading hooks, through MNE -----------------------------------------------
    def _open(self) -> None:
        self._pos = 0
        self._buf_start = 0
        self._buf_n = 0
        self._interval = 0
        self._buf = np.zeros((self._chunk, len(self._hdr.names)))

    def _close(self) -> None:
        pass

    def _fill(self, start: int) -> None:
        hdr = self._hdr
        n = min(self._chunk, hdr.n_samples - start)
        block = self._raw.get_data(picks=list(hdr.indices), start=start, stop=start + n,
                                   verbose="error")  # (n_channels, n), volts
        np.multiply(block.T, hdr.factors, out=self._buf[:n])
        self._buf_start = start
        self._buf_n = n
