"""Decoders x recordings in closed loop through replay.

For every recording and decoder, the recording's samples are replayed through the current
pipeline with that decoder (:func:`neuroloop.io.replay.replay_cycles`): the decoder's output
drives the scenario's control policy and the safety supervisor exactly as in a live run, so
what is compared is the stimulation actually delivered. Each decoder is fitted on
``train`` (default: the scenario's own calibration source, as ``neuroloop run`` would) or
given as a trained file.

Metrics per (decoder, recording): the decoding metrics of :mod:`~neuroloop.evaluation.metrics`
on the replayed cycles (true state = the recording's ground truth), plus

* ``stim_on_rest_fraction``: fraction of true-rest cycles with any current delivered;
* ``first_stim_latency_s``: median time from a true movement onset to the first cycle that
  delivers that movement's program (``stim_onsets`` = delivered / onsets);
* ``interlock_events``: interlock events the supervisor raised.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Scenario, scenario_from_dict
from ..errors import ConfigError, RecordingError
from ..progress import Progress
from .data import load_dataset, scenario_for_features
from .evaluate import DecoderSpec, fit_decoder, parse_decoder_spec, single_threaded_blas
from .metrics import classification_metrics, onset_latencies_s

__all__ = ["compare", "stimulation_metrics", "COMPARE_FIGURE_METRIC"]

#: The metric drawn by default in the compare figure.
COMPARE_FIGURE_METRIC = "balanced_accuracy"


def _recorded_scenario(directory: str) -> Scenario:
    from ..io.reader import open_recording

    with open_recording(directory) as rec:
        cfg = rec.meta.get("config")
    if not isinstance(cfg, dict):
        raise RecordingError(f"{directory}/meta.json holds no config; it cannot be compared")
    return scenario_from_dict(cfg, label=f"{directory}/meta.json config")


def stimulation_metrics(cycles: np.ndarray, state_names: Sequence[str],
                        hop_s: float) -> dict[str, Any]:
    """Stimulation delivered in the replayed cycles (module docstring)."""
    rest = state_names.index("rest") if "rest" in state_names else None
    y = cycles["true_state"].astype(np.int64)
    amp = np.asarray(cycles["amplitude_ma"])
    on = np.any(amp != 0.0, axis=1)
    prog = cycles["program_id"].astype(np.int64)
    delivered = np.where(on, prog, -1)
    lat, n_on = onset_latencies_s(y, delivered, hop_s, rest)
    frac = None
    if rest is not None and np.any(y == rest):
        frac = round(float(np.mean(on[y == rest])), 4)
    return {"stim_on_rest_fraction": frac,
            "first_stim_latency_s": round(float(np.median(lat)), 3) if lat else None,
            "stim_onsets": f"{len(lat)}/{n_on}",
            "interlock_events": int(np.sum(cycles["n_events"]))}


def compare(decoders: Sequence[str | DecoderSpec], recordings: Sequence[str], *,
            train: str | None = None, scenario: Scenario | None = None,
            duration_s: float | None = None, block_s: float = 4.0,
            n_permutations: int = 200, seed: int = 0, figure: str | Path | None = None,
            figure_metric: str = COMPARE_FIGURE_METRIC,
            progress: bool = False) -> list[dict[str, Any]]:
    """Compare decoders in closed loop on recordings; one row per (decoder, recording).

    Parameters
    ----------
    decoders : sequence of str or DecoderSpec
        ``KIND[:key=value,...]`` or trained decoder files.
    recordings : sequence of str
        Session directories (``neuroloop run --record DIR``).
    train : str, optional
        Dataset to fit the decoders on (default ``synthetic``: the scenario's calibration
        source with its calibration seed, as a live run calibrates).
    scenario : Scenario, optional
        Replaces each recording's own scenario (same design: rate, channels).
    duration_s : float, optional
        Length of the training data read.
    figure : path, optional
        Write a PNG of ``figure_metric`` per decoder and recording
        (:func:`neuroloop.monitor.metric_grid.metric_grid_png`).

    Returns
    -------
    list of dict
    """
    with single_threaded_blas():
        return _compare(decoders, recordings, train=train, scenario=scenario,
                        duration_s=duration_s, block_s=block_s, n_permutations=n_permutations,
                        seed=seed, figure=figure, figure_metric=figure_metric,
                        progress=progress)


def _compare(decoders: Sequence[str | DecoderSpec], recordings: Sequence[str], *,
             train: str | None, scenario: Scenario | None, duration_s: float | None,
             block_s: float, n_permutations: int, seed: int, figure: str | Path | None,
             figure_metric: str, progress: bool) -> list[dict[str, Any]]:
    from ..io.replay import replay_cycles
    from ..monitor.metric_grid import metric_grid_png

    specs = [d if isinstance(d, DecoderSpec) else parse_decoder_spec(d) for d in decoders]
    if not specs:
        raise ConfigError("no decoder to compare; give --decoder KIND (e.g. lda, riemann)")
    if not recordings:
        raise ConfigError("no recording to compare on; give --recording DIR")
    for r in recordings:
        if not Path(r).is_dir():
            raise ConfigError(f"recording {r} is not a directory; record one with "
                              "`neuroloop run --record DIR`")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="neuroloop-compare-") as tmp, \
            Progress(len(specs) * len(recordings), "compare", unit="runs",
                     as_json=not progress) as bar:
        for rec in recordings:
            base = scenario or _recorded_scenario(rec)
            for i, spec in enumerate(specs):
                sc = scenario_for_features(base, spec.cls.features)
                sc = dataclasses.replace(sc, decoder=dataclasses.replace(
                    sc.decoder, kind=spec.kind, params=dict(spec.params)))
                if spec.path is not None:
                    path = spec.path
                else:
                    data = load_dataset(train or f"synthetic:{sc.decoder.calibration_seed}", sc,
                                        duration_s=duration_s)
                    dec = fit_decoder(spec, sc, data)
                    path = str(dec.save(Path(tmp) / f"decoder{i}.npz"))
                _, cycles, summary = replay_cycles(rec, decoder_path=path, scenario=sc)
                valid = cycles["valid"].astype(bool)
                pred = np.where(valid, cycles["state"].astype(np.int64), -1)
                row: dict[str, Any] = {"decoder": spec.label, "kind": spec.kind,
                                       "recording": rec, "cycles": int(cycles.shape[0])}
                row.update(classification_metrics(
                    cycles["true_state"].astype(np.int64), pred, sc.intention_names,
                    sc.hop_s, block_hops=max(1, round(block_s / sc.hop_s)),
                    n_permutations=n_permutations, seed=seed))
                row.update(stimulation_metrics(cycles, sc.intention_names, sc.hop_s))
                rows.append(row)
                bar.update(1)
    if figure is not None:
        metric_grid_png(rows, figure_metric, figure, group_key="decoder", item_key="recording",
                        title=f"{figure_metric} in closed loop")
    return rows
