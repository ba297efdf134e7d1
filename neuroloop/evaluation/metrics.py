"""The field's decoding metrics, per hop, from true and decoded states (and continuous values).

Conventions
-----------
* ``y_true``: int state per hop, ``-1`` for hops without a label (left out of every metric).
* ``y_pred``: int decoded state per hop, ``-1`` for an invalid output (counted as an error,
  shown as the ``invalid`` column of the confusion matrix).
* Rest is state 0 when the scenario has a state named ``rest`` (``rest_state``), else there is
  no rest and the rest-only metrics are None.

Information transfer rate (Wolpaw et al. 2002), per decision with ``N`` classes and accuracy
``P``: ``B = log2 N + P log2 P + (1 - P) log2((1 - P) / (N - 1))`` bits (0 when ``P <= 1/N``),
times the decision rate. Here a decision is one hop (``60 / hop_s`` per minute), the rate at
which the decoder updates the stimulation; consecutive hops are not independent trials, so
the figure is an upper bound and is comparable between decoders on the same hops, not across
paradigms.

Chance level: the accuracy of the same decoded states against labels permuted in contiguous
blocks (``block_hops``, about one trial), which keeps the label sequence's temporal structure;
its mean, its 95th percentile and the one-sided p-value of the observed accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion", "accuracy", "balanced_accuracy", "cohen_kappa", "wolpaw_bits",
           "itr_bits_per_min", "onset_latencies_s", "false_activations_per_min",
           "r2_scores", "correlations", "block_permutation_chance", "classification_metrics",
           "continuous_metrics"]


def _labelled(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape} true states but {y_pred.shape} decoded")
    keep = y_true >= 0
    return y_true[keep], y_pred[keep]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_states: int) -> np.ndarray:
    """Counts, shape (n_states, n_states + 1): row = true state, column = decoded state, last
    column = invalid output."""
    t, p = _labelled(y_true, y_pred)
    col = np.where((p >= 0) & (p < n_states), p, n_states)
    m = np.zeros((n_states, n_states + 1), dtype=np.int64)
    np.add.at(m, (t, col), 1)
    return m


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _labelled(y_true, y_pred)
    return float(np.mean(t == p)) if t.size else math.nan


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_states: int) -> float:
    """Mean per-state recall over the states present in ``y_true``."""
    m = confusion(y_true, y_pred, n_states)
    rows = m.sum(axis=1)
    present = rows > 0
    if not present.any():
        return math.nan
    return float(np.mean(np.diag(m[:, :n_states])[present] / rows[present]))


def cohen_kappa(y_true: np.ndarray, y_pred: np.ndarray, n_states: int) -> float:
    """Cohen's kappa: ``(p_o - p_e) / (1 - p_e)`` from the confusion matrix (an invalid
    output agrees with nothing)."""
    m = confusion(y_true, y_pred, n_states).astype(np.float64)
    n = m.sum()
    if n == 0:
        return math.nan
    po = np.trace(m[:, :n_states]) / n
    pe = float(np.sum(m.sum(axis=1) * m.sum(axis=0)[:n_states])) / (n * n)
    return float((po - pe) / (1.0 - pe)) if pe < 1.0 else math.nan


def wolpaw_bits(p: float, n_classes: int) -> float:
    """Bits per decision (Wolpaw); 0 at or below chance (1 / n_classes)."""
    if not math.isfinite(p) or n_classes < 2 or p <= 1.0 / n_classes:
        return 0.0
    if p >= 1.0:
        return math.log2(n_classes)
    return (math.log2(n_classes) + p * math.log2(p)
            + (1.0 - p) * math.log2((1.0 - p) / (n_classes - 1)))


def itr_bits_per_min(p: float, n_classes: int, decision_s: float) -> float:
    """Wolpaw ITR in bits/min at one decision every ``decision_s`` seconds."""
    return wolpaw_bits(p, n_classes) * 60.0 / decision_s


def _runs(y: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs of equal value: (value, start, stop)."""
    out = []
    start = 0
    for i in range(1, y.size + 1):
        if i == y.size or y[i] != y[start]:
            out.append((int(y[start]), start, i))
            start = i
    return out


def onset_latencies_s(y_true: np.ndarray, y_pred: np.ndarray, hop_s: float,
                      rest_state: int | None) -> tuple[list[float], int]:
    """Detection latency of every true onset of a movement state.

    An onset is the first hop of a run of movement state ``k`` (a state other than rest)
    preceded by another labelled state. Its latency is the time from that hop to the first
    hop of the run decoded as ``k``; an onset not decoded before the run ends is missed.

    Returns
    -------
    latencies_s : list of float
        One per detected onset.
    n_onsets : int
        Number of onsets (detected or missed).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    lat: list[float] = []
    n = 0
    prev = -1
    for k, a, b in _runs(y_true):
        if k >= 0 and k != rest_state and prev >= 0 and prev != k:
            n += 1
            hit = np.flatnonzero(y_pred[a:b] == k)
            if hit.size:
                lat.append(float(hit[0]) * hop_s)
        if k >= 0:
            prev = k
    return lat, n


def false_activations_per_min(y_true: np.ndarray, y_pred: np.ndarray, hop_s: float,
                              rest_state: int | None) -> float | None:
    """Decoded switches from rest (or invalid) into a movement state during true rest,
    per minute of true rest; None without a rest state or rest hops."""
    if rest_state is None:
        return None
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    rest = y_true == rest_state
    if not rest.any():
        return None
    moving = (y_pred >= 0) & (y_pred != rest_state)
    starts = moving & ~np.concatenate([[False], moving[:-1]])
    count = int(np.count_nonzero(starts & rest))
    return count / (float(rest.sum()) * hop_s / 60.0)


def r2_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per output (rows with a NaN are left out)."""
    t, p = np.atleast_2d(np.asarray(y_true, float).T).T, np.atleast_2d(np.asarray(y_pred,
                                                                               float).T).T
    ok = np.all(np.isfinite(t), axis=1) & np.all(np.isfinite(p), axis=1)
    t, p = t[ok], p[ok]
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def correlations(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation per output (rows with a NaN are left out)."""
    t, p = np.atleast_2d(np.asarray(y_true, float).T).T, np.atleast_2d(np.asarray(y_pred,
                                                                               float).T).T
    ok = np.all(np.isfinite(t), axis=1) & np.all(np.isfinite(p), axis=1)
    t, p = t[ok] - t[ok].mean(axis=0), p[ok] - p[ok].mean(axis=0)
    den = np.sqrt(np.sum(t ** 2, axis=0) * np.sum(p ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.sum(t * p, axis=0) / den, np.nan)


def block_permutation_chance(y_true: np.ndarray, y_pred: np.ndarray, block_hops: int,
                             n_permutations: int = 200, seed: int = 0
                             ) -> dict[str, float]:
    """Chance accuracy by permuting the labels in contiguous blocks.

    The labelled hops are cut into blocks of ``block_hops``; each permutation shuffles the
    block order of the true labels and scores the unchanged decoded states against them.

    Returns
    -------
    dict
        ``chance_accuracy`` (mean over permutations), ``chance_p95`` (95th percentile, the
        accuracy needed for p < 0.05) and ``p_value`` (``(1 + #(perm >= observed)) /
        (1 + n_permutations)``).
    """
    t, p = _labelled(y_true, y_pred)
    if t.size == 0:
        return {"chance_accuracy": math.nan, "chance_p95": math.nan, "p_value": math.nan}
    block = max(1, int(block_hops))
    n_blocks = max(1, t.size // block)
    starts = np.arange(n_blocks) * block
    rng = np.random.default_rng(seed)
    observed = float(np.mean(t == p))
    accs = np.empty(n_permutations)
    for i in range(n_permutations):
        order = rng.permutation(n_blocks)
        perm = np.concatenate([t[s:s + block] for s in starts[order]] + [t[n_blocks * block:]])
        accs[i] = np.mean(perm == p)
    # (an order statistic of accuracies, not a latency: stats.percentiles_us is for those)
    p95 = float(np.quantile(accs, 0.95)) if n_permutations else math.nan
    return {"chance_accuracy": float(np.mean(accs)) if n_permutations else math.nan,
            "chance_p95": float(p95),
            "p_value": float((1 + np.sum(accs >= observed)) / (1 + n_permutations))}


def _round(v: Any, nd: int = 4) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        return round(v, nd) if math.isfinite(v) else None
    return v


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, state_names: Sequence[str],
                           hop_s: float, *, block_hops: int, n_permutations: int = 200,
                           seed: int = 0) -> dict[str, Any]:
    """Every discrete metric of one decoded sequence (module docstring), JSON-ready."""
    k = len(state_names)
    rest = state_names.index("rest") if "rest" in state_names else None
    acc = accuracy(y_true, y_pred)
    lat, n_on = onset_latencies_s(y_true, y_pred, hop_s, rest)
    fa = false_activations_per_min(y_true, y_pred, hop_s, rest)
    chance = block_permutation_chance(y_true, y_pred, block_hops, n_permutations, seed)
    t, p = _labelled(y_true, y_pred)
    return {
        "hops": int(t.size),
        "accuracy": _round(acc),
        "balanced_accuracy": _round(balanced_accuracy(y_true, y_pred, k)),
        "kappa": _round(cohen_kappa(y_true, y_pred, k)),
        "itr_bits_per_min": _round(itr_bits_per_min(acc, k, hop_s), 2),
        "onset_latency_s": _round(float(np.median(lat)) if lat else None, 3),
        "onsets_detected": f"{len(lat)}/{n_on}",
        "false_activations_per_min": _round(fa, 3),
        "invalid_fraction": _round(float(np.mean(p < 0)) if p.size else None),
        "chance_accuracy": _round(chance["chance_accuracy"]),
        "chance_p95": _round(chance["chance_p95"]),
        "p_value": _round(chance["p_value"]),
        "confusion": confusion(y_true, y_pred, k).tolist(),
    }


def continuous_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                       output_names: Sequence[str]) -> dict[str, Any]:
    """R² and correlation per continuous output and their means, JSON-ready."""
    r2 = r2_scores(y_true, y_pred)
    cc = correlations(y_true, y_pred)
    out: dict[str, Any] = {"r2": _round(float(np.nanmean(r2)) if np.any(np.isfinite(r2))
                                        else None),
                           "correlation": _round(float(np.nanmean(cc))
                                                 if np.any(np.isfinite(cc)) else None)}
    for i, name in enumerate(output_names):
        out[f"r2_{name}"] = _round(float(r2[i]))
        out[f"correlation_{name}"] = _round(float(cc[i]))
    return out
