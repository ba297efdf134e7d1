"""One table of reasons: the kernel bits, the reason names, the interlock switch and the events
agree (no duplicate, no gap, every kernel bit has a name, every name is used)."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from neuroloop.safety import SafetyLimits, SafetySupervisor
from neuroloop.safety import _kernels as K
from neuroloop.safety import reasons as R
from neuroloop.safety import supervisor as supervisor_mod
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

NAMES = [r.name for r in R.TABLE]
KERNEL_ROWS = [r for r in R.TABLE if r.bit >= 0]


def _source_tree(module: object) -> ast.Module:
    return ast.parse(inspect.getsource(module))  # type: ignore[arg-type]


def _r_constants_used(tree: ast.AST) -> set[str]:
    """Names of every ``R.NAME`` attribute in ``tree``."""
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "R"}


def _calls(tree: ast.AST, func: str) -> list[ast.Call]:
    """Calls of ``func(...)`` or ``self.func(...)`` in ``tree``."""
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name == func:
                out.append(n)
    return out


def test_table_names_are_unique_and_are_the_module_constants():
    assert len(NAMES) == len(set(NAMES))
    constants = {k: v for k, v in vars(R).items() if k.isupper() and isinstance(v, str)}
    assert sorted(constants.values()) == sorted(NAMES)
    for k, v in constants.items():
        assert v == k.lower(), f"{k} = {v!r}: the constant is the upper-case name"
        assert k in R.__all__


def test_every_row_is_complete():
    for r in R.TABLE:
        assert r.name and r.description, r
        assert 0 <= r.invariant <= 21, r
        assert r.event or r.interlock, f"{r.name}: neither an event nor an interlock"
        if r.bit >= 0:
            assert r.event and r.interlock, f"{r.name}: a kernel bit is an event and a switch"


def test_kernel_bits_have_no_duplicate_no_gap_and_match_the_kernel():
    bits = sorted(r.bit for r in KERNEL_ROWS)
    assert bits == list(range(K.N_BITS))
    assert len(R.KERNEL_REASONS) == K.N_BITS
    assert [R.BIT[name] for name in R.KERNEL_REASONS] == list(range(K.N_BITS))
    # every B_* constant of the kernel is the bit of the reason with that name, and back
    kernel_bits = {k[2:].lower(): v for k, v in vars(K).items()
                   if k.startswith("B_") and isinstance(v, int)}
    assert kernel_bits == R.BIT
    assert K.BIT_NAMES == R.BIT


def test_every_kernel_bit_can_be_switched_off_and_reports_its_worst_case():
    tree = _source_tree(K)

    def bits(func: str, pos: int) -> set[str]:
        return {a.args[pos].id for a in _calls(tree, func) if isinstance(a.args[pos], ast.Name)
                and a.args[pos].id.startswith("B_")}

    checked = bits("_on", 1)
    noted = bits("_note", 1)
    clamped = bits("_clamp_range", 0)
    every = {f"B_{name.upper()}" for name in R.KERNEL_REASONS}
    assert checked == every
    assert noted | clamped == every


def test_interlocks_are_table_rows_and_each_switch_is_used():
    assert R.INTERLOCKS == {r.name for r in R.TABLE if r.interlock}
    assert set(R.KERNEL_REASONS) <= R.INTERLOCKS
    tree = _source_tree(supervisor_mod)
    switched = set()
    for call in _calls(tree, "_on"):
        arg = call.args[0]
        if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) \
                and arg.value.id == "R":
            switched.add(getattr(R, arg.attr))
    assert switched <= R.INTERLOCKS
    # every state-machine interlock is checked in Python (the kernel ones through the mask)
    assert R.INTERLOCKS - set(R.KERNEL_REASONS) <= switched


def test_event_reasons_agree_with_the_supervisor():
    assert R.REASONS == tuple(r.name for r in R.TABLE if r.event)
    assert set(R.INVARIANT) == set(R.UNIT) == set(R.REASONS)
    assert set(R.DESCRIPTION) == set(NAMES)
    used = _r_constants_used(_source_tree(supervisor_mod))
    exported = set(R.__all__)
    assert used <= exported, f"unknown reasons used: {used - exported}"
    # every state-machine reason is raised (or switched) somewhere in the supervisor
    python_names = {k for k, v in vars(R).items() if isinstance(v, str) and k.isupper()
                    and v not in R.KERNEL_REASONS}
    assert python_names <= used, f"never used: {python_names - used}"


def test_kernel_events_carry_the_table_names():
    """A request that trips several kernel interlocks raises one event per bit that acted,
    named from the table, with the table's vocabulary."""
    arr = paddle_5_6_5()
    prog = StimProgram.from_contacts(arr, 1, "hip", {"E0": 0.5, "E1": 0.5}, {"E5": 1.0},
                                     40.0, 300.0, (1.0, 3.0))
    ps = ProgramSet(arr, ("rest", "hip"), (prog,))
    sup = SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=0.1)
    sup.arm(0)
    req = StimCommand.off(arr.n_contacts)
    req.case_ma = prog.contact_currents(9.0, req.amplitude_ma)  # above the envelope
    req.pulse_width_us, req.frequency_hz, req.program_id = 301.0, 40.0, 1  # off-program PW
    req.waveform = 3  # not biphasic
    _, events = sup.step(req, 100_000_000, input_ns=100_000_000)
    names = [e.reason for e in events]
    assert set(names) == set(sup.limit_cycles())
    assert {R.ENVELOPE, R.PROGRAM_PATTERN, R.CHARGE_BALANCE, R.SLEW_UP} <= set(names)
    for e in events:
        assert e.reason in R.KERNEL_REASONS and e.reason in R.REASONS
        assert R.UNIT[e.reason] is not None and R.INVARIANT[e.reason] > 0


@pytest.mark.parametrize("name", sorted(R.INTERLOCKS))
def test_disabling_an_interlock_sets_exactly_its_kernel_bit(name):
    arr = paddle_5_6_5()
    prog = StimProgram.from_contacts(arr, 1, "hip", {"E0": 1.0}, {}, 40.0, 300.0, (1.0, 3.0))
    ps = ProgramSet(arr, ("rest", "hip"), (prog,))
    sup = SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=0.1,
                           _disabled_interlocks=frozenset({name}))
    mask = int(sup._scratch.iparams[K.I_DISABLED])
    assert mask == (1 << R.BIT[name] if name in R.BIT else 0)
    assert np.count_nonzero([(mask >> b) & 1 for b in range(K.N_BITS)]) == (name in R.BIT)
