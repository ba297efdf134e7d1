"""Recordings to MNE-Python: :func:`to_mne` (an ``mne.io.Raw``) and :func:`export_fif`.

The raw channels go at their stream positions (samples lost by the source are zeros, spanned
by a ``samples lost: N`` annotation), in volts for voltage channels (MNE's unit; neuroloop
records microvolts), with MNE channel types (``eeg``, ``ecog``, ``lfp`` -> ``seeg``, ``emg``,
``stim``, ``misc``). The annotations are exactly those :func:`neuroloop.io.edf.export_edf`
writes (same texts, same onsets): ``true: <intention>``, ``decoded: <intention>``,
``stim on: <program>`` / ``stim off``, ``supervisor: <STATE>``, ``interlock: <reason>``
(runs merged, with a duration and a count), ``note: ...``, link errors.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..progress import Progress
from .edf import session_annotations
from .reader import Recording, open_recording

__all__ = ["to_mne", "export_fif", "MNE_CHANNEL_TYPES"]

#: neuroloop channel type -> (MNE channel type, factor from the recorded unit (uV) to MNE's)
MNE_CHANNEL_TYPES: dict[str, tuple[str, float]] = {
    "eeg": ("eeg", 1e-6), "ecog": ("ecog", 1e-6), "lfp": ("seeg", 1e-6),
    "emg": ("emg", 1e-6), "stim": ("stim", 1.0), "misc": ("misc", 1.0),
}


def to_mne(recording: Recording | str | os.PathLike[str], *, as_json: bool = True) -> Any:
    """A recorded session as an ``mne.io.RawArray`` with its events as annotations.

    Parameters
    ----------
    recording : Recording or path of a session directory
    as_json : bool
        True (default) draws no progress bar; the CLI passes its ``--json`` flag.

    Returns
    -------
    mne.io.RawArray
        ``n_channels`` x ``span`` samples (gaps as zeros), voltages in V; ``annotations``
        as :func:`~neuroloop.io.edf.session_annotations` gives them (onsets in seconds from
        the first sample); ``info["description"]`` names the scenario.
    """
    import mne

    rec = recording if isinstance(recording, Recording) else open_recording(recording)
    if rec.n_samples == 0:
        raise RecordingError(f"{rec.path} holds no samples; nothing to convert")
    items, first_index0, span, _gap = session_annotations(rec)
    n_ch = rec.n_channels
    data = np.zeros((n_ch, span))
    idx = np.zeros((4096, 3), dtype=np.int64)
    tmp = np.zeros((65536, n_ch))
    with Progress(rec.n_blocks, "to MNE", unit="block", as_json=as_json) as bar:
        for b0 in range(0, rec.n_blocks, idx.shape[0]):
            nb = rec.read_blocks(b0, idx)
            for first, n, row in idx[:nb]:
                pos, left, src = int(first) - first_index0, int(n), int(row)
                while left > 0:
                    m = min(left, tmp.shape[0])
                    got = rec.read_samples(src, tmp[:m])
                    if got <= 0:
                        break
                    data[:, pos:pos + got] = tmp[:got].T
                    pos, src, left = pos + got, src + got, left - got
            bar.update(nb)
    types: list[str] = []
    for j, t in enumerate(rec.channel_types):
        mne_type, factor = MNE_CHANNEL_TYPES.get(str(t), ("misc", 1.0))
        types.append(mne_type)
        if factor != 1.0:
            data[j] *= factor
    np.nan_to_num(data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    info = mne.create_info(list(rec.channel_names), rec.sampling_rate_hz, types, verbose="error")
    scenario = rec.meta.get("scenario")
    with info._unlock():
        info["description"] = f"neuroloop session, scenario {scenario}"[:200]
    raw = mne.io.RawArray(data, info, verbose="error")
    created = rec.meta.get("created_utc")
    if isinstance(created, str):
        try:
            start = _dt.datetime.fromisoformat(created)
            raw.set_meas_date(start if start.tzinfo else start.replace(tzinfo=_dt.UTC))
        except (ValueError, TypeError):
            pass
    if items:
        items = sorted(items, key=lambda a: a[0])
        onsets = [a[0] for a in items]
        durations = [max(0.0, a[1]) for a in items]
        texts = [a[2] for a in items]
        raw.set_annotations(mne.Annotations(onsets, durations, texts,
                                            orig_time=raw.info["meas_date"]), verbose="error")
    return raw


def export_fif(session_dir: str | os.PathLike[str], out_path: str | os.PathLike[str],
               *, as_json: bool = False) -> dict[str, Any]:
    """Write a recorded session as an MNE-Python FIF file (``neuroloop export DIR --fif``).

    Returns
    -------
    dict
        ``path``, ``n_channels``, ``n_samples``, ``sampling_rate_hz``, ``annotations``.
    """
    raw = to_mne(session_dir, as_json=as_json)
    out = Path(out_path)
    try:
        raw.save(out, overwrite=True, verbose="error")
    except OSError as exc:
        raise RecordingError(f"cannot write {out}: {exc.strerror or exc}; check the path") \
            from None
    return {"path": str(out), "n_channels": int(raw.info["nchan"]),
            "n_samples": int(raw.n_times), "sampling_rate_hz": float(raw.info["sfreq"]),
            "annotations": len(raw.annotations)}
