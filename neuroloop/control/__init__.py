"""Control policies: decoder output + time -> stimulation request.

A scenario picks one in ``[control] policy = "..."`` (default ``"program-per-state"``);
:func:`make_policy` builds it for the decoder's :class:`~neuroloop.decoders.OutputSchema`.
A policy never decides safety: the supervisor does. See docs/control.md.
"""

from __future__ import annotations

from .base import ControlPolicy, PolicyParams
from .registry import (
    ENTRY_POINT_GROUP,
    check_control,
    make_policy,
    policy_class,
    policy_names,
    register_policy,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ControlPolicy",
    "PolicyParams",
    "ProgramPerStatePolicy",
    "ProportionalPolicy",
    "TriggeredBurstPolicy",
    "check_control",
    "make_policy",
    "policy_class",
    "policy_names",
    "register_policy",
]


_LAZY = {"ProgramPerStatePolicy": ".program_per_state", "ProportionalPolicy": ".proportional",
         "TriggeredBurstPolicy": ".triggered_burst"}


def __getattr__(name: str) -> object:
    # the built-in policies are imported on first use, like plugins
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroloop.control' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
