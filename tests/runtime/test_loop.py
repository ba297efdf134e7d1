"""The control loop: behaviour, not wall-clock time.

No allocation in the hot path, no JIT compile inside the loop, drift-free pacing, deadline
misses counted and reported to the supervisor, the GC frozen while running, listeners that
fail are detached, the stimulator always stopped at the end.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from neuroloop.records import FLAG_DEADLINE_MISSED, FLAG_SOURCE_STALL, LoopListener
from neuroloop.runtime.clock import Clock
from neuroloop.runtime.loop import FaultHooks
from neuroloop.runtime.session import RunOptions, Session
from neuroloop.safety.events import SupervisorState


def _session(scenario, decoder_file, **kw):
    opts = RunOptions(fast=kw.pop("fast", True), decoder_path=decoder_file, **kw)
    return Session(scenario, opts)


def test_fast_run_summary_fields(small_bsi, bsi_decoder_file) -> None:
    s = _session(small_bsi, bsi_decoder_file, duration_s=30.0)
    s.open()
    summary = s.run()
    assert summary["cycles"] == round(30.0 / small_bsi.hop_s)
    for key in ("compute_us", "e2e_us"):
        assert set(summary[key]) == {"p50", "p99", "p999", "max"}
    assert summary["jit_compiles_in_loop"] == 0
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["accuracy_hops"] > 200
    assert summary["intent_to_stim"]["onsets"] > 0
    assert isinstance(summary["interlock_events"], dict)
    assert s.stimulator.status()["stopped"] is True


def test_hot_path_does_not_allocate(small_bsi, bsi_decoder_file, monkeypatch) -> None:
    """No growth, and no per-cycle buffer: only a constant ~2 KiB of small-object churn.

    tracemalloc counts every thread, so the synthetic patient's producer thread (it boxes
    the arguments of its own kernel call per chunk, outside the loop) is switched off here;
    ``test_prefetched_loop_does_not_grow`` covers the loop with it running.

    Calling a Numba dispatcher from Python boxes its arguments (a constant few hundred bytes
    per call, freed at once). A per-cycle copy of any data buffer would show up as a peak at
    least the size of the feature vector (512 x 8 B = 4 KiB) or the hop (59 x 64 x 8 B =
    29.5 KiB), so the per-cycle peak bound below catches it. Cycles that raise interlock
    events (rare, exceptional path) may allocate their event objects and are not bounded.
    """
    from neuroloop.acquisition.synthetic import SyntheticSource

    monkeypatch.setattr(SyntheticSource, "start_prefetch", lambda self, n, **kw: False)
    s = _session(small_bsi, bsi_decoder_file, duration_s=200.0)
    loop = s.open()
    s.supervisor.arm(s.clock.now_ns())
    gc.collect()  # a full collection empties the interpreter's freelists: collect first,
    for _ in range(300):  # then reach steady state (stimulating, buffers touched, freelists
        assert loop._one_cycle()  # refilled), so the first measured cycle is not a refill
    peaks = np.zeros(1000, dtype=np.int64)
    growth = np.zeros(1000, dtype=np.int64)
    had_events = np.zeros(1000, dtype=np.bool_)
    tracemalloc.start()
    try:
        for i in range(1000):
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            assert loop._one_cycle()
            after, peak = tracemalloc.get_traced_memory()
            peaks[i] = peak - before
            growth[i] = after - before
            had_events[i] = loop.record["n_events"][0] > 0
    finally:
        tracemalloc.stop()
    quiet = ~had_events
    assert quiet.sum() > 500, "too few cycles without interlock events to judge"
    assert peaks[quiet].max() < 3072, f"a cycle allocated {peaks[quiet].max()} bytes at its peak"
    # A leak of one small object per cycle would be >= 16 KiB here. Event cycles are left out:
    # their event objects refill CPython's bounded tuple free lists, which looks like growth.
    assert growth[quiet].sum() < 1024, f"memory grew by {growth[quiet].sum()} bytes"


def test_prefetched_loop_does_not_grow(small_bsi, bsi_decoder_file) -> None:
    """With the patient produced in its own thread, memory still does not grow per cycle."""
    s = _session(small_bsi, bsi_decoder_file, duration_s=400.0)
    loop = s.open()
    assert s.source._producer is not None  # noqa: SLF001 - the producer runs
    s.supervisor.arm(s.clock.now_ns())
    for _ in range(300):
        assert loop._one_cycle()
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            assert loop._one_cycle()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16384, f"memory grew by {after - before} bytes over 2000 cycles"


def test_deadline_misses_counted_and_fault_latched(small_bsi, bsi_decoder_file) -> None:
    s = _session(small_bsi, bsi_decoder_file, duration_s=5.0, deadline_ms=1e-6)
    s.open()
    summary = s.run()
    assert summary["deadline_misses"] == summary["cycles"]
    assert s.supervisor.state == SupervisorState.FAULT
    assert any("deadline" in reason for reason in summary["interlock_events"])


class _RecordingClock(Clock):
    """A non-simulated clock whose sleeps are instantaneous and recorded."""

    simulated = False

    def __init__(self) -> None:
        self.t = 1_000_000_000
        self.targets: list[int] = []

    def now_ns(self) -> int:
        return self.t

    def sleep_until(self, t_ns: int) -> None:
        self.targets.append(t_ns)
        self.t = max(self.t, t_ns) + 37_000  # wake-up jitter must not accumulate


def test_pacing_is_drift_free(small_bsi, bsi_decoder_file) -> None:
    s = _session(small_bsi, bsi_decoder_file, fast=False)
    clock = _RecordingClock()
    s.clock = clock
    loop = s.open()
    n = 3000
    loop.run(max_cycles=n)
    t0 = loop.reader.t0_ns
    fs, hop = small_bsi.source.sampling_rate_hz, small_bsi.dsp.hop_samples
    expected = [t0 + round((k + 1) * hop * 1e9 / fs) for k in range(n)]
    # each hop: wake SHADOW_LEAD_NS early to warm the caches, then wait for the hop itself
    from neuroloop.runtime.shadow import SHADOW_LEAD_NS

    assert clock.targets == [t for due in expected for t in (due - SHADOW_LEAD_NS, due)]


class _Collect(LoopListener):
    def __init__(self) -> None:
        self.rows: list[bytes] = []

    def on_cycle(self, record) -> None:
        self.rows.append(record.tobytes())


def test_the_shadow_cycle_changes_nothing_the_loop_decides(small_bsi, bsi_decoder_file) -> None:
    """Paced runs warm the caches with a shadow cycle on copies; every record is the same
    as without it (times aside: the recording clock's jitter differs)."""
    runs = []
    for shadow in (True, False):
        listener = _Collect()
        s = _session(small_bsi, bsi_decoder_file, fast=False, listeners=[listener])
        s.clock = _RecordingClock()
        loop = s.open()
        assert (loop._shadow is not None) is True  # noqa: SLF001 - built for paced runs
        if not shadow:
            loop._shadow = None  # noqa: SLF001
        s.supervisor.arm(s.clock.now_ns())
        loop.run(max_cycles=400)
        rec = np.frombuffer(b"".join(listener.rows), dtype=loop.dtype)
        runs.append(rec)
    with_shadow, without = runs
    for name in ("state", "raw_state", "confidence", "probabilities", "features",
                 "request_amplitude_ma", "amplitude_ma", "program_id", "supervisor_state"):
        np.testing.assert_array_equal(with_shadow[name], without[name], err_msg=name)
    assert np.any(with_shadow["amplitude_ma"] != 0)  # it did stimulate


class _Spy(LoopListener):
    def __init__(self) -> None:
        self.gc_enabled: list[bool] = []
        self.flags: list[int] = []

    def on_cycle(self, record: np.ndarray) -> None:
        self.gc_enabled.append(gc.isenabled())
        self.flags.append(int(record["flags"][0]))


class _Broken(LoopListener):
    def on_cycle(self, record: np.ndarray) -> None:
        raise RuntimeError("disk full")


class _StallAt(FaultHooks):
    def stall(self, cycle: int) -> bool:
        return 20 <= cycle < 30


def test_gc_frozen_broken_listener_detached_stall_flagged(small_bsi, bsi_decoder_file) -> None:
    spy = _Spy()
    s = _session(small_bsi, bsi_decoder_file, duration_s=6.0, listeners=[_Broken(), spy],
                 hooks=_StallAt())
    s.open()
    was = gc.isenabled()
    summary = s.run()
    assert gc.isenabled() == was
    assert spy.gc_enabled and not any(spy.gc_enabled)
    assert summary["listener_errors"] == ["_Broken: disk full"]
    assert summary["stall_cycles"] == 10
    assert [bool(f & FLAG_SOURCE_STALL) for f in spy.flags[20:30]] == [True] * 10
    assert not any(f & FLAG_DEADLINE_MISSED for f in spy.flags[:5])


def test_paced_source_is_available_when_due_not_at_its_stored_time(small_bsi,
                                                                   bsi_decoder_file) -> None:
    """A recording replayed live carries the receive times of another run's clock; the loop
    must measure latency from when each hop is due on its own clock."""
    from neuroloop.acquisition import open_source

    class _StaleTimes:
        def __init__(self, inner) -> None:
            self.inner, self.info, self.paced_by_device = inner, inner.info, False
            self.exhausted = False

        def open(self):
            self.inner.open()
            return self

        def read(self, n, timeout=None):
            block = self.inner.read(n, timeout)
            block.received_ns = 42  # a time from some other clock
            return block

        def close(self) -> None:
            self.inner.close()

    s = _session(small_bsi, bsi_decoder_file, fast=False)
    s.clock = _RecordingClock()
    loop = s.open(source=_StaleTimes(open_source("synthetic://bsi", seed=1)))
    loop.run(max_cycles=50)
    e2e = loop.e2e_log.values()
    assert e2e.max() < 1_000_000, e2e.max()


def test_nothing_slow_runs_between_arm_and_the_first_cycle(small_bsi, bsi_decoder_file,
                                                            monkeypatch) -> None:
    """Real-time entry (mlockall takes ~0.5 s and stalls every thread), garbage collection,
    metadata and the listeners' on_start (a recorder opens files) all come before the device
    is armed: a silence after ARM would trip the device's watchdog."""
    import neuroloop.runtime.session as session_mod
    from neuroloop.realtime import RealtimeState
    from neuroloop.stimulation.stimulators import SimulatedStimulator

    order: list[str] = []

    def fake_enter(priority: int) -> RealtimeState:
        order.append("enter_realtime")
        return RealtimeState("SCHED_OTHER", False, [])

    def fake_leave(state: RealtimeState) -> None:
        if state.active:
            order.append("leave_realtime")
            state.active = False

    monkeypatch.setattr(session_mod, "enter_realtime", fake_enter)
    monkeypatch.setattr(session_mod, "leave_realtime", fake_leave)

    class ArmedStimulator(SimulatedStimulator):
        def arm(self) -> None:
            # the heap is collected and frozen: the loop's own collect() costs nothing now
            order.append("device_arm" if gc.get_freeze_count() > 0 else "device_arm_gc_live")

        def send(self, command, *, hop_last_sample: int = -1) -> None:
            if not order or order[-1] != "send":
                order.append("send")
            super().send(command, hop_last_sample=hop_last_sample)

    class StartSpy(LoopListener):
        def on_start(self, meta: dict) -> None:
            order.append("on_start")

    s = _session(small_bsi, bsi_decoder_file, fast=False, duration_s=0.3,
                 stimulator=ArmedStimulator(16), listeners=[StartSpy()])
    s.open()
    summary = s.run()
    assert summary["cycles"] == round(0.3 / small_bsi.hop_s)
    assert order == ["enter_realtime", "on_start", "device_arm", "send", "leave_realtime"]


def _state_snapshot(loop) -> list:
    """Every array and scalar the real stages carry from hop to hop, copied."""
    import copy

    snap = []
    for stage in (loop.pipeline, loop.decoder, loop.policy, loop.supervisor):
        names = type(stage).__dict__.get("SHADOW_STATE", ())
        assert names, f"{type(stage).__name__} declares no SHADOW_STATE"
        snap.append(copy.deepcopy([getattr(stage, n) for n in names]))
    return snap


def _same(a, b) -> bool:
    import dataclasses
    import enum

    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if a is None or isinstance(a, int | float | str | bool | enum.Enum | np.generic):
        return a == b or (a != a and b != b)  # NaN equals NaN here
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a))
    if hasattr(a, "__dict__"):
        return _same(vars(a), vars(b))
    return a == b


def test_warming_leaves_the_real_stages_state_alone(small_bsi, bsi_decoder_file) -> None:
    """The shadow shares the real stages' coefficients and scratch (to warm them) and reads
    their state arrays: after any number of shadow cycles every bit of that state is as it
    was, and the shadow really did read it and the coming hop."""
    s = _session(small_bsi, bsi_decoder_file, fast=False)
    s.clock = _RecordingClock()
    loop = s.open()
    s.supervisor.arm(s.clock.now_ns())
    loop.run(max_cycles=150)  # stimulating, gate and filters mid-stream
    shadow = loop._shadow  # noqa: SLF001
    assert shadow is not None
    before = _state_snapshot(loop)
    runs = shadow.warm(due_ns=10**18, now_ns=lambda: 0)  # time never runs out: the cap
    assert runs == 4
    assert _same(before, _state_snapshot(loop))
    # features, decoder (3), policy request, supervisor state arrays, and the coming hop
    assert shadow.touch_real_state() >= 8


def test_touch_reads_one_byte_per_cache_line() -> None:
    from neuroloop._buffers import byte_view, touch

    rng = np.random.default_rng(4)
    for shape in [(1,), (63,), (64,), (65,), (59, 64), (3, 5, 7)]:
        a = rng.normal(size=shape)
        b = byte_view(a)
        assert b is not None and b.dtype == np.uint8 and b.size == a.nbytes
        assert touch(b) == int(b[::64].astype(np.int64).sum())
        assert np.shares_memory(a, b)
    assert byte_view(np.zeros((4, 4))[:, ::2]) is None  # not contiguous: nothing to read
    assert byte_view(np.zeros(0)) is None


def test_a_fast_run_produces_several_hops_per_chunk(small_bsi, bsi_decoder_file) -> None:
    """--fast: whole hops per produced chunk, within the byte budget (the producer takes the
    interpreter once per chunk); a paced run or a patient that hears the stimulation: one."""
    from neuroloop.runtime.loop import FAST_CHUNK_BYTES

    fast = _session(small_bsi, bsi_decoder_file, duration_s=5.0).open()
    chunk = fast._prefetch_chunk()  # noqa: SLF001
    n_ch = fast.source.info.n_channels
    assert chunk % fast.hop == 0 and chunk > fast.hop
    assert chunk * n_ch * 8 <= FAST_CHUNK_BYTES < (chunk + fast.hop) * n_ch * 8
    assert fast.source._producer.chunk_samples == chunk  # noqa: SLF001 - what was started
    fast.source.reacts_to_stimulation = True  # an instance attribute shadows the class one
    assert fast._prefetch_chunk() == fast.hop  # noqa: SLF001
    fast.source.close()
    s = _session(small_bsi, bsi_decoder_file, fast=False)
    s.clock = _RecordingClock()
    paced = s.open()
    assert paced._prefetch_chunk() == paced.hop  # noqa: SLF001
    paced.source.close()
