"""Former home of the intention -> request mapper.

``StimMapper`` became the ``program-per-state`` control policy
(:class:`neuroloop.control.ProgramPerStatePolicy`, chosen in a scenario's ``[control]``
table); :func:`build_program_set` lives in :mod:`neuroloop.stimulation.programs` and is
re-exported here so that existing imports keep working.
"""

from __future__ import annotations

from .programs import build_program_set

__all__ = ["build_program_set"]
