"""Datasets for offline evaluation: per-hop features and labels of a recording, an EDF/BDF
file or a synthetic run, computed by the scenario's own feature pipeline.

A dataset is named on the command line as

* ``synthetic`` or ``synthetic:SEED``: the scenario's synthetic source for ``duration_s``;
* a session directory (``neuroloop run --record DIR``), read through ``replay://DIR``;
* an ``.edf``/``.bdf`` file (``edf://FILE?labels=T0:rest,T1:left,T2:right`` to say how its
  annotations map to the scenario's states);
* any source URL (``replay://``, ``edf://``, ``synthetic://...``).

Samples are streamed hop by hop through the pipeline: memory holds the features, not the
signal (a one-hour bsi recording: 146 MB of features instead of 1.1 GB of samples; a 5-fold
cross-validation of ``lda`` on it peaked at 1.0 GB resident, the folds' copies and the fits).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..acquisition import open_source, parse_url
from ..acquisition.base import NO_LABEL
from ..config import Scenario
from ..errors import ConfigError
from ..progress import Progress
from ..runtime.session import build_pipeline, check_source

__all__ = ["Dataset", "dataset_url", "load_dataset", "scenario_for_features"]

_READ = 8192


@dataclass
class Dataset:
    """Features and labels of one recording.

    Attributes
    ----------
    name : str
        As given on the command line.
    X : ndarray, shape (n_hops, n_features)
    y : ndarray, shape (n_hops,), int64
        State per hop (index into ``state_names``), -1 when unlabelled or when the label
        changes inside the hop.
    hop_s : float
    state_names : tuple of str
    targets : ndarray, shape (n_hops, n_outputs), or None
        Continuous targets (kinematics) when the source provides them.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    hop_s: float
    state_names: tuple[str, ...]
    targets: np.ndarray | None = None

    @property
    def n_hops(self) -> int:
        return int(self.X.shape[0])

    def subset(self, rows: np.ndarray, name: str | None = None) -> Dataset:
        return Dataset(name or self.name, self.X[rows], self.y[rows], self.hop_s,
                       self.state_names, None if self.targets is None else self.targets[rows])


def scenario_for_features(scenario: Scenario, features: str) -> Scenario:
    """``scenario`` with ``dsp.features`` set to ``features``."""
    if scenario.dsp.features == features:
        return scenario
    return dataclasses.replace(scenario, dsp=dataclasses.replace(scenario.dsp,
                                                                 features=features))


def dataset_url(spec: str, scenario: Scenario) -> tuple[str, dict[str, object]]:
    """The source URL and options of a dataset name (module docstring)."""
    if spec == "synthetic" or spec.startswith("synthetic:") and "://" not in spec:
        opts = dict(scenario.source.options)
        if spec.startswith("synthetic:"):
            try:
                opts["seed"] = int(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"dataset {spec!r}: the seed after synthetic: is not an "
                                  "integer; write e.g. synthetic:7") from None
        return scenario.source.url, opts
    if "://" in spec:
        scheme = parse_url(spec)[0]
        same = scheme == parse_url(scenario.source.url)[0]
        return spec, dict(scenario.source.options) if same else {}
    p = Path(spec)
    if p.is_dir():
        return f"replay://{p}", {}
    if p.suffix.lower() in (".edf", ".bdf") and p.is_file():
        return f"edf://{p}", {}
    raise ConfigError(f"dataset {spec!r} is neither a recording directory, an EDF/BDF file, "
                      "a source URL nor synthetic[:SEED]; give one of those")


def load_dataset(spec: str, scenario: Scenario, *, duration_s: float | None = None,
                 progress: bool = False) -> Dataset:
    """Stream one dataset through the scenario's feature pipeline.

    Parameters
    ----------
    spec : str
        Dataset name (module docstring).
    scenario : Scenario
        Gives the feature pipeline, the states and the expected rate and channel count.
    duration_s : float, optional
        Read at most this long (a synthetic source needs it; default its calibration length).
    progress : bool
        Show a progress bar on a terminal.

    Raises
    ------
    ConfigError
        For an unknown dataset, a source that does not fit the scenario, no labelled hop.
    """
    url, opts = dataset_url(spec, scenario)
    fs = scenario.source.sampling_rate_hz
    hop = scenario.dsp.hop_samples
    if duration_s is None and parse_url(url)[0] == parse_url(scenario.source.url)[0] \
            and parse_url(url)[0] == "synthetic":
        duration_s = scenario.decoder.calibration_s
    max_samples = math.inf if duration_s is None else int(duration_s * fs)
    pipeline = build_pipeline(scenario)
    pipeline.warmup()
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    buf = np.zeros((hop, scenario.source.n_channels))
    lab = np.full(hop, NO_LABEL, dtype=np.int64)
    fill = 0
    got = 0
    chunk_x = np.zeros((1024, pipeline.n_features))
    chunk_y = np.zeros(1024, dtype=np.int64)
    k = 0
    total = None if math.isinf(max_samples) else int(max_samples)
    with open_source(url, **opts) as src, \
            Progress(total, f"features of {spec}", unit="samples", as_json=not progress) as bar:
        check_source(scenario, src, url)
        while got < max_samples:
            want = _READ if math.isinf(max_samples) else int(min(_READ, max_samples - got))
            block = src.read(want, timeout=5.0)
            if block is None:
                if src.exhausted:
                    break
                continue
            data = block.data
            blab = block.labels if block.labels.shape[0] == block.n_samples else None
            i = 0
            n = block.n_samples
            while i < n:
                take = min(hop - fill, n - i)
                buf[fill:fill + take] = data[i:i + take]
                lab[fill:fill + take] = NO_LABEL if blab is None else blab[i:i + take]
                fill += take
                i += take
                if fill == hop:
                    chunk_x[k] = pipeline.step(buf)
                    chunk_y[k] = lab[0] if np.all(lab == lab[0]) else NO_LABEL
                    k += 1
                    fill = 0
                    if k == chunk_x.shape[0]:
                        feats.append(chunk_x.copy())
                        labels.append(chunk_y.copy())
                        k = 0
            got += n
            bar.update(n)
    feats.append(chunk_x[:k].copy())
    labels.append(chunk_y[:k].copy())
    X = np.concatenate(feats)
    y = np.concatenate(labels)
    if X.shape[0] < 10:
        raise ConfigError(f"dataset {spec} gave only {X.shape[0]} hops; evaluation needs at "
                          "least 10 (a longer recording or --duration)")
    if not np.any(y >= 0):
        raise ConfigError(f"dataset {spec} has no labelled hop; use a labelled recording "
                          "(synthetic, a recording of one, or EDF with labels=)")
    return Dataset(spec, X, y, hop / fs, scenario.intention_names)
