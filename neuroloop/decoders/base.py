"""Decoder contract: features in, a :class:`DecoderOutput` out.

scikit-learn conventions: ``__init__`` only stores parameters, ``fit(X, y)`` learns and sets
trailing-underscore attributes and returns ``self``. On top of that, ``step(features)`` is the
online path: one hop's feature vector in, a :class:`DecoderOutput` out, through compiled code
with no allocation. ``save``/``load`` use a versioned ``.npz`` file.

Every fitted (or loaded) decoder declares what it outputs in ``output_schema_``
(:class:`OutputSchema`): the names of its discrete states and the names and units of its
continuous outputs. Control policies check at start-up that the outputs they need exist.

Decoder file format
-------------------
An ``.npz`` with a JSON ``header`` (uint8 bytes) and the model arrays (``a_<name>``).

* format 1: ``{"format": 1, "kind", "params"}``; the schema is derived on load (states named
  ``state0``, ``state1``, ... and the outputs the decoder kind computes).
* format 2 (written now): format 1 plus ``"schema": {"state_names", "output_names",
  "output_units"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import DecoderFileError

__all__ = ["DecoderOutput", "Intention", "OutputSchema", "BaseDecoder", "register_decoder",
           "decoder_class", "make_decoder", "load_decoder", "decoder_names", "DECODER_FILE_FORMAT",
           "READABLE_DECODER_FORMATS"]

#: Version of the decoder file layout written by :meth:`BaseDecoder.save`.
DECODER_FILE_FORMAT = 2
#: Versions :func:`load_decoder` reads.
READABLE_DECODER_FORMATS = (1, 2)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class OutputSchema:
    """What a decoder outputs: its discrete states and its named continuous outputs.

    Attributes
    ----------
    state_names : tuple of str
        One name per state, index = state number (0 is rest).
    output_names : tuple of str
        Names of the continuous outputs, in the order of :attr:`DecoderOutput.values`;
        lower-case identifiers that carry their unit where it helps (``beta_power_db``,
        ``velocity_x_m_per_s``, ``detector_score``).
    output_units : tuple of str
        Unit of each output (``"1"`` for dimensionless, ``"dB"``, ``"m/s"``).
    """

    state_names: tuple[str, ...]
    output_names: tuple[str, ...] = ()
    output_units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what in ("state_names", "output_names", "output_units"):
            v = getattr(self, what)
            if not isinstance(v, tuple) or not all(isinstance(s, str) for s in v):
                raise ValueError(f"OutputSchema.{what} must be a tuple of strings, got {v!r}")
        if len(self.state_names) < 2 or len(set(self.state_names)) != len(self.state_names) \
                or not all(self.state_names):
            raise ValueError(f"OutputSchema.state_names {self.state_names!r} must be at least "
                             "two distinct non-empty names")
        if len(self.output_units) != len(self.output_names):
            raise ValueError(f"{len(self.output_names)} output names but "
                             f"{len(self.output_units)} units; give one unit per output")
        if len(set(self.output_names)) != len(self.output_names):
            raise ValueError(f"output names {self.output_names!r} are not distinct")
        for n in self.output_names:
            if not _NAME.match(n):
                raise ValueError(f"output name {n!r} is not a lower-case identifier "
                                 "(e.g. beta_power_db)")

    @classmethod
    def unnamed_states(cls, n_states: int) -> tuple[str, ...]:
        """The state names of a decoder that was never told them: ``state0``, ``state1``, ..."""
        return tuple(f"state{k}" for k in range(n_states))

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def states_named(self) -> bool:
        """False when the states only have the placeholder names of :meth:`unnamed_states`."""
        return self.state_names != self.unnamed_states(self.n_states)

    def index(self, output_name: str) -> int:
        """Position of ``output_name`` in :attr:`DecoderOutput.values`.

        Raises
        ------
        KeyError
            When the decoder has no such output.
        """
        try:
            return self.output_names.index(output_name)
        except ValueError:
            raise KeyError(output_name) from None

    def describe_outputs(self) -> str:
        """``"confidence [1], state_margin [1]"``, or ``"no continuous outputs"``."""
        if not self.output_names:
            return "no continuous outputs"
        return ", ".join(f"{n} [{u}]" for n, u in zip(self.output_names, self.output_units,
                                                      strict=True))

    def to_dict(self) -> dict[str, list[str]]:
        return {"state_names": list(self.state_names), "output_names": list(self.output_names),
                "output_units": list(self.output_units)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputSchema:
        """Inverse of :meth:`to_dict`; ``ValueError``/``TypeError``/``KeyError`` if malformed."""
        return cls(tuple(d["state_names"]), tuple(d["output_names"]), tuple(d["output_units"]))


@dataclass(slots=True, eq=False)
class DecoderOutput:
    """The decoder's output for one hop.

    The object returned by :meth:`BaseDecoder.step` is owned by the decoder and overwritten
    by the next step (its arrays too): copy what you keep.

    Attributes
    ----------
    state : int
        Gated state (index into the schema's ``state_names``, the scenario's intentions;
        0 = rest).
    raw_state : int
        Most probable state of this hop before gating.
    probabilities : ndarray, shape (n_states,)
        Smoothed state probabilities after the transition model, sum to 1.
    confidence : float
        Probability of ``state`` (0..1); 0 when the input was invalid.
    valid : bool
        False when the features contained NaN or infinity (then ``state`` is 0).
    values : ndarray, shape (n_outputs,), float64
        The continuous outputs named (with units) by ``schema.output_names``; preallocated,
        overwritten in place. NaN when ``valid`` is False.
    schema : OutputSchema or None
        The decoder's schema (None for hand-made outputs in tests).
    """

    state: int = 0
    raw_state: int = 0
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence: float = 0.0
    valid: bool = True
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    schema: OutputSchema | None = None

    def value(self, name: str) -> float:
        """The continuous output ``name`` (a lookup by name: not for the hot path)."""
        if self.schema is None:
            raise KeyError(f"this output has no schema, so no output named {name!r}")
        return float(self.values[self.schema.index(name)])


#: The former name of :class:`DecoderOutput` (kept so that existing code keeps working).
Intention = DecoderOutput


_REGISTRY: dict[str, type[BaseDecoder]] = {}
#: Entry-point group through which other packages add decoder kinds (name = kind,
#: value = ``module:Class``); loaded only when that kind is asked for.
ENTRY_POINT_GROUP = "neuroloop.decoders"


def register_decoder(cls: type[BaseDecoder]) -> type[BaseDecoder]:
    """Class decorator: make ``cls`` available by ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def decoder_names() -> list[str]:
    """Names of the built-in, registered and entry-point decoder kinds."""
    _import_builtin()
    return sorted(set(_REGISTRY) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def _decoder_class(name: str) -> type[BaseDecoder] | None:
    """The class of decoder kind ``name``, importing an entry point on first use; None if
    no such kind is installed."""
    _import_builtin()
    cls = _REGISTRY.get(name)
    if cls is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                loaded = ep.load()
                if not (isinstance(loaded, type) and issubclass(loaded, BaseDecoder)):
                    from ..errors import ConfigError

                    raise ConfigError(f"entry point {ep.value!r} of decoder kind {name!r} is "
                                      "not a BaseDecoder subclass; fix the plugin")
                _REGISTRY[name] = cls = loaded
                break
    return cls


def decoder_class(name: str) -> type[BaseDecoder] | None:
    """The class of decoder kind ``name`` (None when no such kind is installed)."""
    return _decoder_class(name)


def make_decoder(name: str, **params: Any) -> BaseDecoder:
    """Instantiate the registered decoder ``name`` with ``params``."""
    cls = _decoder_class(name)
    if cls is None:
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown decoder {name!r}; use one of: {', '.join(decoder_names())}"
        ) from None
    return cls(**params)


def _import_builtin() -> None:
    from . import adaptive, biomarker, csp, kalman, lda, responsive, riemann  # noqa: F401


class BaseDecoder:
    """Abstract decoder. Subclasses set :attr:`name` and :attr:`outputs` and implement
    ``fit``, ``step``, ``reset``, ``_arrays`` / ``_from_arrays`` for persistence, and
    ``predict_proba``.

    A fitted or loaded decoder has ``output_schema_`` (:class:`OutputSchema`); subclasses set
    it with :meth:`_declare_schema` and the :class:`DecoderOutput` they return carries
    ``len(outputs)`` continuous values in that order.
    """

    name: ClassVar[str] = ""
    #: ``(name, unit)`` of each continuous output, in the order of ``DecoderOutput.values``.
    outputs: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: True when ``fit`` takes the whole hop sequence in time order (the decoder uses context
    #: across hops: a sliding window, a dynamical model), with label -1 (or a NaN target) for
    #: hops that are context but not examples. False: ``fit`` takes labelled hops only.
    sequential: ClassVar[bool] = False
    #: True when ``fit``'s ``y`` is continuous targets, shape (n_hops, n_outputs), float
    #: (e.g. velocities), rather than integer state labels.
    continuous_targets: ClassVar[bool] = False
    #: The feature kind the decoder reads (``[dsp] features``): ``"log_power"`` or
    #: ``"covariance"``; offline evaluation computes it for the decoder.
    features: ClassVar[str] = "log_power"

    @classmethod
    def example_data(cls, n_hops: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Synthetic calibration data this kind can be fitted on (for the contract tests,
        the docs and benchmarks): three Gaussian classes in 6 features, in blocks of 20
        hops. Kinds whose features have structure (covariances) or whose targets are
        continuous override this.

        Returns
        -------
        X : ndarray, shape (n_hops, n_features)
        y : ndarray, shape (n_hops,) int labels, or (n_hops, n_outputs) float targets
        """
        rng = np.random.default_rng(seed)
        means = rng.normal(0.0, 2.0, (3, 6))
        y = np.repeat(np.arange(n_hops // 20 + 1) % 3, 20)[:n_hops]
        X = means[y] + rng.normal(0.0, 1.0, (y.size, 6))
        return X, y
    #: False for a decoder calibrated from the signal alone (a biomarker's distribution):
    #: its calibration data need no labels.
    supervised: ClassVar[bool] = True

    output_schema_: OutputSchema

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> BaseDecoder:
        """Learn from calibration features.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features), float64
        y : ndarray, shape (n_hops,), int, values in ``0..n_states-1``
        state_names : sequence of str, optional
            One name per state (the scenario's intentions, rest first); recorded in the
            schema and the decoder file. Default: ``state0``, ``state1``, ...
        """
        raise NotImplementedError

    def step(self, features: np.ndarray) -> DecoderOutput:
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

    # -- schema ---------------------------------------------------------------------------
    def _declare_schema(self, state_names: Sequence[str] | None,
                        n_states: int) -> OutputSchema:
        """Build (and set) ``output_schema_`` from ``state_names`` and :attr:`outputs`.

        Raises
        ------
        ConfigError
            When ``state_names`` does not name ``n_states`` distinct states.
        """
        from ..errors import ConfigError

        if state_names is None:
            names = OutputSchema.unnamed_states(n_states)
        else:
            names = tuple(str(s) for s in state_names)
            if len(names) != n_states:
                raise ConfigError(f"{len(names)} state names for a decoder of {n_states} "
                                  "states; give one name per state, rest first")
        try:
            schema = self.schema_for(names)
        except ValueError as exc:
            raise ConfigError(f"decoder {self.name}: {exc}") from None
        self.output_schema_ = schema
        self._schema_changed()
        return schema

    def schema_for(self, state_names: Sequence[str]) -> OutputSchema:
        """The schema this decoder declares once fitted with ``state_names`` (known before
        fitting, so that a session can check its control policy before calibrating)."""
        return OutputSchema(tuple(state_names), tuple(n for n, _ in self.outputs),
                            tuple(u for _, u in self.outputs))

    def _schema_changed(self) -> None:
        """Hook: ``output_schema_`` was (re)set; point the output object at it."""

    # -- persistence ----------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the model; must also declare the schema (states unnamed)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted decoder to ``path`` (``.npz``): format version, kind, parameters,
        output schema and model arrays."""
        path = Path(path)
        header = {"format": DECODER_FILE_FORMAT, "kind": self.name, "params": self.get_params(),
                  "schema": self.output_schema_.to_dict()}
        # Any: numpy's stub types savez's ``**kwds`` as also matching ``allow_pickle: bool``
        members: dict[str, Any] = {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            **{f"a_{k}": v for k, v in self._arrays().items()}}
        with open(path, "wb") as fh:
            np.savez(fh, **members)
        return path

    @classmethod
    def load(cls, path: str | Path) -> BaseDecoder:
        """Read a decoder written by :meth:`save` (any registered kind)."""
        return load_decoder(path)


def load_decoder(path: str | Path) -> BaseDecoder:
    """Load a decoder file, checking its format version, kind and schema.

    Format 1 files (no schema) load with unnamed states and the outputs their kind computes.

    Raises
    ------
    DecoderFileError
        When the file is missing, not a decoder file, of an unknown format version, or its
        schema does not fit the model it holds.
    """
    path = Path(path)
    if not path.is_file():
        raise DecoderFileError(f"decoder file {path} does not exist; train one with "
                               "`neuroloop train --scenario NAME --out FILE`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(bytes(npz["header"]).decode())
            arrays = {k[2:]: npz[k] for k in npz.files if k.startswith("a_")}
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a decoder file"
        raise DecoderFileError(f"{path} is not a neuroloop decoder file ({exc}); "
                               "retrain with `neuroloop train`") from None
    version = header.get("format")
    if version not in READABLE_DECODER_FORMATS:
        raise DecoderFileError(
            f"{path} is decoder file format {version}, this neuroloop reads formats "
            f"{', '.join(map(str, READABLE_DECODER_FORMATS))}; retrain it with `neuroloop train`")
    kind = header.get("kind")
    cls = _decoder_class(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DecoderFileError(f"{path} holds decoder kind {kind!r}, which is not installed")
    dec = cls(**header.get("params", {}))
    dec._from_arrays(arrays)
    if version >= 2:
        _adopt_recorded_schema(dec, header.get("schema"), path)
    return dec


def _adopt_recorded_schema(dec: BaseDecoder, raw: Any, path: Path) -> None:
    """Take the state names of a format-2 file's schema, after checking that the schema
    matches the model (state count) and the outputs this version of the kind computes."""
    try:
        schema = OutputSchema.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise DecoderFileError(f"{path} has a malformed output schema ({exc}); retrain it "
                               "with `neuroloop train`") from None
    if schema.n_states != dec.n_states:
        raise DecoderFileError(f"{path} names {schema.n_states} states but its model has "
                               f"{dec.n_states}; retrain it with `neuroloop train`")
    own = dec.output_schema_
    if (schema.output_names, schema.output_units) != (own.output_names, own.output_units):
        raise DecoderFileError(
            f"{path} records outputs {schema.describe_outputs()} but decoder kind {dec.name} "
            f"now computes {own.describe_outputs()}; retrain it with `neuroloop train`")
    dec._declare_schema(schema.state_names, dec.n_states)
