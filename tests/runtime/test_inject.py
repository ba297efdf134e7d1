"""``--inject``: each fault ends in its documented safe state, and every command the
supervisor emitted along the way passes the independent ``validate`` oracle."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.io.replay import CycleCollector
from neuroloop.runtime.inject import build_hooks, parse_injections
from neuroloop.runtime.session import RunOptions, Session
from neuroloop.safety.events import SupervisorState
from neuroloop.safety.validate import validate
from neuroloop.stimulation.command import StimCommand


def _run(scenario, decoder_file, spec: str, duration_s: float = 8.0):
    opts = RunOptions(fast=True, decoder_path=decoder_file, duration_s=duration_s)
    s = Session(scenario, opts)
    opts.hooks = build_hooks(parse_injections([spec]), s)
    loop = s.open()
    collector = CycleCollector(loop.dtype, int(duration_s / scenario.hop_s) + 8)
    loop.listeners = (collector,)
    summary = s.run()
    return s, summary, collector.collected


def _commands(records: np.ndarray) -> list[StimCommand]:
    out = []
    for r in records:
        out.append(StimCommand(amplitude_ma=np.array(r["amplitude_ma"]),
                               pulse_width_us=float(r["pulse_width_us"]),
                               frequency_hz=float(r["frequency_hz"]),
                               interphase_gap_us=float(r["interphase_gap_us"]),
                               program_id=int(r["program_id"]), cycle=int(r["cycle"]),
                               case_ma=float(r["case_ma"])))
    return out


def _assert_all_valid(session: Session, records: np.ndarray) -> None:
    prev = None
    now = records["now_ns"]
    for i, cmd in enumerate(_commands(records)):
        dt_s = (now[i] - now[i - 1]) / 1e9 if i else None
        v = validate(cmd, session.limits, session.programs.array, previous=prev,
                     dt_s=dt_s, programs=session.programs)
        assert v == [], (cmd.cycle, v)
        prev = cmd


def _first_cycle(scenario, seconds: float) -> int:
    return int(round(seconds / scenario.hop_s))


def test_estop_latches_zero(small_bsi, bsi_decoder_file) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, "estop@4")
    k = _first_cycle(small_bsi, 4)
    assert s.supervisor.state == SupervisorState.ESTOP
    assert np.abs(rec["amplitude_ma"][k:]).max() == 0.0
    assert np.abs(rec["amplitude_ma"][:k]).max() > 0.0  # it was stimulating before
    assert summary["interlock_events"]["estop"] == 1
    _assert_all_valid(s, rec)


def test_deadline_overrun_latches_fault(small_bsi, bsi_decoder_file) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, "deadline-overrun@4", duration_s=6.0)
    k = _first_cycle(small_bsi, 4)
    K = s.limits.deadline_miss_limit
    assert s.supervisor.state == SupervisorState.FAULT
    assert summary["deadline_misses"] >= rec.shape[0] - k
    assert np.abs(rec["amplitude_ma"][k + K + 1:]).max() == 0.0
    assert summary["interlock_events"]["deadline_fault"] == 1
    _assert_all_valid(s, rec)


def test_source_stall_holds_then_recovers(small_bsi, bsi_decoder_file) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, "source-stall@4:1")
    k = _first_cycle(small_bsi, 4)
    n = int(round(1 / small_bsi.hop_s))
    assert summary["stall_cycles"] == n
    assert summary["interlock_events"].get("stale_input", 0) >= 1
    assert np.abs(rec["amplitude_ma"][k:k + n]).max() == 0.0
    assert summary["interlock_events"].get("fallback", 0) >= 1
    assert summary["interlock_events"].get("recovered", 0) >= 1
    assert s.supervisor.state in (SupervisorState.STIMULATING, SupervisorState.ARMED)
    _assert_all_valid(s, rec)


def test_decoder_nan_gives_zero_and_events(small_bsi, bsi_decoder_file) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, "decoder-nan@4:1")
    k = _first_cycle(small_bsi, 4)
    n = int(round(1 / small_bsi.hop_s))
    assert np.abs(rec["amplitude_ma"][k:k + n]).max() == 0.0
    assert summary["interlock_events"].get("nonfinite", 0) >= 1
    assert summary["interlock_events"].get("fallback", 0) >= 1
    assert np.isfinite(rec["amplitude_ma"]).all()
    _assert_all_valid(s, rec)


@pytest.mark.parametrize("kind", ["decoder-max", "decoder-random"])
def test_adversarial_decoder_stays_in_limits(small_bsi, bsi_decoder_file, kind: str) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, f"{kind}@3:3")
    assert sum(summary["interlock_events"].values()) > 1
    assert s.supervisor.state not in (SupervisorState.FAULT, SupervisorState.ESTOP)
    _assert_all_valid(s, rec)


def test_impedance_open_contact_never_driven(small_bsi, bsi_decoder_file) -> None:
    s, summary, rec = _run(small_bsi, bsi_decoder_file, "impedance-open@2", duration_s=20.0)
    k = _first_cycle(small_bsi, 2)
    contact = int(np.argmax(s.programs.programs[0].cathode_fraction))
    assert np.abs(rec["amplitude_ma"][k + 1:, contact]).max() == 0.0
    assert summary["interlock_events"].get("impedance_report", 0) >= 1
    _assert_all_valid(s, rec)
