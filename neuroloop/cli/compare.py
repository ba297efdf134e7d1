"""``neuroloop compare``: decoders x recordings in closed loop through replay."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _checks as B

__all__ = ["register", "COMMANDS"]

COLUMNS = (("decoder", "decoder"), ("recording", "recording"), ("cycles", "cycles"),
           ("accuracy", "acc"), ("balanced_accuracy", "bal_acc"), ("kappa", "kappa"),
           ("false_activations_per_min", "FA/min"), ("stim_on_rest_fraction", "stim@rest"),
           ("first_stim_latency_s", "1st stim s"), ("stim_onsets", "stim onsets"),
           ("interlock_events", "interlocks"), ("chance_accuracy", "chance"))


def register(sub: Any) -> None:
    from . import _bounded

    p = sub.add_parser("compare", help="compare decoders in closed loop on recordings",
                       description="Replay each recording through the current pipeline once "
                       "per decoder: the decoder's output drives the control policy and the "
                       "safety supervisor, so what is compared is the stimulation delivered. "
                       "Prints the decoding metrics plus stimulation on-time during rest, time "
                       "to first stimulation after a true onset and interlock events.")
    p.add_argument("--decoder", action="append", default=[], metavar="KIND[:k=v,...]|FILE",
                   help="decoder kind with parameters or trained decoder file (repeatable)")
    p.add_argument("--recording", action="append", default=[], metavar="DIR",
                   help="a session directory (`neuroloop run --record DIR`; repeatable)")
    p.add_argument("--train", metavar="DATA", help="data to fit the decoders on (default: "
                   "the scenario's calibration source, as `neuroloop run` calibrates)")
    p.add_argument("--config", metavar="FILE", help="a scenario replacing the recordings' own "
                   "(same rate and channels)")
    p.add_argument("--duration", type=_bounded(B.Range(0.0, 86400.0, lo_open=True, unit="s"),
                                               "e.g. 120"),
                   metavar="S", help="seconds of training data read")
    p.add_argument("--png", metavar="FILE", help="write a figure of --metric per decoder and "
                   "recording")
    p.add_argument("--metric", default="balanced_accuracy", metavar="NAME",
                   help="metric of the figure (default balanced_accuracy)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import load_scenario
    from ..errors import ConfigError
    from ..evaluation import compare
    from ._table import print_table, rows_json, write_csv

    known = {k for k, _ in COLUMNS} | {"kappa", "itr_bits_per_min", "onset_latency_s",
                                       "chance_p95", "p_value", "invalid_fraction"}
    if args.metric not in known:
        raise ConfigError(f"--metric {args.metric!r} is not a compare metric; use one of "
                          f"{', '.join(sorted(known - {'decoder', 'recording', 'stim_onsets'}))}")
    scenario = load_scenario(Path(args.config)) if args.config else None
    rows = compare(args.decoder, args.recording, train=args.train, scenario=scenario,
                   duration_s=args.duration, figure=args.png, figure_metric=args.metric,
                   progress=not args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        sys.stdout.write(rows_json(rows, figure=args.png) + "\n")
    else:
        print_table(rows, [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)])
        if args.png:
            sys.stdout.write(f"figure: {args.png}\n")
    return 0


COMMANDS = {"compare": _cmd_compare}
