"""Make N one-minute recordings (bsi, simulated clock) for the corpus-check target."""
import sys, signal
from pathlib import Path
from neuroloop.cli import main
out = Path(sys.argv[1]); n = int(sys.argv[2]); dec = out / "bsi.npz"
out.mkdir(parents=True, exist_ok=True)
if not dec.exists():
    assert main(["train", "--scenario", "bsi", "--duration", "60", "--out", str(dec)]) == 0
for i in range(n):
    d = out / "corpus" / f"bsi-{i:02d}"
    if d.exists():
        continue
    h = signal.getsignal(signal.SIGINT)
    assert main(["run", "--scenario", "bsi", "--fast", "--duration", "60", "--seed", str(i + 1),
                 "--decoder", str(dec), "--record", str(d), "--json"]) == 0
    signal.signal(signal.SIGINT, h)
