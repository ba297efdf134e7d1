"""``neuroloop replay`` (one recording or a whole corpus) and ``neuroloop diff-baseline``.

With one recording directory, ``replay DIR [--check]`` prints the run summary and the check as
it always did. With several, a directory of recordings, a glob, ``--accept`` or ``--junit`` it
checks a corpus: every recording on its own core, one line each and a total; exit 0 all
identical, 1 any divergence, 2 any recording that could not be replayed (named).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import _checks as B
from ..errors import ConfigError, NeuroloopError, RecordingError

__all__ = ["register", "COMMANDS"]

_JOBS = B.Range(1, 1024, integer=True)
_AGAINST = {"auto": "auto", "recording": "recording", "baseline": "required"}


def _jobs(text: str) -> int:
    try:
        value: Any = int(text)
    except ValueError:
        value = text
    try:
        return int(B.check_number("", value, _JOBS, hint="e.g. 2", shown=text))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    """Add ``replay`` and ``diff-baseline`` to the sub-parsers."""
    rep = sub.add_parser(
        "replay", help="replay recordings through the current pipeline (and check them)",
        description="Replay one recording, or check a corpus (several DIRs, a directory of "
        "recordings, or a quoted glob) in parallel: one line per recording and a total; exit 0 "
        "all identical, 1 any divergence, 2 any recording that could not be replayed. See "
        "docs/ci.md.")
    rep.add_argument("paths", nargs="+", metavar="DIR",
                     help="recording directories, directories holding recordings, or globs")
    rep.add_argument("--decoder", metavar="FILE", help="decoder file (default: the recorded one "
                     "when it was saved in the recording)")
    rep.add_argument("--config", metavar="FILE", help="scenario file (default: the recorded one)")
    mode = rep.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="compare every cycle with the recording's baseline (DIR/baseline.npz) "
                      "when it has one, else with the decisions recorded live; exit 1 on "
                      "divergence")
    mode.add_argument("--accept", action="store_true",
                      help="write DIR/baseline.npz: the current code's decisions, which later "
                      "checks compare with (review the change first: --check --explain)")
    rep.add_argument("--against", choices=sorted(_AGAINST), default="auto",
                     help="with --check: auto (the baseline when there is one, default), "
                     "recording (the live decisions), baseline (a missing baseline is an error)")
    rep.add_argument("--tolerances", metavar="FILE", default="default",
                     help="what counts as a change per field: a TOML file (see "
                     "examples/ci/tolerances.toml), 'default' or 'exact' (default: default)")
    rep.add_argument("--explain", action="store_true",
                     help="with --check: summarise each divergence (states, programs, "
                     "amplitudes, interlock events; counts and first cycles)")
    rep.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per "
                     "recording) for the CI's test view")
    rep.add_argument("--jobs", type=_jobs, metavar="N",
                     help="recordings replayed at once, 1..1024 (default: one per CPU)")
    rep.add_argument("--json", action="store_true", help="one JSON object on stdout")

    dif = sub.add_parser(
        "diff-baseline", help="summarise what changed between two baselines",
        description="Compare two baselines of the same recording (e.g. the one on main and the "
        "one in a pull request): states, programs, supervisor states, amplitudes and interlock "
        "events, with counts and first cycles. A directory stands for its baseline.npz. Exit 0 "
        "no change, 1 changes.")
    dif.add_argument("before", metavar="A", help="baseline file (or recording directory)")
    dif.add_argument("after", metavar="B", help="baseline file (or recording directory)")
    dif.add_argument("--tolerances", metavar="FILE", default="default",
                     help="tolerance file, 'default' or 'exact' (default: default)")
    dif.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _eprint(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _is_single(args: argparse.Namespace) -> bool:
    """One recording directory, nothing corpus-only asked: the single-recording command."""
    if len(args.paths) != 1 or args.accept or args.junit or args.jobs:
        return False
    p = Path(args.paths[0])
    return not p.is_dir() or (p / "meta.json").exists() or not p.exists()


def _cmd_replay(args: argparse.Namespace) -> int:
    from ..io.tolerances import load_tolerances

    if (args.junit or args.explain or args.against != "auto") and not (args.check
                                                                      or args.accept):
        raise ConfigError("--junit, --explain and --against need --check (or --accept); add "
                          "--check")
    tolerances = load_tolerances(args.tolerances)  # a bad file stops everything: one line
    if _is_single(args):
        return _single(args, tolerances)
    return _corpus(args, tolerances)


def _single(args: argparse.Namespace, tolerances: Any) -> int:
    from ..io.replay import replay_recording

    directory = args.paths[0]
    try:
        return replay_recording(directory, decoder_path=args.decoder, config_path=args.config,
                                check=args.check, as_json=args.json,
                                progress=(lambda m: None) if args.json
                                else (lambda m: _eprint(f"neuroloop: {m}")),
                                tolerances=tolerances, baseline=_AGAINST[args.against],
                                explain=args.explain)
    except (NeuroloopError, KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # exit 1 means a divergence and nothing else: any failure is 2
        if os.environ.get("NEUROLOOP_DEBUG"):
            raise
        raise RecordingError(
            f"replay of {directory} failed ({type(exc).__name__}: {exc}); the recording "
            "is probably corrupt: re-record it (NEUROLOOP_DEBUG=1 shows the traceback; please "
            "report it)") from None


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def _corpus(args: argparse.Namespace, tolerances: Any) -> int:
    from ..io.check import ACCEPTED, DIVERGED, accept_recording, check_recording
    from ..io.corpus import find_recordings, run_corpus
    from ..io.junit import check_junit_path, write_junit
    from ..progress import Progress

    if not (args.check or args.accept):
        raise ConfigError("replaying several recordings needs --check (compare) or --accept "
                          "(write baselines); add --check")
    if args.junit:
        check_junit_path(args.junit)  # before replaying anything
    recordings = find_recordings(args.paths)
    if args.accept:
        task: Any = functools.partial(accept_recording, tolerances=tolerances,
                                      decoder_path=args.decoder, config_path=args.config)
    else:
        task = functools.partial(check_recording, tolerances=tolerances,
                                 baseline=_AGAINST[args.against], decoder_path=args.decoder,
                                 config_path=args.config, explain=args.explain)
    if not args.json:
        sys.stdout.write(f"{'accepting' if args.accept else 'checking'} {len(recordings)} "
                         f"recording{'s' if len(recordings) != 1 else ''} (tolerances "
                         f"{tolerances.source})\n")
        sys.stdout.flush()

    with Progress(len(recordings), "replay", unit="recording", as_json=args.json) as bar:
        def show(result: Any) -> None:
            bar.update(1)
            if args.json:
                return
            sys.stdout.write(result.line() + "\n")
            if result.status == ACCEPTED and result.explain and not result.explain["identical"]:
                sys.stdout.write(_indent(result.explain_text))
            sys.stdout.flush()
            if result.status == DIVERGED:
                sys.stderr.write(f"{result.path}:\n" + _indent(result.detail))
                if result.explain_text:
                    sys.stderr.write(_indent(result.explain_text))
                sys.stderr.flush()

        results, total = run_corpus(recordings, task, jobs=args.jobs, on_result=show)
    if args.junit:
        write_junit(args.junit, results, wall_s=total.wall_s,
                    suite="neuroloop replay --accept" if args.accept else "neuroloop replay",
                    properties={"tolerances": tolerances.source,
                                "against": args.against, "workers": str(total.workers)})
    if args.json:
        out = {"recordings": [r.to_dict() for r in results], "total": total.to_dict(),
               "tolerances": tolerances.to_dict(), "junit": args.junit}
        sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
    else:
        sys.stdout.write(total.line() + (f"; JUnit XML in {args.junit}" if args.junit else "")
                         + "\n")
    sys.stdout.flush()
    return total.exit_code


def _cmd_diff_baseline(args: argparse.Namespace) -> int:
    from ..io.baseline import diff_baselines, read_baselines
    from ..io.tolerances import load_tolerances

    tolerances = load_tolerances(args.tolerances)
    a, b = read_baselines([args.before, args.after])
    if a.fingerprint != b.fingerprint:
        raise ConfigError(f"{a.path} and {b.path} are baselines of different recordings "
                          f"({(a.meta.get('recording') or {}).get('path')} and "
                          f"{(b.meta.get('recording') or {}).get('path')}); compare two "
                          "baselines of the same recording")
    diff = diff_baselines(a, b, tolerances, labels=(a.describe(), b.describe()))
    if args.json:
        sys.stdout.write(json.dumps(diff.to_dict(), allow_nan=False) + "\n")
    else:
        sys.stdout.write(diff.format() + "\n")
    return 0 if diff.identical else 1


COMMANDS = {"replay": _cmd_replay, "diff-baseline": _cmd_diff_baseline}
