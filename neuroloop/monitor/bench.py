"""``neuroloop bench monitor``: what the live monitor's publisher costs one control cycle.

The bsi workload (64 channels x 59-sample hops, 512 features, 7 states, 16 contacts, 3
outputs), time compressed by ``speedup``, with a real server process reading the channel
(no page connected). The reference path does only the copies the publisher cannot avoid
(the record's bytes into a slot, four channels into a ring) with plain NumPy, in the same run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..records import cycle_dtype
from ..stats import latency_stats_us

__all__ = ["bench_monitor"]


def bench_monitor(n_hops: int = 2000, warmup_hops: int = 200, *, speedup: float = 50.0,
                  n_channels: int = 64, sampling_rate_hz: float = 586.0, hop_samples: int = 59,
                  n_features: int = 512, n_states: int = 7, n_contacts: int = 16,
                  n_outputs: int = 3, serve: bool = True) -> dict[str, Any]:
    """Per-cycle cost of ``MonitorPublisher.on_samples + on_cycle`` and of the bare copies.

    Returns
    -------
    dict
        ``{"workload", "n_hops", "neuroloop_us", "reference_us", "speedup_median",
        "server_cycles_skipped"}``.
    """
    from ..runtime.clock import WallClock
    from . import channel as C
    from .address import bind_monitor_socket, parse_monitor_address
    from .publisher import MonitorPublisher, OperatorControl, selected_channels

    rng = np.random.default_rng(0)
    pool = rng.normal(0.0, 50.0, (8, hop_samples, n_channels))
    block = np.zeros((hop_samples, n_channels))
    row = np.zeros(1, dtype=cycle_dtype(n_features, n_states, n_contacts, n_outputs))
    row["features"] = rng.normal(size=(1, n_features))
    meta = {"n_features": n_features, "n_states": n_states, "n_contacts": n_contacts,
            "output_names": [f"o{i}" for i in range(n_outputs)],
            "output_units": ["1"] * n_outputs, "intention_names": [str(i) for i in range(n_states)],
            "hop_samples": hop_samples, "scenario": "bench", "config": {},
            "channels": {"names": [f"E{i}" for i in range(n_channels)],
                         "sampling_rate_hz": sampling_rate_hz}}
    sock = bind_monitor_socket(parse_monitor_address("0")) if serve else None
    pub = MonitorPublisher(sock, OperatorControl(), "bench", spawn=serve)
    if serve:
        pub.start_server()
    pub.on_start(meta)
    # reference: the same bytes into plain NumPy buffers
    ref_slots = np.zeros((C.N_SLOTS, row.dtype.itemsize), np.uint8)
    sel = selected_channels(n_channels)
    ref_ring = np.zeros((4096, len(sel)))
    row_u8 = row.reshape(-1).view(np.uint8)
    total = warmup_hops + n_hops
    t_pub = np.zeros(total, np.int64)
    t_ref = np.zeros(total, np.int64)
    clock = WallClock()
    perf = time.perf_counter_ns
    period_ns = int(hop_samples / sampling_rate_hz / speedup * 1e9)
    next_t = perf()
    try:
        for k in range(total):
            np.copyto(block, pool[k % 8])
            row["cycle"] = k
            t0 = perf()
            pub.on_samples(block, k * hop_samples)
            pub.on_cycle(row)
            t1 = perf()
            np.copyto(ref_slots[k % C.N_SLOTS], row_u8)
            i = (k * hop_samples) % (4096 - hop_samples)
            for j, ch in enumerate(sel):
                ref_ring[i:i + hop_samples, j] = block[:, ch]
            t2 = perf()
            t_pub[k], t_ref[k] = t1 - t0, t2 - t1
            next_t += period_ns
            clock.sleep_until(next_t)
        stats = pub.stats()
    finally:
        pub.close()
    neuro = latency_stats_us(t_pub[warmup_hops:])
    ref = latency_stats_us(t_ref[warmup_hops:])
    return {"workload": "monitor", "description": "live-monitor publisher per cycle (bsi), "
            "a server process reading; reference: the bare NumPy copies",
            "n_hops": n_hops, "warmup_hops": warmup_hops, "neuroloop_us": neuro,
            "reference_us": ref, "speedup_median": ref["p50"] / neuro["p50"],
            "server_cycles_skipped": stats.get("cycles_skipped_by_server")}
