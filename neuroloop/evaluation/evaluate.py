"""Offline evaluation of decoders: train on one set and test on another, or blocked
cross-validation in time, with the metrics of :mod:`neuroloop.evaluation.metrics`.

Every decoder is evaluated through its online path: after fitting, each test sequence is
decoded hop by hop with :meth:`~neuroloop.decoders.BaseDecoder.step` from a reset state (so
the HMM-style gate, sliding windows and online adaptation count), and an invalid output is
an error.

Blocked cross-validation cuts a dataset into ``folds`` contiguous folds; a fold is tested by
a decoder fitted on the other hops minus ``gap_s`` on each side of the fold, so that
neighbouring hops (which share filter state, windows and the same trial) never leak across.

Python API: :func:`evaluate` returns one row (a dict of metrics) per decoder and test set;
``neuroloop evaluate`` prints them as a table, ``--json`` or CSV.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Scenario
from ..decoders._blas import single_threaded_blas
from ..decoders.base import (
    BaseDecoder,
    _decoder_class,
    decoder_names,
    load_decoder,
    make_decoder,
)
from ..errors import ConfigError
from .data import Dataset, load_dataset, scenario_for_features
from .metrics import classification_metrics, continuous_metrics

__all__ = ["DecoderSpec", "parse_decoder_spec", "evaluate", "blocked_folds",
           "decode_sequence", "fit_decoder", "evaluate_datasets", "single_threaded_blas"]


@dataclass
class DecoderSpec:
    """A decoder to evaluate: a registered kind with parameters, or a trained file.

    ``"riemann"``, ``"lda:shrinkage=0.3,gate_hops=1"``, ``"csp-lda:gate=false"`` or
    ``"path/decoder.npz"`` (evaluated as trained, never refitted).
    """

    label: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def cls(self) -> type[BaseDecoder]:
        cls = _decoder_class(self.kind)
        if cls is None:
            raise ConfigError(f"unknown decoder {self.kind!r}; use one of: "
                              f"{', '.join(decoder_names())}")
        return cls


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_decoder_spec(text: str) -> DecoderSpec:
    """Parse ``KIND[:key=value,...]`` or a decoder file path (see :class:`DecoderSpec`).

    Raises
    ------
    ConfigError
        For an unknown kind (listing the registered ones), a malformed parameter, or a
        decoder file that cannot be read.
    """
    text = text.strip()
    if text.endswith(".npz") or Path(text).is_file():
        dec = load_decoder(text)
        return DecoderSpec(label=Path(text).name, kind=dec.name, path=text)
    kind, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"decoder {text!r}: parameter {item!r} is not key=value; write "
                              "e.g. lda:shrinkage=0.3")
        params[key.strip()] = _value(val)
    spec = DecoderSpec(label=text, kind=kind, params=params)
    spec.cls  # noqa: B018 - raises for an unknown kind, listing the registered ones
    try:
        make_decoder(kind, **params)
    except TypeError as exc:
        raise ConfigError(f"decoder {text!r}: bad parameter ({exc}); see `neuroloop evaluate "
                          "--list-decoders` and docs/decoders.md") from None
    return spec


def blocked_folds(n_hops: int, n_folds: int, gap_hops: int) -> list[tuple[np.ndarray,
                                                                          np.ndarray]]:
    """Contiguous folds in time with a gap: ``[(train_rows, test_rows), ...]``.

    Fold ``f`` tests hops ``[f n / k, (f + 1) n / k)``; its training rows are all other hops
    except ``gap_hops`` on each side of the test block.

    Raises
    ------
    ConfigError
        When ``n_folds < 2`` or the data are too short for that many folds with that gap.
    """
    if n_folds < 2:
        raise ConfigError(f"--folds {n_folds}: cross-validation needs at least 2 folds")
    edges = np.linspace(0, n_hops, n_folds + 1).round().astype(int)
    if np.min(np.diff(edges)) < max(10, gap_hops) or n_hops - (n_hops // n_folds + 2 * gap_hops) \
            < 10:
        raise ConfigError(f"{n_hops} hops are too little data for {n_folds} folds with a gap of "
                          f"{gap_hops} hops; use fewer folds, a shorter --gap or more data")
    out = []
    idx = np.arange(n_hops)
    for f in range(n_folds):
        a, b = edges[f], edges[f + 1]
        test = idx[a:b]
        train = idx[(idx < a - gap_hops) | (idx >= b + gap_hops)]
        out.append((train, test))
    return out


def _params_for(spec: DecoderSpec, scenario: Scenario, n_states: int) -> dict[str, Any]:
    params = dict(spec.params)
    sig = inspect.signature(spec.cls.__init__).parameters
    if "n_bands" in sig and "n_bands" not in params:
        params["n_bands"] = len(scenario.dsp.bands_hz)
    if "n_states" in sig and "n_states" not in params and not spec.cls.continuous_targets:
        params["n_states"] = n_states
    return params


def fit_decoder(spec: DecoderSpec, scenario: Scenario, train: Dataset) -> BaseDecoder:
    """A decoder of ``spec`` fitted on ``train`` (or ``spec``'s trained file, loaded).

    Raises
    ------
    ConfigError
        When the training labels do not cover every state of the scenario.
    """
    if spec.path is not None:
        return load_decoder(spec.path)
    cls = spec.cls
    dec = make_decoder(spec.kind, **_params_for(spec, scenario, len(train.state_names)))
    if cls.continuous_targets:
        if train.targets is None:
            raise ConfigError(f"decoder {spec.label} decodes continuous targets, which "
                              f"{train.name} does not provide; use a source with kinematics")
        return dec.fit(train.X, train.targets)
    present = set(np.unique(train.y[train.y >= 0]).tolist())
    missing = [train.state_names[k] for k in range(len(train.state_names)) if k not in present]
    if missing:
        raise ConfigError(f"training data {train.name} has no hops labelled "
                          f"{', '.join(missing)}; the labels must cover every state of the "
                          "scenario (fix labels= or choose a scenario with those states)")
    if cls.sequential:
        return dec.fit(train.X, train.y, state_names=train.state_names)
    keep = (train.y >= 0) & np.all(np.isfinite(train.X), axis=1)
    return dec.fit(train.X[keep], train.y[keep], state_names=train.state_names)


def decode_sequence(decoder: BaseDecoder, X: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The online path over ``X`` from a reset state: (states (-1 = invalid), values)."""
    decoder.reset()
    n = X.shape[0]
    states = np.empty(n, dtype=np.int64)
    values = np.empty((n, decoder.output_schema_.n_outputs))
    Xc = np.ascontiguousarray(X, dtype=np.float64)
    step = decoder.step
    for i in range(n):
        out = step(Xc[i])
        states[i] = out.state if out.valid else -1
        values[i] = out.values
    decoder.reset()
    return states, values


def _metrics(decoder: BaseDecoder, test: Dataset, states: np.ndarray, values: np.ndarray,
             *, block_s: float, n_permutations: int, seed: int) -> dict[str, Any]:
    if decoder.continuous_targets:
        if test.targets is None:
            raise ConfigError(f"{test.name} has no continuous targets to score "
                              f"{decoder.name} against")
        return {"hops": int(states.size),
                **continuous_metrics(test.targets, values, decoder.output_schema_.output_names)}
    seen = decoder.n_states
    extra = sorted(set(np.unique(test.y[test.y >= 0]).tolist()) - set(range(seen)))
    if extra:
        raise ConfigError(f"test set {test.name} has state(s) {extra} that the decoder never "
                          "saw; evaluate on data with the decoder's states")
    return classification_metrics(test.y, states, test.state_names, test.hop_s,
                                  block_hops=max(1, round(block_s / test.hop_s)),
                                  n_permutations=n_permutations, seed=seed)


def evaluate_datasets(specs: Sequence[DecoderSpec], scenario: Scenario, *,
                      train: Dataset | None, tests: Sequence[Dataset], folds: int | None = None,
                      gap_s: float = 2.0, block_s: float = 4.0, n_permutations: int = 200,
                      seed: int = 0) -> list[dict[str, Any]]:
    """:func:`evaluate` on datasets already loaded (all with the features the decoders read:
    one call per feature kind)."""
    rows: list[dict[str, Any]] = []
    for spec in specs:
        for test in tests:
            if folds:
                states = np.full(test.n_hops, -1, dtype=np.int64)
                n_out = None
                values: np.ndarray | None = None
                dec: BaseDecoder | None = None
                for tr, te in blocked_folds(test.n_hops, folds,
                                            int(math.ceil(gap_s / test.hop_s))):
                    dec = fit_decoder(spec, scenario, test.subset(tr))
                    s, v = decode_sequence(dec, test.X[te])
                    states[te] = s
                    if values is None:
                        n_out = v.shape[1]
                        values = np.full((test.n_hops, n_out), np.nan)
                    values[te] = v
                assert dec is not None and values is not None
                mode = f"blocked CV, {folds} folds, gap {gap_s:g} s"
            else:
                if spec.path is not None:
                    dec = load_decoder(spec.path)
                    mode = "trained file"
                elif train is None:
                    raise ConfigError("give --train DATA (or --folds N) so that the decoders "
                                      "can be fitted")
                else:
                    dec = fit_decoder(spec, scenario, train)
                    mode = f"train {train.name}"
                states, values = decode_sequence(dec, test.X)
            row: dict[str, Any] = {"decoder": spec.label, "kind": spec.kind,
                                   "dataset": test.name, "mode": mode}
            row.update(_metrics(dec, test, states, values, block_s=block_s,
                                n_permutations=n_permutations, seed=seed))
            rows.append(row)
    return rows


def evaluate(scenario: Scenario, decoders: Sequence[str | DecoderSpec], *,
             train: Sequence[str] = (), test: Sequence[str] = (), folds: int | None = None,
             gap_s: float = 2.0, block_s: float = 4.0, duration_s: float | None = None,
             n_permutations: int = 200, seed: int = 0,
             progress: bool = False) -> list[dict[str, Any]]:
    """Evaluate decoders offline; one row of metrics per decoder and test set.

    Parameters
    ----------
    scenario : Scenario
        Feature pipeline, states, source design.
    decoders : sequence of str or DecoderSpec
        ``KIND[:key=value,...]`` or trained decoder files.
    train : sequence of str
        Datasets to fit on (concatenated); with ``test``.
    test : sequence of str
        Datasets to test on; with ``folds``, the datasets cross-validated.
    folds : int, optional
        Blocked cross-validation with this many folds (instead of ``train``).
    gap_s : float
        Hops left out of training on each side of a test fold.
    block_s : float
        Block length of the label permutations for the chance level (about one trial).
    duration_s : float, optional
        Length of each dataset read (synthetic runs default to the calibration length).
    n_permutations : int
    seed : int
        Seed of the permutations.
    progress : bool
        Progress bars on a terminal.

    Returns
    -------
    list of dict
        ``decoder``, ``kind``, ``dataset``, ``mode`` and the metrics.
    """
    with single_threaded_blas():
        return _evaluate(scenario, decoders, train=train, test=test, folds=folds, gap_s=gap_s,
                         block_s=block_s, duration_s=duration_s,
                         n_permutations=n_permutations, seed=seed, progress=progress)


def _evaluate(scenario: Scenario, decoders: Sequence[str | DecoderSpec], *,
              train: Sequence[str], test: Sequence[str], folds: int | None, gap_s: float,
              block_s: float, duration_s: float | None, n_permutations: int, seed: int,
              progress: bool) -> list[dict[str, Any]]:
    specs = [d if isinstance(d, DecoderSpec) else parse_decoder_spec(d) for d in decoders]
    if not specs:
        raise ConfigError("no decoder to evaluate; give --decoder KIND (e.g. lda, riemann)")
    if not test:
        raise ConfigError("no test data; give --test DATA (a recording, an EDF file or "
                          "synthetic:SEED)")
    if folds is None and not train and not all(s.path for s in specs):
        raise ConfigError("give --train DATA to fit on, or --folds N for cross-validation")
    rows: list[dict[str, Any]] = []
    kinds = sorted({s.cls.features for s in specs})
    for kind in kinds:
        sc = scenario_for_features(scenario, kind)
        group = [s for s in specs if s.cls.features == kind]
        tr = None
        if train and folds is None:
            parts = [load_dataset(t, sc, duration_s=duration_s, progress=progress)
                     for t in train]
            tr = parts[0] if len(parts) == 1 else Dataset(
                "+".join(p.name for p in parts), np.concatenate([p.X for p in parts]),
                np.concatenate([p.y for p in parts]), parts[0].hop_s, parts[0].state_names)
        tests = [load_dataset(t, sc, duration_s=duration_s, progress=progress) for t in test]
        rows.extend(evaluate_datasets(group, sc, train=tr, tests=tests, folds=folds,
                                      gap_s=gap_s, block_s=block_s,
                                      n_permutations=n_permutations, seed=seed))
    order = {s.label: i for i, s in enumerate(specs)}
    rows.sort(key=lambda r: order[r["decoder"]])
    return rows
