"""The live monitor's pieces, in process: address checks, the channel, the operator's STOP."""

from __future__ import annotations

import socket
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.cli import main
from neuroloop.errors import ConfigError
from neuroloop.monitor import channel as C
from neuroloop.monitor.address import bind_monitor_socket, parse_monitor_address
from neuroloop.monitor.publisher import MonitorPublisher, OperatorControl
from neuroloop.monitor.server import MonitorState
from neuroloop.records import FLAG_DEADLINE_MISSED, cycle_dtype
from neuroloop.runtime.safety_inputs import poll_safety_inputs
from neuroloop.safety.events import SupervisorState
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.supervisor import SafetySupervisor
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram


# -- address -----------------------------------------------------------------------------------
def test_addresses() -> None:
    assert parse_monitor_address("8765") == parse_monitor_address("127.0.0.1:8765")
    assert parse_monitor_address("localhost:0").loopback
    assert parse_monitor_address("[::1]:8765").host == "::1"
    assert parse_monitor_address("0.0.0.0:8765", public=True).host == "0.0.0.0"
    for bad, words in (("80", "not allowed"), ("70000", "not allowed"), ("x", "not allowed"),
                       ("nan", "not allowed"), ("-1", "not allowed"), ("1e308", "not allowed"),
                       ("0.0.0.0:8765", "--monitor-public"),
                       ("192.168.1.10:8765", "--monitor-public"), (":8765", "empty host"),
                       ("[::1", "[IPV6]:PORT")):
        with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
            parse_monitor_address(bad)


def test_a_port_in_use_is_refused_when_binding() -> None:
    taken = bind_monitor_socket(parse_monitor_address("0"))
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} is in use"):
            bind_monitor_socket(parse_monitor_address(str(port)))
    finally:
        taken.close()


@pytest.mark.parametrize("argv,words", [
    (["--monitor", "80"], "not allowed"),
    (["--monitor", "0.0.0.0:8765"], "--monitor-public"),
    (["--monitor-public"], "needs --monitor"),
    (["--monitor", "10.255.255.1:8765", "--monitor-public"], "not an address of this machine"),
])
def test_run_refuses_a_bad_monitor_in_one_line(argv: list[str], words: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scenario", "bsi", "--fast", "--duration", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_run_refuses_a_port_in_use_before_calibrating(capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        assert main(["run", "--scenario", "bsi", "--fast", "--duration", "1", "--monitor",
                     str(port)]) == 2
    finally:
        taken.close()
    captured = capsys.readouterr()
    assert f"port {port} is in use" in captured.err and captured.err.count("\n") == 1
    assert "calibrating" not in captured.err


# -- channel: loop side writes, server side reads ------------------------------------------------
def _meta(n_features: int = 12, n_states: int = 3, n_contacts: int = 16,
          n_channels: int = 8) -> dict:
    return {"n_features": n_features, "n_states": n_states, "n_contacts": n_contacts,
            "output_names": ["a", "b"], "output_units": ["1", "dB"],
            "intention_names": ["rest", "x", "y"], "hop_samples": 10,
            "channels": {"names": [f"c{i}" for i in range(n_channels)],
                         "sampling_rate_hz": 100.0},
            "options": {"deadline_ms": 10.0}, "config": {}, "scenario": "t"}


def test_what_the_loop_publishes_is_what_the_server_reads() -> None:
    meta = _meta()
    pub = MonitorPublisher(None, OperatorControl(), "http://x/", spawn=False)
    pub.on_start(meta)
    try:
        ch = pub.channel
        assert ch is not None
        state = MonitorState(C.MonitorChannel(ch.layout, name=ch.name), ch.read_meta())
        dt = cycle_dtype(12, 3, 16, 2)
        rec = np.zeros(1, dtype=dt)
        rng = np.random.default_rng(0)
        data = rng.normal(size=(10, 8))
        for k in range(3 * C.N_SLOTS):  # wraps the ring three times
            rec["cycle"] = k
            rec["state"] = k % 3
            rec["e2e_ns"] = 1000 * (k + 1)
            rec["amplitude_ma"][0, 5] = -0.5 * (k % 4)
            rec["outputs"][0] = (k, -k)
            rec["flags"] = FLAG_DEADLINE_MISSED if k % 50 == 0 else 0
            pub.on_samples(data + k, 10 * k)
            pub.on_cycle(rec)
            if k % 40 == 0:
                pub.on_events([{"cycle": k, "kind": "interlock", "reason": "slew_up"}])
            if k % 7 == 0:
                state.step()
        state.step()
        f = state.latest
        k = 3 * C.N_SLOTS - 1
        assert f["cycle"] == k and f["state"] == k % 3 and f["outputs"] == [k, -k]
        assert f["amplitude_ma"][5] == -0.5 * (k % 4)
        assert int(ch.ctl[C.CTL_MISSES]) == len(range(0, 3 * C.N_SLOTS, 50))
        assert state.lapped == 0  # read every 7 cycles: nothing overwritten before reading
        # the sample ring holds the selected channels exactly as published
        sel = [0, 2, 5, 7]
        assert ch.samples.shape[1] == len(sel)
        last = int(ch.ctl[C.CTL_SAMPLES]) - 1
        row = last % ch.samples.shape[0]
        assert np.array_equal(ch.samples[row], (data + k)[-1, sel])
        state.ch.close()
    finally:
        pub.close()


def test_publishing_allocates_nothing_per_cycle() -> None:
    pub = MonitorPublisher(None, OperatorControl(), "http://x/", spawn=False)
    pub.on_start(_meta(n_features=512, n_states=7, n_channels=64))
    try:
        rec = np.zeros(1, dtype=cycle_dtype(512, 7, 16, 2))
        data = np.zeros((59, 64))
        for k in range(50):
            pub.on_samples(data, 59 * k)
            pub.on_cycle(rec)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for k in range(2000):
            pub.on_samples(data, 59 * k)
            pub.on_cycle(rec)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        assert grown < 16_000, grown
    finally:
        pub.close()


# -- the operator's STOP -----------------------------------------------------------------------
def _supervisor() -> tuple[SafetySupervisor, StimProgram]:
    arr = paddle_5_6_5()
    hip = StimProgram.from_contacts(arr, 1, "hip", {"E0": 0.5, "E1": 0.5}, {"E5": 1.0},
                                    40.0, 300.0, (1.0, 3.0), 40.0)
    ps = ProgramSet(arr, ("rest", "hip"), (hip,))
    return SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=0.1), hip


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["cycle", "page_stop", "terminal_rearm", "page_noise"]),
                min_size=1, max_size=60))
def test_a_page_stop_latches_zero_output_until_the_terminal_rearms(actions: list[str]) -> None:
    sup, hip = _supervisor()
    op = OperatorControl()
    ctl = np.zeros(32, np.int64)
    op.attach(ctl)
    request = StimCommand.off(16)
    hip.contact_currents(2.0, request.amplitude_ma)
    request.pulse_width_us, request.frequency_hz, request.program_id = 300.0, 40.0, 1
    request.interphase_gap_us = 40.0
    now = 0
    sup.arm(now)
    stopped = False
    for cycle, action in enumerate(actions):
        if action == "page_stop":
            ctl[C.CTL_ESTOP_REQUEST_NS] = now
            ctl[C.CTL_ESTOP_REQUESTS] += 1
            stopped = True
        elif action == "terminal_rearm":
            op.request_rearm()
            if stopped:
                stopped = False
        elif action == "page_noise":  # every word a page's server may write, except the STOP
            for w in (C.CTL_SERVER_CLIENTS, C.CTL_SERVER_FRAMES, C.CTL_SERVER_DROPPED):
                ctl[w] += 1
        now += 100_000_000
        for _ in range(3):  # a poll reports one input per cycle: drain pending ones
            poll_safety_inputs([op], cycle, now, sup)
        command, _ = sup.step(request, now, input_ns=now, decoder_valid=True, confidence=1.0)
        if stopped:
            assert sup.state == SupervisorState.ESTOP
            assert np.all(command.amplitude_ma == 0.0) and command.is_off
        else:
            assert sup.state != SupervisorState.ESTOP


def test_bench_monitor_workload_runs_with_a_server_reading() -> None:
    from neuroloop.bench import run_bench, workload_names

    assert "monitor" in workload_names()
    res = run_bench(["monitor"], n_hops=100, warmup_hops=10)["workloads"]["monitor"]
    assert res["workload"] == "monitor" and res["n_hops"] == 100
    assert res["neuroloop_us"]["p50"] > 0 and res["reference_us"]["p50"] > 0
    assert isinstance(res["server_cycles_skipped"], int)


def test_frames_are_strict_json_before_the_first_cycle_and_with_nan_outputs() -> None:
    import json

    pub = MonitorPublisher(None, OperatorControl(), "http://x/", spawn=False)
    pub.on_start(_meta())
    try:
        ch = pub.channel
        assert ch is not None
        state = MonitorState(C.MonitorChannel(ch.layout, name=ch.name), ch.read_meta())
        pub.on_events([{"cycle": 0, "kind": "interlock", "reason": "arm"}])  # before cycle 0
        assert state.step()
        frame = json.loads(state.frame)  # no cycle yet: latency percentiles are null
        assert frame["latency"]["e2e_p50_us"] is None and frame["events"]
        rec = np.zeros(1, dtype=cycle_dtype(12, 3, 16, 2))
        rec["outputs"] = np.nan
        rec["confidence"] = np.inf
        pub.on_cycle(rec)
        assert state.step()
        frame = json.loads(state.frame)
        assert frame["outputs"] == [None, None] and frame["confidence"] is None
        state.ch.close()
    finally:
        pub.close()


def test_the_terminal_console_stops_and_rearms() -> None:
    import io

    from neuroloop.monitor.publisher import OperatorConsole

    op = OperatorControl()
    said: list[str] = []
    console = OperatorConsole(op, stream=io.StringIO("stop\nbogus\nrearm\n"), say=said.append)
    console.start()
    console.join(timeout=5)
    assert [k for k, _ in op.poll(0, 0)] == ["estop"]
    assert [k for k, _ in op.poll(1, 0)] == ["rearm"]
    assert op.poll(2, 0) == ()
    assert [e.get("action", "estop") for e in op.log] == ["estop", "rearm"]
    assert any("operator commands" in m for m in said)
