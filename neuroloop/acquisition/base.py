"""Source interface: where samples come from (synthetic patient, serial device, recording).

Modelled on python-can's ``BusABC``: the public methods live here and do the bookkeeping
(open state, idempotent close, context manager); a backend implements the private hooks
``_open``, ``_read`` and ``_close`` only.

Samples are laid out ``(n_samples, n_channels)``, C-contiguous, float64, in microvolts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ConfigError, DeviceError

__all__ = ["CHANNEL_TYPES", "Block", "SourceInfo", "BaseSource", "NO_LABEL",
           "STIM_EFFECT_DELAY_HOPS", "stimulation_effect_sample"]

CHANNEL_TYPES = ("ecog", "eeg", "lfp", "emg", "stim", "misc")

#: Label value meaning "ground truth unknown" (real devices, unlabelled recordings).
NO_LABEL = -1

#: Hops between the hop whose command it is and the first sample a stimulation command
#: affects in a patient that reacts to stimulation (:meth:`BaseSource.stimulation_applied`).
#: One hop lets a simulated patient produce the next hop while the current one is being
#: computed (prefetch), and keeps the reaction a function of sample indices only.
STIM_EFFECT_DELAY_HOPS = 1


def stimulation_effect_sample(last_sample: int, hop_samples: int) -> int:
    """First sample index a command affects, for the command of the hop whose last sample is
    ``last_sample``: ``last_sample + 1 + STIM_EFFECT_DELAY_HOPS * hop_samples``.

    A pure function of sample indices, so that ``--fast`` runs are reproducible and a replay
    (whose recorded samples already contain the reaction) is identical.
    """
    return int(last_sample) + 1 + STIM_EFFECT_DELAY_HOPS * int(hop_samples)


@dataclass(frozen=True)
class SourceInfo:
    """What a source delivers.

    Attributes
    ----------
    channel_names : tuple of str, length n_channels
    channel_types : tuple of str, length n_channels, each one of :data:`CHANNEL_TYPES`
    sampling_rate_hz : float
    unit : str
        Physical unit of the samples after scaling (``"uV"``).
    intention_names : tuple of str
        Names of the ground-truth intention states the labels index into (empty if none).
    """

    channel_names: tuple[str, ...]
    channel_types: tuple[str, ...]
    sampling_rate_hz: float
    unit: str = "uV"
    intention_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.channel_names) != len(self.channel_types):
            raise ValueError("channel_names and channel_types differ in length")
        for t in self.channel_types:
            if t not in CHANNEL_TYPES:
                raise ValueError(f"channel type {t!r} is not one of {CHANNEL_TYPES}")
        if not (self.sampling_rate_hz > 0 and np.isfinite(self.sampling_rate_hz)):
            raise ValueError(f"sampling_rate_hz must be positive, got {self.sampling_rate_hz}")

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)


@dataclass
class Block:
    """A block of consecutive samples handed out by :meth:`BaseSource.read`.

    A source may reuse one ``Block`` and its arrays for every read (the hot path allocates
    nothing): the contents are valid until the next ``read``. Copy them to keep them.

    Attributes
    ----------
    data : ndarray, shape (n_samples, n_channels), float64, microvolts
    first_index : int
        Index of ``data[0]`` in the source's sample stream (starts at 0). A gap between two
        blocks (``first_index`` jumps) means samples were lost; sources never hide a gap.
    labels : ndarray, shape (n_samples,), int8
        Ground-truth intention per sample, :data:`NO_LABEL` when unknown.
    received_ns : int
        Monotonic time (ns, the loop's clock) at which the block's last sample became
        available to the host. 0 when the source does not know (the loop then stamps it).
    """

    data: np.ndarray
    first_index: int = 0
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    received_ns: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])


class BaseSource:
    """Abstract source of neural samples.

    Use it as a context manager::

        with open_source("synthetic://bsi?seed=1") as src:
            block = src.read(max_samples=59)

    Subclasses set :attr:`info` in ``__init__`` and implement ``_open``, ``_read``, ``_close``.
    """

    #: URL scheme this backend answers to (``synthetic``, ``serial``, ``replay``, ``edf`` ...).
    scheme: ClassVar[str] = ""
    #: True when samples arrive in real time on their own (a device): the loop must not pace.
    paced_by_device: ClassVar[bool] = False
    #: True for a simulated patient whose signal depends on the stimulation it receives: the
    #: loop then calls :meth:`stimulation_applied` after every command it sends.
    reacts_to_stimulation: ClassVar[bool] = False

    info: SourceInfo

    #: Source label -> scenario intention index, 256 entries indexed modulo 256 (so that
    #: NO_LABEL and every other negative label give NO_LABEL); None when labels pass as read.
    _label_lut: np.ndarray | None = None

    def __init__(self) -> None:
        self._is_open = False

    # -- public API -------------------------------------------------------------------------
    def open(self) -> BaseSource:
        """Open the source (idempotent). Raises :class:`DeviceError` when it cannot."""
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def read(self, max_samples: int, timeout: float | None = None) -> Block | None:
        """Return the next block of at most ``max_samples`` samples.

        Parameters
        ----------
        max_samples : int
            Upper bound on ``block.n_samples``; offline sources return exactly this many
            until they run out.
        timeout : float or None
            Seconds to wait for data; ``None`` waits as the backend sees fit.

        Returns
        -------
        Block or None
            ``None`` on timeout or when a finite source is exhausted (see :attr:`exhausted`).
        """
        if not self._is_open:
            raise DeviceError(f"{type(self).__name__} is not open; call open() first")
        if max_samples <= 0:
            raise ValueError(f"max_samples must be positive, got {max_samples}")
        block = self._read(int(max_samples), timeout)
        if self._label_lut is None or block is None:
            return block
        return self._map_labels(block)

    def map_intentions(self, names: Sequence[str], scenario: str = "") -> None:
        """Deliver labels as indices into ``names`` (a scenario's intention states), by name.

        The source's own labels index :attr:`SourceInfo.intention_names`; after this call
        :meth:`read` translates them through a lookup table (no allocation per read once the
        buffers have grown to the largest block). Nothing changes when the source has no
        intention names or has exactly ``names``.

        Raises
        ------
        ConfigError
            When the source labels a state that is not in ``names``.
        """
        names = tuple(names)
        own = tuple(self.info.intention_names)
        self._label_lut = None
        if not own or own == names:
            return
        for name in own:
            if name not in names:
                raise ConfigError(
                    f"{self.scheme or type(self).__name__} source labels intention {name!r}, "
                    f"which is not a state of scenario {scenario or '?'} ({', '.join(names)}); "
                    "use a source whose intention names are the scenario's")
        lut = np.full(256, NO_LABEL, dtype=np.int8)
        for i, name in enumerate(own):
            lut[i] = names.index(name)
        self._label_lut = lut
        self._map_idx = np.zeros(0, dtype=np.intp)
        self._map_out = np.zeros(0, dtype=np.int8)
        self._map_block = Block(data=np.zeros((0, self.info.n_channels)))

    def missing_intention_message(self, name: str, where: str) -> str | None:
        """Why calibration data from this source has no sample labelled ``name`` when the
        source cannot label it at all (with the fix), or None when it can (then the
        segment was too short or the state is rare)."""
        own = self.info.intention_names
        if own and name not in own:
            return (f"calibration data of {where} has no hops labelled {name!r} (the source "
                    f"labels only {', '.join(own)}); calibrate from a source that labels "
                    "every state of the scenario")
        return None

    def _map_labels(self, block: Block) -> Block:
        """``block`` with its labels translated to the scenario's indices (into buffers of
        this object: the source's own arrays are left untouched)."""
        lut = self._label_lut
        assert lut is not None
        n = block.labels.shape[0]
        if n != block.n_samples:  # no labels: pass the block as it is
            return block
        if n > self._map_out.shape[0]:
            self._map_idx = np.zeros(n, dtype=np.intp)
            self._map_out = np.zeros(n, dtype=np.int8)
        full = n == self._map_out.shape[0]
        idx = self._map_idx if full else self._map_idx[:n]
        out = self._map_out if full else self._map_out[:n]
        np.copyto(idx, block.labels, casting="unsafe")
        np.take(lut, idx, axis=0, out=out, mode="wrap")
        m = self._map_block
        m.data = block.data
        m.first_index = block.first_index
        m.received_ns = block.received_ns
        m.labels = out
        return m

    def close(self) -> None:
        """Close the source. Safe to call more than once."""
        if self._is_open:
            self._is_open = False
            self._close()

    @property
    def exhausted(self) -> bool:
        """True when a finite source (a recording) has no more samples."""
        return False

    def start_prefetch(self, chunk_samples: int, *, release_when_idle: bool = False) -> bool:
        """Produce samples ahead of the reader, ``chunk_samples`` at a time, if the backend can.

        A simulated source overrides this to run its model in a thread of its own, so that a
        hop is ready when it is due, as it would be from hardware, and the controller's
        latency is not the simulation's. Sources that deliver real samples (a device, a
        recording) have nothing to produce: the default does nothing and returns False.

        ``release_when_idle``: the producer may refill a chunk only when :meth:`idle` says the
        reader is waiting (a paced live loop), so that it never competes with the controller
        for the interpreter while a cycle is being computed.
        """
        del chunk_samples, release_when_idle
        return False

    def idle(self) -> None:
        """The reader is about to wait for the next hop: a producer may work now."""

    def stimulation_applied(self, amplitude_ma: np.ndarray, frequency_hz: float,
                            pulse_width_us: float, from_sample: int) -> None:
        """Tell a patient model what stimulation it receives from sample ``from_sample`` on.

        The loop calls it after every command it hands to the stimulator (when
        :attr:`reacts_to_stimulation` is True), with ``from_sample`` =
        :func:`stimulation_effect_sample` of the hop; a device's firmware calls it on its own
        patient model with what its output stage applies. The command stays in force until
        the next call. Plain numbers and arrays (acquisition does not import stimulation).

        Parameters
        ----------
        amplitude_ma : ndarray, shape (n_contacts,)
            Signed current per contact, mA (cathodic negative; all zero = off). Copied.
        frequency_hz : float
            Pulse rate, Hz (0 when off).
        pulse_width_us : float
            Phase width, µs.
        from_sample : int
            First sample index of this source's stream that the command affects. Calls come
            with non-decreasing ``from_sample``.

        Notes
        -----
        A reacting source that produces samples ahead (prefetch) must never have produced a
        sample at or beyond ``from_sample`` of a command it has not yet been told about:
        :class:`~neuroloop.acquisition.prefetch.StimulationHorizon` holds its producer back.
        The default does nothing (a recording, a device stream, a patient that ignores it).
        """
        del amplitude_ma, frequency_hz, pulse_width_us, from_sample

    def metrics(self) -> dict[str, float]:
        """Figures about the patient over the run so far, for the run summary (``"patient"``
        in ``--json``), e.g. the time a biomarker spent above its threshold. Default: none."""
        return {}

    def __enter__(self) -> BaseSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks ----------------------------------------------------------------------
    def _open(self) -> None:  # pragma: no cover - trivial default
        pass

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - trivial default
        pass
