"""``neuroloop report DIR [--out FILE.html] [--png DIR] [--json]``: figures of a recording."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "COMMANDS"]


def register(sub: Any) -> None:
    """Add the ``report`` sub-parser."""
    rep = sub.add_parser(
        "report", help="an HTML report with figures of a recording",
        description="Write one self-contained HTML file (figures embedded as PNG, no network "
        "needed) of a session recording: intention, stimulation on the electrode layout, "
        "program envelopes, decoder outputs, supervisor and interlocks, latency, device link. "
        "Works on a recording killed mid-run and on a recording of a replay.")
    rep.add_argument("directory", metavar="DIR", help="session recording (run --record DIR)")
    rep.add_argument("--out", metavar="FILE.html",
                     help="HTML file to write (default DIR/report.html)")
    rep.add_argument("--png", metavar="DIR", help="also write each figure as DIR/<name>.png")
    rep.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _cmd_report(args: argparse.Namespace) -> int:
    from ..monitor.report import build_report

    result = build_report(args.directory, args.out, png_dir=args.png, as_json=args.json)
    if args.json:
        sys.stdout.write(json.dumps(dict(result)) + "\n")
    else:
        extra = f" and {len(result['png'])} PNG files in {args.png}" if result["png"] else ""
        sys.stdout.write(f"wrote {result['html']}{extra} ({len(result['figures'])} figures, "
                         f"{result['cycles']} cycles"
                         + ("" if result["closed_cleanly"] else ", recording not closed cleanly")
                         + ")\n")
    return 0


COMMANDS = {"report": _cmd_report}
