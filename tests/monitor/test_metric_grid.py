"""The shared metric-per-decoder-and-recording figure."""

import numpy as np

from neuroloop.monitor.metric_grid import metric_grid_png


def test_writes_a_png_with_one_bar_per_decoder_and_recording(tmp_path):
    import matplotlib.image

    rows = [
        {"decoder": "lda", "recording": "a", "accuracy": 0.9},
        {"decoder": "riemann", "recording": "a", "accuracy": 0.8},
        {"decoder": "lda", "recording": "b", "accuracy": float("nan")},  # a gap, not a crash
        {"decoder": "riemann", "recording": "b", "accuracy": 0.7},
    ]
    out = metric_grid_png(rows, "accuracy", tmp_path / "acc.png")
    img = matplotlib.image.imread(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    # not a blank canvas: the bars are drawn in colour
    assert np.ptp(img[..., :3]) > 0.5
