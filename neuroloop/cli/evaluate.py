"""``neuroloop evaluate``: decoders offline on recordings, EDF/BDF files or synthetic runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _checks as B

__all__ = ["register", "COMMANDS"]

_FOLDS = B.Range(2, 100, integer=True)
_GAP_S = B.Range(0.0, 3600.0, unit="s")
_BLOCK_S = B.Range(0.0, 3600.0, lo_open=True, unit="s")
_PERMUTATIONS = B.Range(0, 100_000, integer=True)
_DURATION_S = B.Range(0.0, 86400.0, lo_open=True, unit="s")

#: Columns of the terminal table.
COLUMNS = (("decoder", "decoder"), ("dataset", "dataset"), ("hops", "hops"),
           ("accuracy", "acc"), ("balanced_accuracy", "bal_acc"), ("kappa", "kappa"),
           ("itr_bits_per_min", "ITR b/min"), ("onset_latency_s", "onset s"),
           ("false_activations_per_min", "FA/min"), ("chance_accuracy", "chance"),
           ("chance_p95", "chance95"), ("p_value", "p"), ("r2", "R2"),
           ("correlation", "r"))


def register(sub: Any) -> None:
    from . import _bounded, _scenario_args

    p = sub.add_parser("evaluate", help="evaluate decoders offline (train/test or blocked CV)",
                       description="Fit decoders on one data set and test them on another, "
                       "or cross-validate in contiguous blocks with a gap; metrics per decoder: "
                       "accuracy, balanced accuracy, Cohen's kappa, confusion, Wolpaw ITR, "
                       "onset latency, false activations per minute of rest, R2/correlation "
                       "for continuous outputs, and the block-permutation chance level. DATA "
                       "is a recording directory, an EDF/BDF file or URL "
                       "(edf://F?labels=T1:left,T2:right), or synthetic[:SEED].")
    _scenario_args(p)
    p.add_argument("--decoder", action="append", default=[], metavar="KIND[:k=v,...]|FILE",
                   help="a registered decoder kind with parameters (lda, riemann, csp-lda, "
                   "kalman, adaptive, plugins; e.g. riemann:lr_c=0.1,gate=false) or a trained "
                   "decoder file (repeatable)")
    p.add_argument("--train", action="append", default=[], metavar="DATA",
                   help="data to fit on (repeatable: concatenated)")
    p.add_argument("--test", action="append", default=[], metavar="DATA",
                   help="data to test on (repeatable: one row each); with --folds, the data "
                   "cross-validated")
    p.add_argument("--folds", type=_bounded(_FOLDS, "e.g. 5"), metavar="N",
                   help="blocked cross-validation in time with N contiguous folds (2..100)")
    p.add_argument("--gap", type=_bounded(_GAP_S, "e.g. 2"), default=2.0, metavar="S",
                   help="seconds left out of training on each side of a test fold (default 2)")
    p.add_argument("--block", type=_bounded(_BLOCK_S, "about one trial, e.g. 4"), default=4.0,
                   metavar="S", help="block length of the label permutations for the chance "
                   "level (default 4 s)")
    p.add_argument("--permutations", type=_bounded(_PERMUTATIONS, "e.g. 200"), default=200,
                   metavar="N", help="label permutations for the chance level (default 200)")
    p.add_argument("--duration", type=_bounded(_DURATION_S, "e.g. 120"), metavar="S",
                   help="seconds read from each data set (synthetic default: the "
                   "scenario's calibration length)")
    p.add_argument("--seed", type=_bounded(B.SEED, "e.g. 0"), default=0, metavar="N",
                   help="seed of the permutations")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    p.add_argument("--list-decoders", action="store_true",
                   help="list the registered decoder kinds and exit")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..decoders import decoder_names
    from ..evaluation import evaluate
    from . import _load_scenario
    from ._table import print_table, rows_json, write_csv

    if args.list_decoders:
        sys.stdout.write("\n".join(decoder_names()) + "\n")
        return 0
    scenario = _load_scenario(args)
    rows = evaluate(scenario, args.decoder, train=args.train, test=args.test,
                    folds=args.folds, gap_s=args.gap, block_s=args.block,
                    duration_s=args.duration, n_permutations=args.permutations,
                    seed=args.seed, progress=not args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        sys.stdout.write(rows_json(rows, scenario=scenario.name) + "\n")
    else:
        cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
        print_table(rows, cols)
    return 0


COMMANDS = {"evaluate": _cmd_evaluate}
