"""Offline evaluation and closed-loop comparison of decoders.

* :func:`evaluate` - fit and test decoders offline (train/test or blocked CV in time) with
  the field's metrics (:mod:`neuroloop.evaluation.metrics`);
* :func:`compare` - decoders x recordings in closed loop through replay: each decoder's
  output drives the policy and the supervisor, so what is compared is the stimulation
  actually delivered.

This layer sits above ``monitor`` and ``io`` (it replays recordings and draws the
metric-per-decoder figure) and below ``cli``.
"""

from __future__ import annotations

from .compare import compare
from .data import Dataset, load_dataset
from .evaluate import DecoderSpec, blocked_folds, evaluate, parse_decoder_spec
from .metrics import classification_metrics, continuous_metrics

__all__ = ["Dataset", "DecoderSpec", "blocked_folds", "classification_metrics", "compare",
           "continuous_metrics", "evaluate", "load_dataset", "parse_decoder_spec"]
