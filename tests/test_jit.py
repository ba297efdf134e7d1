"""The Numba options in one place: the vector width neuroloop asks for never changes a bit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

_SCRIPT = r"""
import sys
import numpy as np
import numba
from neuroloop.dsp import FeaturePipeline
from neuroloop.acquisition.synthetic import SyntheticSource

src = SyntheticSource("bsi", seed=5).open()
x = np.empty((59 * 40, 64)); lab = np.empty(59 * 40, np.int8)
src.read_into(x, lab)
pipe = FeaturePipeline(64, 586.0, 59, [[8, 12], [13, 20], [20, 30], [30, 45], [55, 70],
                       [70, 90], [90, 110], [110, 140]], notch_hz=[50.0, 100.0, 150.0])
rows = [pipe.step(x[i:i + 59]).copy() for i in range(0, x.shape[0], 59)]
np.save(sys.argv[1], np.concatenate([x.ravel(), np.concatenate(rows)]))
print(numba.config.CPU_FEATURES or "")
"""


def _run(tmp_path, name: str, width: str) -> tuple[np.ndarray, str]:
    out = tmp_path / f"{name}.npy"
    env = dict(os.environ)
    env.pop("NUMBA_CPU_FEATURES", None)
    env.pop("NUMBA_CPU_NAME", None)
    env["NEUROLOOP_VECTOR_WIDTH"] = width
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(out)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    return np.load(out), done.stdout.strip()


def test_the_vector_width_changes_no_bit_of_the_stream_or_the_features(tmp_path) -> None:
    """Each lane of a wider vector does the same IEEE operations in the same order: the
    synthetic patient and the feature pipeline compiled for 512-bit vectors (where the host
    has AVX-512) give exactly the bytes of the 256-bit build."""
    import llvmlite.binding as ll

    wide, wide_features = _run(tmp_path, "wide", "")
    narrow, narrow_features = _run(tmp_path, "narrow", "256")
    assert narrow_features == ""  # the opt-out leaves Numba's own choice
    if "+avx512f" in ll.get_host_cpu_features().flatten().split(","):
        assert wide_features.endswith(",-prefer-256-bit")
    else:
        assert wide_features == ""
    assert wide.tobytes() == narrow.tobytes()


def test_a_users_own_cpu_features_are_left_alone() -> None:
    env = dict(os.environ, NUMBA_CPU_FEATURES="+sse2")
    env.pop("NEUROLOOP_VECTOR_WIDTH", None)
    done = subprocess.run(
        [sys.executable, "-c", "import neuroloop._jit as j, numba; "
         "print(j._prefer_full_vector_width(), numba.config.CPU_FEATURES)"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "+sse2"]


@pytest.mark.parametrize("value", ["256", " 256 "])
def test_the_opt_out_is_read_from_the_environment(monkeypatch, value) -> None:
    import neuroloop._jit as j

    monkeypatch.setenv("NEUROLOOP_VECTOR_WIDTH", value)
    assert j._prefer_full_vector_width() is False
