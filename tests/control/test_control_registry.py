"""Policies by name: built-ins, register_policy, the ``neuroloop.control_policies`` entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from control_helpers import PROGRAMS, SCHEMA, control, output

from neuroloop.control import (
    ENTRY_POINT_GROUP,
    ControlPolicy,
    PolicyParams,
    make_policy,
    policy_class,
    policy_names,
    register_policy,
)
from neuroloop.control import registry as reg
from neuroloop.decoders import DecoderOutput
from neuroloop.errors import ConfigError
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.programs import ProgramSet


@dataclass(frozen=True)
class _HoldSettings:
    program_id: int
    after_s: float


class HoldAfterPolicy(ControlPolicy):
    """A toy timed policy (as a plugin would write one): the program at its minimum once the
    decoded state has been held for ``after_s`` seconds of ``now_ns``."""

    name = "hold-after"

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> _HoldSettings:
        return _HoldSettings(params.intention("program", programs),
                             params.number("after_s", 1.0, lo=0.0))

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: Any) -> dict[str, Any]:
        return {"program": programs.programs[0].name, "after_s": 0.5}

    def reset(self) -> None:
        super().reset()
        self._since_ns = -1

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        pid = self.settings.program_id
        if not output.valid or output.state != pid:
            self._since_ns = -1
            return self._set_off(cycle)
        if self._since_ns < 0:
            self._since_ns = now_ns
        if now_ns - self._since_ns < self.settings.after_s * 1e9:
            return self._set_off(cycle)
        return self._set_program(pid, self.program_envelope_ma(pid)[0], cycle)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    eps: list[EntryPoint] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(reg, "entry_points", entry_points)
    monkeypatch.setattr(reg, "_POLICIES", dict(reg._POLICIES))  # undo registrations
    return eps


def test_names_and_unknown_name() -> None:
    assert policy_names()[:2] == ["program-per-state", "proportional"] or \
        {"program-per-state", "proportional"} <= set(policy_names())
    with pytest.raises(ConfigError) as info:
        make_policy(control("pid"), PROGRAMS, SCHEMA)
    assert str(info.value) == ("test.toml: control.policy = 'pid' is not a control policy; use "
                               f"one of: {', '.join(policy_names())}")
    assert "program-per-state, proportional" in str(info.value)


def test_an_entry_point_policy_is_loaded_lazily_by_name(fake_entry_points) -> None:
    fake_entry_points.append(EntryPoint("hold-after", f"{__name__}:HoldAfterPolicy",
                                        ENTRY_POINT_GROUP))
    fake_entry_points.append(EntryPoint("other-group", f"{__name__}:Nope", "somewhere.else"))
    assert "hold-after" in policy_names() and "other-group" not in policy_names()
    assert "hold-after" not in reg._POLICIES  # listed, not imported
    pol = make_policy(control("hold-after", program="left_hip_flexion", after_s=0.2),
                      PROGRAMS, SCHEMA)
    assert isinstance(pol, HoldAfterPolicy) and policy_class("hold-after") is HoldAfterPolicy
    # its timer runs on now_ns: off until the state has been held 0.2 s, then on
    ms = 1_000_000
    assert pol.step(output(1, 0.9), 0, 0).is_off
    assert pol.step(output(1, 0.9), 100 * ms, 1).is_off
    assert pol.step(output(1, 0.9), 200 * ms, 2).program_id == 1
    assert pol.step(output(2, 0.9), 300 * ms, 3).is_off


def test_a_broken_entry_point_is_a_config_error(fake_entry_points) -> None:
    fake_entry_points.append(EntryPoint("broken", "no_such_module_xyz:Policy",
                                        ENTRY_POINT_GROUP))
    fake_entry_points.append(EntryPoint("not-a-policy", "neuroloop.errors:ConfigError",
                                        ENTRY_POINT_GROUP))
    with pytest.raises(ConfigError, match=r"control.policy = 'broken': cannot load entry "
                                          r"point 'no_such_module_xyz:Policy'"):
        policy_class("broken", label="f.toml")
    with pytest.raises(ConfigError, match="is not a ControlPolicy subclass"):
        policy_class("not-a-policy")


def test_register_policy_by_class_and_by_target(fake_entry_points) -> None:
    register_policy("hold", HoldAfterPolicy)
    register_policy("hold-lazy", f"{__name__}:HoldAfterPolicy")
    assert {"hold", "hold-lazy"} <= set(policy_names())
    assert policy_class("hold") is HoldAfterPolicy is policy_class("hold-lazy")
    with pytest.raises(TypeError):
        register_policy("x", int)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        register_policy("x", "no-colon")
