"""Test helper, run as its own process: an LSL inlet on neuroloop's outlets (``--lsl-out``).

    python tests/io/lsl_capture.py PREFIX OUT.npz [--timeout 120] [--ready FILE]

Resolves ``PREFIX-decoder``, ``PREFIX-stimulation`` and ``PREFIX-markers`` (as LabRecorder
would), pulls until the ``stop`` marker has arrived (or ``--timeout``), and saves what it got:
``decoder``/``decoder_ts``, ``stimulation``/``stimulation_ts``, ``markers`` (JSON texts),
``markers_ts`` and each stream's meta-data (channel labels, units, the neuroloop node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("prefix")
    p.add_argument("out")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--ready", default=None)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from neuroloop.acquisition.lsl import configure_liblsl

    configure_liblsl()
    from mne_lsl.lsl import StreamInlet, resolve_streams

    if args.ready:
        Path(args.ready).write_text("ready\n")
    end = time.monotonic() + args.timeout
    inlets = {}
    meta = {}
    keys = ("decoder", "stimulation", "markers")
    found: dict = {}
    while len(found) < 3 and time.monotonic() < end:  # as LabRecorder: resolve, then subscribe
        for info in resolve_streams(timeout=0.2):
            for key in keys:
                if info.name == f"{args.prefix}-{key}":
                    found[key] = info
    if len(found) < 3:
        sys.stderr.write(f"streams of {args.prefix} not found\n")
        return 3
    for key in keys:
        inlets[key] = StreamInlet(found[key], max_buffered=600)
        inlets[key].pull_chunk(timeout=0.0)  # subscribes now (open_stream sleeps 0.5 s)
    for key in keys:
        inlet = inlets[key]
        sinfo = inlet.get_sinfo(timeout=10)
        node = sinfo.desc.child("neuroloop")
        intentions = []
        child = node.child("intentions").child("intention")
        while not child.empty():
            intentions.append(child.first_child().value())
            child = child.next_sibling()
        meta[key] = {"labels": sinfo.get_channel_names(), "units": sinfo.get_channel_units(),
                     "types": sinfo.get_channel_types(), "type": sinfo.stype,
                     "rate": sinfo.sfreq,
                     "scenario": node.child("scenario").first_child().value(),
                     "intentions": intentions}
    got = {k: [] for k in inlets}
    stamps = {k: [] for k in inlets}
    stopped = False
    while time.monotonic() < end:
        for key, inlet in inlets.items():
            data, ts = inlet.pull_chunk(timeout=0.0, max_samples=4096)
            if len(ts):
                if key == "markers":
                    texts = [row[0] for row in data]
                    got[key].extend(texts)
                    stopped = stopped or any(json.loads(t).get("kind") == "stop"
                                             for t in texts)
                else:
                    got[key].append(np.array(data, dtype=np.float64))
                stamps[key].extend(float(t) for t in ts)
        if stopped:
            time.sleep(0.3)  # the last samples of the numeric streams
            for key in ("decoder", "stimulation"):
                data, ts = inlets[key].pull_chunk(timeout=0.2, max_samples=4096)
                if len(ts):
                    got[key].append(np.array(data, dtype=np.float64))
                    stamps[key].extend(float(t) for t in ts)
            break
        time.sleep(0.02)
    np.savez(args.out,
             decoder=np.concatenate(got["decoder"]) if got["decoder"] else np.zeros((0, 0)),
             decoder_ts=np.array(stamps["decoder"]),
             stimulation=(np.concatenate(got["stimulation"]) if got["stimulation"]
                          else np.zeros((0, 0))),
             stimulation_ts=np.array(stamps["stimulation"]),
             markers=json.dumps(got["markers"]), markers_ts=np.array(stamps["markers"]),
             meta=json.dumps(meta), stopped=stopped)
    return 0 if stopped else 4


if __name__ == "__main__":
    raise SystemExit(main())
