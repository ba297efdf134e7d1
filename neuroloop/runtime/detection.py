"""Seizure-detection figures of a run: sensitivity, false detections per hour, latency.

Definitions (those of the RNS and seizure-detection literature, e.g. Sun et al. 2008;
Baumgartner & Koren 2018, Epilepsy & Behavior 82:151):

* a **detection** is a rising edge of the detector's state (0 -> 1), at the time the hop's
  last sample became available (``(last_sample + 1) / fs``);
* a seizure is **detected** when a detection falls inside ``[onset, end + tolerance]``;
  its **latency** is the first such detection time minus the onset (true for a synthetic
  patient, annotated for a recording);
* a **false detection** is a detection outside every ``[onset, end + tolerance]`` (the
  tolerance, 10 s by default, covers post-ictal activity and aborted seizures' decay);
  false detections per hour use the time outside seizures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["detection_metrics", "detection_times_s", "detection_summary", "ONSET_WORDS"]

#: Seconds after a seizure's end during which a detection still belongs to it.
END_TOLERANCE_S = 10.0


def detection_times_s(state: np.ndarray, last_sample: np.ndarray,
                      sampling_rate_hz: float) -> np.ndarray:
    """Times (s) of the detector's rising edges.

    Parameters
    ----------
    state : ndarray, shape (n_cycles,)
        Detector state per cycle (1 = detecting).
    last_sample : ndarray, shape (n_cycles,)
        Stream index of each hop's last sample.
    sampling_rate_hz : float
    """
    s = np.asarray(state) == 1
    rising = s & ~np.concatenate(([False], s[:-1]))
    return (np.asarray(last_sample)[rising] + 1) / float(sampling_rate_hz)


def detection_metrics(detections_s: np.ndarray, seizures_s: np.ndarray, duration_s: float,
                      *, start_s: float = 0.0,
                      end_tolerance_s: float = END_TOLERANCE_S) -> dict[str, Any]:
    """Sensitivity, false detections per hour and latency.

    Parameters
    ----------
    detections_s : ndarray, shape (n_detections,)
        Detection times, s.
    seizures_s : ndarray, shape (n_seizures, 2)
        ``(onset, end)`` of each seizure, s (``end`` may equal ``onset`` for an annotation
        that marks only the onset).
    duration_s : float
        Length of the analysed stretch, s (from ``start_s``).
    start_s : float
        Seizures starting before this (e.g. during the detector's trend learning) are not
        counted.

    Returns
    -------
    dict
        ``seizures``, ``detected``, ``sensitivity``, ``false_detections``,
        ``false_per_hour``, ``latency_s`` (per detected seizure), ``median_latency_s``.
    """
    det = np.sort(np.asarray(detections_s, dtype=np.float64))
    sz = np.asarray(seizures_s, dtype=np.float64).reshape(-1, 2)
    stop = start_s + duration_s
    sz = sz[(sz[:, 0] >= start_s) & (sz[:, 0] < stop)]
    belongs = np.zeros(det.shape[0], dtype=bool)
    latencies: list[float] = []
    for onset, end in sz:
        inside = (det >= onset) & (det <= max(end, onset) + end_tolerance_s)
        belongs |= inside
        if inside.any():
            latencies.append(float(det[inside][0] - onset))
    false = int(np.sum(~belongs & (det >= start_s) & (det < stop)))
    ictal_s = float(np.sum(np.clip(np.minimum(sz[:, 1], stop) - sz[:, 0], 0.0, None)))
    inter_h = max(duration_s - ictal_s, 0.0) / 3600.0
    n = int(sz.shape[0])
    return {
        "seizures": n,
        "detected": len(latencies),
        "sensitivity": round(len(latencies) / n, 4) if n else None,
        "false_detections": false,
        "false_per_hour": round(false / inter_h, 3) if inter_h > 0 else None,
        "latency_s": [round(v, 3) for v in latencies],
        "median_latency_s": round(float(np.median(latencies)), 3) if latencies else None,
    }


#: Words that mark a seizure-onset annotation of a recording (EDF+ ``"eeg sz start"``).
ONSET_WORDS = ("sz", "seizure", "onset", "ictal")


def _annotated_onsets_s(source: Any) -> list[float]:
    out = []
    for a in getattr(source, "annotations", None) or ():
        words = str(getattr(a, "text", "")).lower().replace("-", " ").replace("_", " ").split()
        if any(w in ONSET_WORDS for w in words):
            out.append(float(a.onset_s))
    return out


def _label_seizures(true_state: np.ndarray, last_sample: np.ndarray) -> np.ndarray:
    """(onset, end) samples of the runs of label 1 in the per-cycle ground truth."""
    s = np.asarray(true_state) == 1
    rows = []
    start = -1
    for c in range(s.shape[0]):
        if s[c] and start < 0:
            start = int(last_sample[c - 1]) + 1 if c > 0 else int(last_sample[0])
        elif not s[c] and start >= 0:
            rows.append((start, int(last_sample[c - 1]) + 1))
            start = -1
    if start >= 0:
        rows.append((start, int(last_sample[-1]) + 1))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def detection_summary(result: Any, source: Any, decoder: Any) -> dict[str, Any] | None:
    """The run summary's ``"detection"`` table, for a decoder with a ``detector_score``
    output (None otherwise).

    Seizures come from the patient model (``source.seizure_intervals``, exact onsets, ends
    moved earlier by aborts), else from a recording's onset annotations (``ONSET_WORDS``;
    then also ``detections_10s_before_onset``), else from the per-cycle labels. Seizures
    that start while the detector is still learning its trends are not counted.
    """
    schema = getattr(decoder, "output_schema_", None)
    if schema is None or "detector_score" not in schema.output_names or result.cycles == 0:
        return None
    fs = float(result.sampling_rate_hz)
    last = np.asarray(result.last_sample)
    det = detection_times_s(result.state, last, fs)
    first_s = (int(last[0]) + 1 - int(result.hop_samples)) / fs
    stop = int(last[-1]) + 1
    start_s = first_s + float(getattr(decoder, "init_hops", 0)) * result.hop_samples / fs
    annotated: list[float] = []
    intervals = getattr(source, "seizure_intervals", None)
    if callable(intervals):
        sz = np.asarray(intervals(stop), dtype=np.float64) / fs
        truth = "model"
    else:
        annotated = _annotated_onsets_s(source)
        if annotated:
            sz = np.asarray([(t, t) for t in annotated], dtype=np.float64).reshape(-1, 2)
            truth = "annotation"
        else:
            sz = _label_seizures(result.true_state, last) / fs
            truth = "labels"
    out = detection_metrics(det, sz, stop / fs - start_s, start_s=start_s)
    out["truth"] = truth
    out["detections"] = int(det.shape[0])
    out["detection_times_s"] = [round(float(t), 3) for t in det[:1000]]
    if annotated:
        out["detections_10s_before_onset"] = int(sum(
            int(np.sum((det >= t - 10.0) & (det < t))) for t in annotated))
    return out
