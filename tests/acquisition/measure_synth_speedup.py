"""Old (scalar, ``synth_block_v1``) against new (vectorised) synthetic patient, us per hop.

Not a test (the suite never asserts on time): run it from the repository root to re-measure
the speed-up of the patient kernel on this machine::

    .venv/bin/python tests/acquisition/measure_synth_speedup.py [rounds] [hops]

Both paths are ``SyntheticSource._generate`` of one hop (59 samples bsi, 25 eeg-bci; the
prefetch thread's call, Python and dispatch included), on two sources with the same seed.
They run alternately, ``hops`` calls per round, timed with this thread's CPU time
(``time.thread_time``, robust when the machine is shared); the best round is reported, and
the last hops of the two must be identical byte for byte.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_block_v1 import synth_block_v1  # noqa: E402

from neuroloop.acquisition import _synth_kernels as K  # noqa: E402
from neuroloop.acquisition.synthetic import SyntheticSource  # noqa: E402


class ScalarSource(SyntheticSource):
    """The same source with the scalar kernel (and its old argument layout) in _generate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        m = self._model
        n_src = m.sos.shape[0]
        self._sos = K.pack_sections(m.sos, m.n_sections)
        self._lf = K.lead_field_by_channel(m.mix_ptr, m.mix_ch, m.mix_w, self.info.n_channels)
        self._env = np.ones(n_src)
        self._target = np.ones(n_src)
        self._scratch2 = np.zeros((2, n_src))

    def _generate(self, n: int, out: np.ndarray, labels: np.ndarray) -> None:
        first = self._next_index
        self._ensure_horizon(first + n)
        m = self._model
        a = self.artifacts
        s = self.schedule
        synth_block_v1(n, first, out, labels, s.onsets, s.states, s.strengths, self._cursor,
                       self._rng, self._sos, self._zi, m.logmod, self._env, self._target,
                       self._env_alpha, *self._lf, m.line_hz, m.line_a, m.line_b,
                       self.info.sampling_rate_hz, self.rail_uv, a.onset, a.length, a.kind,
                       a.amp, a.tau, a.weights, a.hold, self._scratch2)
        self._next_index = first + n


def main(rounds: int = 20, hops: int = 300) -> None:
    for preset, hop in (("bsi", 59), ("eeg-bci", 25)):
        srcs = {"old": ScalarSource(preset, seed=1), "new": SyntheticSource(preset, seed=1)}
        bufs = {}
        for name, src in srcs.items():
            src.warmup()
            bufs[name] = (np.zeros((hop, src.info.n_channels)), np.zeros(hop, np.int8))
        best = {"old": np.inf, "new": np.inf}
        for _ in range(rounds):
            for name, src in srcs.items():
                out, lab = bufs[name]
                t = time.thread_time()
                for _ in range(hops):
                    src._generate(hop, out, lab)
                best[name] = min(best[name], (time.thread_time() - t) / hops * 1e6)
        same = np.array_equal(bufs["old"][0].view(np.uint64), bufs["new"][0].view(np.uint64))
        print(f"{preset:8s} hop {hop}: old {best['old']:6.1f} us/hop  new {best['new']:6.1f} "
              f"us/hop  speed-up {best['old'] / best['new']:.2f}x  (identical: {same})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
