"""Every packed array handed to the supervisor kernel has named columns: each layout's
constants are 0..N-1 with no duplicate and no gap, the supervisor fills every column from a
named source, and neither module indexes a packed array with a bare number."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from neuroloop.safety import SafetyLimits, SafetySupervisor
from neuroloop.safety import _kernels as K
from neuroloop.safety import supervisor as supervisor_mod
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

#: prefix of the column constants -> name of the size constant
LAYOUTS = {"L_": "N_LIM", "R_": "N_REQ", "S_": "N_S", "P_": "N_PROG", "C_": "N_CAP",
           "I_": "N_I", "EV_": "N_EV", "B_": "N_BITS"}


def _columns(prefix: str) -> dict[str, int]:
    return {k: v for k, v in vars(K).items() if k.startswith(prefix) and k[len(prefix):].isupper()
            and isinstance(v, int) and not isinstance(v, bool)}


@pytest.mark.parametrize("prefix", sorted(LAYOUTS))
def test_layout_is_dense_and_unique(prefix):
    cols = _columns(prefix)
    n = getattr(K, LAYOUTS[prefix])
    assert sorted(cols.values()) == list(range(n)), (prefix, cols)


def _supervisor() -> tuple[SafetySupervisor, SafetyLimits, ProgramSet]:
    arr = paddle_5_6_5(0.05)
    bip = StimProgram.from_contacts(arr, 1, "hip", {"E0": 0.5, "E1": 0.5}, {"E5": 1.0},
                                    40.0, 300.0, (1.0, 3.0), 40.0)
    mono = StimProgram.from_contacts(arr, 3, "knee", {"E2": 1.0}, {}, 60.0, 200.0, (0.5, 2.0))
    ps = ProgramSet(arr, ("rest", "hip", "ankle", "knee"), (bip, mono))
    lim = SafetyLimits(slew_up_ma_per_s=3.0, slew_down_ma_per_s=7.0, dose_budget_uc=90.0)
    return SafetySupervisor(lim, arr, ps, cycle_period_s=0.05), lim, ps


def test_every_lim_column_is_filled_from_its_named_limit():
    sup, lim, _ = _supervisor()
    cols = dict(supervisor_mod._LIM_COLUMNS)
    assert sorted([*cols, K.L_HORIZON_S]) == list(range(K.N_LIM))
    got = sup._cfg.lim
    for col, name in cols.items():
        assert got[col] == getattr(lim, name), name
    assert got[K.L_HORIZON_S] == 0.05


def test_every_program_column_is_filled_from_the_program_table():
    sup, _, ps = _supervisor()
    cols = dict(supervisor_mod._PROG_COLUMNS)
    assert sorted(cols) == list(range(K.N_PROG))
    t = ps.table()
    info = sup._cfg.prog_info
    assert info.shape == (len(ps.intention_names), K.N_PROG)
    for col, key in cols.items():
        np.testing.assert_array_equal(info[:, col], t[key].astype(np.float64), err_msg=key)


def test_caps_rows():
    sup, lim, ps = _supervisor()
    caps = sup._cfg.caps
    areas = lim.contact_areas_cm2(ps.array.area_cm2)
    assert caps.shape == (K.N_CAP, ps.array.n_contacts)
    np.testing.assert_allclose(caps[K.C_AREA], areas)
    np.testing.assert_allclose(caps[K.C_SHANNON], np.sqrt(10.0 ** lim.shannon_k * areas))
    np.testing.assert_allclose(caps[K.C_DENSITY], lim.charge_density_max_uc_per_cm2 * areas)
    np.testing.assert_allclose(caps[K.C_ABSOLUTE], lim.charge_per_phase_max_uc)


def test_buffers_have_the_documented_shapes():
    sup, _, ps = _supervisor()
    n = ps.array.n_contacts
    sc, st = sup._scratch, sup._st
    assert sc.req_s.shape == (K.N_REQ,) and sc.out_s.shape == (K.N_S,)
    assert sc.iparams.shape == (K.N_I,) and sc.iparams.dtype == np.int64
    assert sc.ev.shape == (K.N_EV, K.N_BITS)
    assert st.prev_s.shape == (K.N_S,) and st.prev_amp.shape == (n,)
    assert st.active.shape == (K.N_BITS,)


def _bare_indices(module: object) -> list[str]:
    """``x[3]``, ``x[:5]``, ``x[0, c]`` ... on anything but ``.shape``, a call's result or a
    list of messages."""
    src = inspect.getsource(module)  # type: ignore[arg-type]
    hits = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Subscript):
            continue
        v = node.value
        while isinstance(v, ast.Subscript):  # x()[0][:200] roots in a call
            v = v.value
        if (isinstance(v, ast.Attribute) and v.attr == "shape") or isinstance(v, ast.Call):
            continue
        if isinstance(v, ast.Name) and v.id == "problems":
            continue
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        for p in parts:
            bounds = [p.lower, p.upper, p.step] if isinstance(p, ast.Slice) else [p]
            if any(isinstance(b, ast.Constant) and isinstance(b.value, int) for b in bounds):
                hits.append(f"line {node.lineno}: {ast.unparse(node)}")
    return hits


@pytest.mark.parametrize("module", [K, supervisor_mod], ids=["_kernels", "supervisor"])
def test_no_bare_indices(module):
    assert _bare_indices(module) == []
