"""neuroloop: a simulated closed-loop neuromodulation controller.

ECoG/EEG samples -> Numba streaming DSP -> decoder -> control policy -> safety supervisor ->
stimulator, in a deadline-checked real-time loop that can be recorded and replayed bit-exactly.
"""

from __future__ import annotations

from .errors import (
    AuthenticationError,
    ConfigError,
    DecoderFileError,
    DeviceError,
    NeuroloopError,
    ProtocolError,
    RecordingError,
)

__version__ = "0.1.0"

# Heavier parts of the public API are imported on first use, so that `import neuroloop`
# (and the CLI's argument parsing) does not pay for Numba until it is needed.
_LAZY = {
    "load_scenario": "neuroloop.config",
    "Scenario": "neuroloop.config",
    "open_source": "neuroloop.acquisition",
    "BaseSource": "neuroloop.acquisition.base",
    "Block": "neuroloop.acquisition.base",
    "FeaturePipeline": "neuroloop.dsp",
    "BaseDecoder": "neuroloop.decoders.base",
    "DecoderOutput": "neuroloop.decoders.base",
    "Intention": "neuroloop.decoders.base",
    "OutputSchema": "neuroloop.decoders.base",
    "make_decoder": "neuroloop.decoders.base",
    "load_decoder": "neuroloop.decoders.base",
    "StimCommand": "neuroloop.stimulation.command",
    "ControlPolicy": "neuroloop.control",
    "make_policy": "neuroloop.control",
    "register_policy": "neuroloop.control",
    "policy_names": "neuroloop.control",
    "SafetySupervisor": "neuroloop.safety.supervisor",
    "SafetyLimits": "neuroloop.safety.limits",
    "validate": "neuroloop.safety.validate",
    "Session": "neuroloop.runtime.session",
    "RunOptions": "neuroloop.runtime.session",
    "ControlLoop": "neuroloop.runtime.loop",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroloop' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

__all__ = [
    "__version__",
    "NeuroloopError",
    "ConfigError",
    "DeviceError",
    "ProtocolError",
    "AuthenticationError",
    "RecordingError",
    "DecoderFileError",
    *_LAZY,
]
