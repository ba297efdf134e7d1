"""Decoder contract: features in, movement intention out.

scikit-learn conventions: ``__init__`` only stores parameters, ``fit(X, y)`` learns and sets
trailing-underscore attributes and returns ``self``. On top of that, ``step(features)`` is the
online path: one hop's feature vector in, an :class:`Intention` out, through compiled code with
no allocation. ``save``/``load`` use a versioned ``.npz`` file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import DecoderFileError

__all__ = ["Intention", "BaseDecoder", "register_decoder", "make_decoder", "load_decoder",
           "decoder_names", "DECODER_FILE_FORMAT"]

#: Version of the decoder file layout written by :meth:`BaseDecoder.save`.
DECODER_FILE_FORMAT = 1


@dataclass(slots=True, eq=False)
class Intention:
    """The decoder's output for one hop.

    The object returned by :meth:`BaseDecoder.step` is owned by the decoder and overwritten
    by the next step: copy what you keep.

    Attributes
    ----------
    state : int
        Gated intention (index into the scenario's ``intention_names``; 0 = rest).
    raw_state : int
        Most probable state of this hop before gating.
    probabilities : ndarray, shape (n_states,)
        Smoothed state probabilities after the transition model, sum to 1.
    confidence : float
        Probability of ``state`` (0..1); 0 when the input was invalid.
    valid : bool
        False when the features contained NaN or infinity (then ``state`` is 0).
    """

    state: int = 0
    raw_state: int = 0
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence: float = 0.0
    valid: bool = True


_REGISTRY: dict[str, type[BaseDecoder]] = {}


def register_decoder(cls: type[BaseDecoder]) -> type[BaseDecoder]:
    """Class decorator: make ``cls`` available by ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def decoder_names() -> list[str]:
    _import_builtin()
    return sorted(_REGISTRY)


def make_decoder(name: str, **params: Any) -> BaseDecoder:
    """Instantiate the registered decoder ``name`` with ``params``."""
    _import_builtin()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown decoder {name!r}; use one of: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return cls(**params)


def _import_builtin() -> None:
    from . import lda  # noqa: F401  (registers itself)


class BaseDecoder:
    """Abstract decoder. Subclasses set :attr:`name` and implement ``_fit``, ``_step``,
    ``_arrays`` / ``_from_arrays`` for persistence, and ``predict_proba``."""

    name: ClassVar[str] = ""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray) -> BaseDecoder:
        """Learn from calibration features.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features), float64
        y : ndarray, shape (n_hops,), int, values in ``0..n_states-1``
        """
        raise NotImplementedError

    def step(self, features: np.ndarray) -> Intention:
        """Decode one hop online. ``features`` has shape (n_features,), float64."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the online state (smoothed probabilities, gate counters)."""
        raise NotImplementedError

    def warmup(self) -> None:
        """Compile every kernel of the online path with the real shapes, then :meth:`reset`.

        The loop calls this before stimulation can be armed, so that ``step`` never compiles.
        The default only resets (for decoders without compiled code).
        """
        self.reset()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Offline per-hop class probabilities (no smoothing, no gate), (n_hops, n_states)."""
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        raise NotImplementedError

    @property
    def n_states(self) -> int:
        raise NotImplementedError

    # -- persistence ----------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted decoder to ``path`` (``.npz``), with format version and kind."""
        path = Path(path)
        header = {"format": DECODER_FILE_FORMAT, "kind": self.name, "params": self.get_params()}
        arrays = {f"a_{k}": v for k, v in self._arrays().items()}
        with open(path, "wb") as fh:
            np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                     **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> BaseDecoder:
        """Read a decoder written by :meth:`save` (any registered kind)."""
        return load_decoder(path)


def load_decoder(path: str | Path) -> BaseDecoder:
    """Load a decoder file, checking its format version and kind.

    Raises
    ------
    DecoderFileError
        When the file is missing, not a decoder file, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise DecoderFileError(f"decoder file {path} does not exist; train one with "
                               "`neuroloop train --scenario NAME --out FILE`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(bytes(npz["header"]).decode())
            arrays = {k[2:]: npz[k] for k in npz.files if k.startswith("a_")}
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a decoder file"
        raise DecoderFileError(f"{path} is not a neuroloop decoder file ({exc}); "
                               "retrain with `neuroloop train`") from None
    version = header.get("format")
    if version != DECODER_FILE_FORMAT:
        raise DecoderFileError(
            f"{path} is decoder file format {version}, this neuroloop reads format "
            f"{DECODER_FILE_FORMAT}; retrain it with `neuroloop train`")
    _import_builtin()
    kind = header.get("kind")
    if kind not in _REGISTRY:
        raise DecoderFileError(f"{path} holds decoder kind {kind!r}, which is not installed")
    dec = _REGISTRY[kind](**header.get("params", {}))
    dec._from_arrays(arrays)
    return dec
