"""Test helper, run as its own process: stream an EDF file as an LSL outlet at its real rate.

    python tests/io/lsl_stream_edf.py FILE --name NAME [--chunk 16] [--wait-consumer 60]
        [--ready FILE] [--seconds S] [--rate-override HZ] [--drop-at SAMPLE:N]

The outlet (type ``EEG``, float64, the file's channel labels, unit ``microvolts``) is created,
``--ready`` is written, and the stream waits for its first consumer (``--wait-consumer``
seconds) before sample 0, so an inlet opened before the loop starts sees the file from its
first sample. Then every ``--chunk`` samples are pushed when their last one is due (sample
``i`` is due ``(i + 1) / rate`` after the start), stamped with the LSL clock at the push:
an amplifier that delivers blocks. ``--drop-at SAMPLE:N`` leaves out N samples (a gap).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--name", required=True)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--wait-consumer", type=float, default=60.0)
    p.add_argument("--ready", default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--rate-override", type=float, default=None,
                   help="announce this nominal rate instead of the file's (bad-input tests)")
    p.add_argument("--drop-at", default=None)
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to keep the outlet after the last sample")
    args = p.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from neuroloop.acquisition.lsl import configure_liblsl
    from neuroloop.io.edf import read_edf

    configure_liblsl()
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    data, fs, names, _ = read_edf(args.file)
    if args.seconds is not None:
        data = data[: int(args.seconds * fs)]
    info = StreamInfo(args.name, "EEG", data.shape[1], args.rate_override or fs, "float64",
                      f"edf-{args.name}")
    info.set_channel_names(list(names))
    info.set_channel_types("eeg")
    info.set_channel_units("microvolts")
    outlet = StreamOutlet(info, chunk_size=args.chunk)
    if args.ready:
        Path(args.ready).write_text("ready\n")
    if not outlet.wait_for_consumers(timeout=args.wait_consumer):
        sys.stderr.write("no consumer\n")
        return 3
    drop_at, drop_n = (int(x) for x in args.drop_at.split(":")) if args.drop_at else (-1, 0)
    t0 = time.perf_counter()
    n = data.shape[0]
    for start in range(0, n, args.chunk):
        stop = min(n, start + args.chunk)
        due = t0 + stop / fs
        while True:
            left = due - time.perf_counter()
            if left <= 0:
                break
            time.sleep(left - 0.0005 if left > 0.001 else 0)
        chunk = data[start:stop]
        if drop_at >= 0 and start <= drop_at < stop + drop_n:
            keep = [i for i in range(start, stop) if not drop_at <= i < drop_at + drop_n]
            if not keep:
                continue
            # stamp each kept sample at its own due time (a gap in the timestamps)
            now = local_clock()
            for i in keep:
                outlet.push_sample(data[i], timestamp=now - (stop - 1 - i) / fs)
            continue
        outlet.push_chunk(chunk, timestamp=local_clock())
    time.sleep(args.linger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
