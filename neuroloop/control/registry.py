"""Control policies by name: built-ins imported lazily, plugins through entry points.

==========================  ===========================================================
``[control] policy``        class
==========================  ===========================================================
``"program-per-state"``     :class:`~neuroloop.control.program_per_state.ProgramPerStatePolicy`
``"proportional"``          :class:`~neuroloop.control.proportional.ProportionalPolicy`
``"continuous"``            :class:`~neuroloop.control.fixed.ContinuousPolicy`
``"off"``                   :class:`~neuroloop.control.fixed.OffPolicy`
``"single-threshold"``      :class:`~neuroloop.control.threshold.SingleThresholdPolicy`
``"dual-threshold"``        :class:`~neuroloop.control.threshold.DualThresholdPolicy`
``"triggered-burst"``       :class:`~neuroloop.control.triggered_burst.TriggeredBurstPolicy`
==========================  ===========================================================

Other packages add policies through the entry-point group ``neuroloop.control_policies``
(name = policy name, value = ``module:Class``, a :class:`ControlPolicy` subclass), or at run
time with :func:`register_policy`. Nothing is imported until a policy is asked for.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..config import ControlConfig
from ..decoders.base import OutputSchema
from ..errors import ConfigError
from ..stimulation.programs import ProgramSet
from .base import ControlPolicy

__all__ = ["ENTRY_POINT_GROUP", "register_policy", "policy_names", "policy_class",
           "check_control", "make_policy"]

#: Entry-point group of third-party control policies.
ENTRY_POINT_GROUP = "neuroloop.control_policies"

_POLICIES: dict[str, str | type[ControlPolicy]] = {
    "program-per-state": "neuroloop.control.program_per_state:ProgramPerStatePolicy",
    "proportional": "neuroloop.control.proportional:ProportionalPolicy",
    "continuous": "neuroloop.control.fixed:ContinuousPolicy",
    "off": "neuroloop.control.fixed:OffPolicy",
    "single-threshold": "neuroloop.control.threshold:SingleThresholdPolicy",
    "dual-threshold": "neuroloop.control.threshold:DualThresholdPolicy",
    "triggered-burst": "neuroloop.control.triggered_burst:TriggeredBurstPolicy",
}


def register_policy(name: str, target: str | type[ControlPolicy]) -> None:
    """Make a policy available as ``[control] policy = name``.

    Parameters
    ----------
    name : str
    target : str or type
        ``"module:Class"`` (imported on first use) or the class itself.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"policy name must be a non-empty string, got {name!r}")
    if isinstance(target, str):
        if ":" not in target:
            raise ValueError(f"policy target {target!r} must be 'module:Class'")
    elif not (isinstance(target, type) and issubclass(target, ControlPolicy)):
        raise TypeError(f"policy target {target!r} is not a ControlPolicy subclass")
    _POLICIES[name] = target


def policy_names() -> list[str]:
    """Names of every available policy (built-in, registered, entry points), sorted."""
    return sorted(set(_POLICIES) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def policy_class(name: str, *, label: str = "<config>") -> type[ControlPolicy]:
    """The class of policy ``name``, imported on first use.

    Raises
    ------
    ConfigError
        When no policy has that name, or its plugin cannot be imported.
    """
    target = _POLICIES.get(name)
    where = f"policy {name!r}"
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                target, where = ep.value, f"entry point {ep.value!r} of policy {name!r}"
                break
        else:
            raise ConfigError(f"{label}: control.policy = {name!r} is not a control policy; "
                              f"use one of: {', '.join(policy_names())}")
    if isinstance(target, str):
        module_name, _, cls_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{label}: control.policy = {name!r}: cannot load {where} "
                              f"({exc}); install or fix that package") from None
        if not (isinstance(cls, type) and issubclass(cls, ControlPolicy)):
            raise ConfigError(f"{label}: control.policy = {name!r}: {where} is not a "
                              "ControlPolicy subclass; fix that package")
        _POLICIES[name] = cls
        return cls
    return target


def check_control(config: ControlConfig, programs: ProgramSet) -> type[ControlPolicy]:
    """Check ``[control]`` before any decoder exists: the policy name and its keys.

    Returns the policy class. Raises :class:`~neuroloop.errors.ConfigError` (one line).
    """
    cls = policy_class(config.policy, label=config.label)
    cls.check_config(config, programs)
    return cls


def make_policy(config: ControlConfig, programs: ProgramSet, schema: OutputSchema, *,
                decoder: str = "the decoder") -> ControlPolicy:
    """Build the scenario's policy for a decoder with output ``schema``.

    Parameters
    ----------
    config : ControlConfig
    programs : ProgramSet
    schema : OutputSchema
        ``decoder.output_schema_``.
    decoder : str
        How error messages name the decoder (its file, or its kind).

    Raises
    ------
    ConfigError
        An unknown policy, a bad ``[control]`` key, or an output the decoder does not
        produce (one line naming the key, the output and the decoder's outputs).
    """
    return policy_class(config.policy, label=config.label)(config, programs, schema,
                                                           decoder=decoder)
