"""Make N one-minute bsi recordings for measuring a corpus check (docs/ci.md, "Measured").

Usage: ``python examples/ci/make_corpus.py OUT N`` writes ``OUT/bsi.npz`` (a decoder trained
once) and ``OUT/corpus/bsi-00`` ... (``neuroloop run --fast --duration 60 --record``, seeds
1..N), all in this one process so the compiled kernels load once. Existing recordings are kept.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from neuroloop.cli import main


def make(out: Path, n: int) -> None:
    decoder = out / "bsi.npz"
    out.mkdir(parents=True, exist_ok=True)
    if not decoder.exists():
        assert main(["train", "--scenario", "bsi", "--duration", "60", "--out",
                     str(decoder)]) == 0
    for i in range(n):
        d = out / "corpus" / f"bsi-{i:02d}"
        if d.exists():
            continue
        handler = signal.getsignal(signal.SIGINT)  # `run` installs its own
        code = main(["run", "--scenario", "bsi", "--fast", "--duration", "60", "--seed",
                     str(i + 1), "--decoder", str(decoder), "--record", str(d), "--json"])
        signal.signal(signal.SIGINT, handler)
        assert code == 0, f"recording {d} failed"


if __name__ == "__main__":
    make(Path(sys.argv[1]), int(sys.argv[2]))
