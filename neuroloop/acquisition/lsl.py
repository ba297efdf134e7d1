"""``LslSource``: a Lab Streaming Layer stream as a source (``lsl://NAME``, ``lsl://?type=EEG``).

Built by :func:`neuroloop.acquisition.open_source` from

    lsl://NAME?type=EEG&source_id=ID&timeout=5&unit=uV&scale=1&channel_type=eeg

through mne-lsl (its wheels ship liblsl). The stream is resolved when the source is built
(``timeout`` seconds, default 5; no match is a one-line error listing the streams that are
visible, more than one match asks for ``source_id=``). Its channel labels, types and units
(the XDF ``desc/channels`` meta-data) and its nominal rate become :class:`SourceInfo`.

* ``paced_by_device``: samples arrive in real time; :meth:`read` waits for them (the loop
  never paces an LSL source).
* The data connection is opened lazily, at the first :meth:`read` (the loop's first hop):
  samples from before the loop ran (calibration, warm-up, arming) are never queued, and an
  outlet that waits for its first consumer starts streaming exactly when the loop does.
* ``received_ns`` is the LSL timestamp of the block's last sample, moved to this host's clock
  (the inlet's ``time_correction``, refreshed every few seconds) and then to the loop's
  ``time.perf_counter_ns`` clock (offset measured at open). It is never later than the time
  the block was pulled. So a cycle's end-to-end latency runs from the outlet's push of the
  hop's last sample to the command.
* ``first_index`` counts samples from the first one received. Gaps are found on the stream's
  own timeline (sample 0's timestamp plus ``index / rate``, slowly following a clock that runs
  fast or slow): blocks that start more than ``gap_tolerance`` samples (default 0.75) behind
  it are jitter while the stream comes back on time within ``gap_confirm_s`` (default 0.5 s)
  of samples (a late push, then a burst), and a gap of ``round(least lag)`` lost samples when
  it stays behind that long; the jump in ``first_index`` is placed at the block that confirms
  it. Outlets that stamp blocks with their push time jitter by whole blocks under load; this
  keeps that from reading as loss. A block is also cut where its own timestamps jump.
* Samples are converted to microvolts from each channel's unit (``microvolts``/``uV``,
  ``millivolts``/``mV``, ``volts``/``V``, ``nanovolts``/``nV``, or an mne-lsl power-of-ten
  exponent such as ``-6``); a stream without units is taken as microvolts (``unit=`` overrides,
  ``scale=`` multiplies).

liblsl is configured once per process by :func:`configure_liblsl`: its console log is limited
to fatal errors unless the user has an ``lsl_api.cfg`` (``LSLAPICFG``, ``./lsl_api.cfg``,
``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``), which then wins. ``docs/lab.md``
tells how to make discovery work on hosts without multicast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import numpy as np

from ..errors import ConfigError
from .base import CHANNEL_TYPES, BaseSource, Block, SourceInfo

__all__ = ["LslSource", "configure_liblsl", "lsl_to_perf_offset_ns", "describe_streams",
           "lsl_unit_to_uv"]

#: Options a scenario hands to every source (meant for the synthetic patient): ignored here.
_GENERIC_OPTIONS = frozenset({"seed", "snr"})
_OPTIONS = frozenset({"type", "source_id", "timeout", "unit", "scale", "channel_type",
                      "gap_tolerance", "gap_confirm_s"})
_MAX_BLOCK = 4096
_TC_REFRESH_NS = 5_000_000_000  # refresh the clock correction every 5 s of stream
_NS = 1_000_000_000

#: LSL channel type (XDF / MNE names, lower case) -> neuroloop channel type.
_TYPE_MAP = {"eeg": "eeg", "ecog": "ecog", "seeg": "lfp", "dbs": "lfp", "lfp": "lfp",
             "emg": "emg", "stim": "stim", "trigger": "stim", "misc": "misc"}

_configured = False


def configure_liblsl() -> None:
    """Quiet liblsl's console log (fatal errors only), unless the user configured liblsl.

    Must run before anything else touches liblsl in this process; later calls do nothing.
    """
    global _configured
    if _configured:
        return
    _configured = True
    user_cfg = [os.environ.get("LSLAPICFG", ""), "lsl_api.cfg",
                str(Path.home() / "lsl_api" / "lsl_api.cfg"), "/etc/lsl_api/lsl_api.cfg"]
    if any(p and Path(p).is_file() for p in user_cfg):
        return
    from mne_lsl.lsl import set_config_content

    try:
        set_config_content("[log]\nlevel = -3\n")
    except (NotImplementedError, RuntimeError):  # pragma: no cover - old liblsl
        pass


def lsl_to_perf_offset_ns() -> int:
    """``time.perf_counter_ns() - lsl local_clock()`` in ns (best of a few bracketed reads)."""
    from mne_lsl.lsl import local_clock

    best: tuple[int, int] | None = None
    for _ in range(7):
        a = time.perf_counter_ns()
        t = local_clock()
        b = time.perf_counter_ns()
        if best is None or b - a < best[0]:
            best = (b - a, (a + b) // 2 - int(round(t * _NS)))
    assert best is not None
    return best[1]


def lsl_unit_to_uv(unit: str | None) -> float | None:
    """Factor from an LSL channel unit to microvolts; None when it is not a voltage.

    A missing unit is taken as microvolts (1.0); an mne-lsl exponent (``"-6"``) is volts
    times ``10**exponent``.
    """
    if unit is None or not unit.strip():
        return 1.0
    u = unit.strip().replace("\u00b5", "u").replace("\u03bc", "u").lower()
    table = {"uv": 1.0, "microvolt": 1.0, "microvolts": 1.0, "mv": 1e3, "millivolt": 1e3,
             "millivolts": 1e3, "v": 1e6, "volt": 1e6, "volts": 1e6, "nv": 1e-3,
             "nanovolt": 1e-3, "nanovolts": 1e-3}
    if u in table:
        return table[u]
    try:
        exponent = int(u)
    except ValueError:
        return None
    return 10.0 ** (exponent + 6) if -12 <= exponent <= 3 else None


def describe_streams(infos: list[Any]) -> str:
    """``name (type, n ch @ rate Hz, source_id)`` for each stream, comma-separated."""
    if not infos:
        return "none"
    return ", ".join(f"{i.name!r} ({i.stype or '?'}, {i.n_channels} ch @ {i.sfreq:g} Hz, "
                     f"source_id {i.source_id or '-'})" for i in infos[:12]) + \
        (f", ... ({len(infos)} in all)" if len(infos) > 12 else "")


def _number(key: str, text: Any, lo: float, hi: float, example: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"lsl option {key}={text!r} must be a number in [{lo:g}, {hi:g}]; "
                          f"e.g. {key}={example}")
    return value


class LslSource(BaseSource):
    """Neural samples from an LSL stream.

    Parameters
    ----------
    name : str or None
        Stream name to resolve (None: any name, then ``stream_type`` or ``source_id`` must
        narrow it).
    stream_type : str, optional
        LSL content type (``EEG``).
    source_id : str, optional
        The outlet's ``source_id`` (to choose among streams of the same name).
    timeout_s : float
        Seconds to wait for the stream to be found (and for its description).
    unit : str, optional
        Unit to assume for every channel instead of the stream's.
    scale : float
        Extra factor after the conversion to microvolts.
    channel_type : str, optional
        Type reported for every channel instead of the stream's.
    gap_tolerance : float
        Timestamp jitter tolerated before a gap is counted, in sample periods (0.75).
    gap_confirm_s : float
        How long (in samples' worth of seconds) the stream must stay behind its timeline
        before the shortfall counts as lost samples (0.5).
    """

    scheme: ClassVar[str] = "lsl"
    paced_by_device: ClassVar[bool] = True

    def __init__(self, name: str | None = None, *, stream_type: str | None = None,
                 source_id: str | None = None, timeout_s: float = 5.0,
                 unit: str | None = None, scale: float = 1.0,
                 channel_type: str | None = None, gap_tolerance: float = 0.75,
                 gap_confirm_s: float = 0.5) -> None:
        super().__init__()
        configure_liblsl()
        from mne_lsl.lsl import StreamInlet, resolve_streams

        if not (name or stream_type or source_id):
            raise ConfigError("lsl URL names no stream; use lsl://NAME or lsl://?type=EEG")
        if channel_type is not None and channel_type not in CHANNEL_TYPES:
            raise ConfigError(f"lsl option channel_type={channel_type!r} is not a channel type; "
                              f"use one of {', '.join(CHANNEL_TYPES)}")
        self.url = "lsl://" + (name or "") + (f"?type={stream_type}" if stream_type else "")
        found = resolve_streams(timeout=timeout_s, name=name or None, stype=stream_type or None,
                                source_id=source_id or None)
        if not found:
            visible = resolve_streams(timeout=min(1.0, timeout_s))
            want = " ".join(f"{k}={v!r}" for k, v in (("name", name), ("type", stream_type),
                                                        ("source_id", source_id)) if v)
            raise ConfigError(f"no LSL stream with {want} within {timeout_s:g} s (visible "
                              f"streams: {describe_streams(visible)}); start the outlet, fix "
                              "the name, or raise timeout= (docs/lab.md: discovery)")
        uids = {i.uid for i in found}
        if len(uids) > 1:
            raise ConfigError(f"{len(found)} LSL streams match {self.url} "
                              f"({describe_streams(found)}); add source_id= to choose one")
        sinfo = found[0]
        if sinfo.dtype == "string" or sinfo.dtype is str:
            raise ConfigError(f"LSL stream {sinfo.name!r} carries strings (a marker stream); "
                              "a source needs numeric samples")
        if not sinfo.sfreq > 0:
            raise ConfigError(f"LSL stream {sinfo.name!r} has an irregular rate (nominal 0 Hz); "
                              "a source needs a regular-rate stream")
        self._inlet = StreamInlet(sinfo, max_buffered=60, recover=True)
        full = self._full_info(sinfo, timeout_s)
        n_ch = int(sinfo.n_channels)
        names = _channel_attr(full, "get_channel_names", n_ch)
        types = _channel_attr(full, "get_channel_types", n_ch)
        units = _channel_attr(full, "get_channel_units", n_ch)
        ch_names = tuple(n or f"ch{i + 1}" for i, n in enumerate(names))
        if channel_type is not None:
            ch_types = (channel_type,) * n_ch
        else:
            ch_types = tuple(_TYPE_MAP.get((t or "eeg").strip().lower(), "misc") for t in types)
        factors = np.empty(n_ch)
        for i in range(n_ch):
            f = lsl_unit_to_uv(unit if unit is not None else units[i])
            if f is None:
                if ch_types[i] in ("stim", "misc"):
                    f = 1.0  # not a voltage, passed as it is
                else:
                    raise ConfigError(f"channel {ch_names[i]!r} of LSL stream {sinfo.name!r} is "
                                      f"in {units[i]!r}, not a voltage; override with unit=uV")
            factors[i] = f * scale
        self._factors = factors if np.any(factors != 1.0) else None
        self.stream_name = str(sinfo.name)
        self.stream_type = str(sinfo.stype)
        self.stream_source_id = str(sinfo.source_id)
        self.info = SourceInfo(channel_names=ch_names, channel_types=ch_types,
                               sampling_rate_hz=float(sinfo.sfreq), unit="uV")
        self._timeout_s = float(timeout_s)
        self._init_reading(n_ch, float(sinfo.sfreq), gap_tolerance, gap_confirm_s)

    def _init_reading(self, n_channels: int, rate_hz: float, gap_tolerance: float,
                      gap_confirm_s: float) -> None:
        """Buffers, stream position, gap detector and counters (no data connection yet)."""
        self._fs = float(rate_hz)
        self._gap_periods = 1.0 + float(gap_tolerance)
        self._streaming = False
        self._buf = np.zeros((_MAX_BLOCK, n_channels))
        self._ts = np.zeros(_MAX_BLOCK)
        self._dts = np.zeros(_MAX_BLOCK)
        self._over = np.zeros(_MAX_BLOCK, dtype=bool)
        self._labels = np.zeros(0, dtype=np.int8)  # LSL carries no ground truth
        self._block = Block(data=self._buf[:0], labels=self._labels)
        self._views: dict[tuple[int, int], np.ndarray] = {}
        self._off = 0  # pending samples: self._buf[self._off:self._off + self._n]
        self._n = 0
        self._next_index = 0
        self._ref_ts: float | None = None  # LSL time of sample 0 on the stream's timeline
        self._behind_from = -1  # stream index where the current run behind began (-1: none)
        self._behind_min = 0.0
        self._confirm_samples = max(1, int(round(gap_confirm_s * self._fs)))
        self._offset_ns = 0
        self._tc_s = 0.0
        self._tc_next_ns = 0
        #: counters (see :meth:`stats`)
        self.samples_received = 0
        self.samples_lost = 0
        self.gaps = 0

    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]) -> LslSource:
        """``lsl://NAME?type=EEG&source_id=ID&timeout=5&unit=uV&scale=1&channel_type=eeg``."""
        opts = {k: v for k, v in options.items() if k not in _GENERIC_OPTIONS}
        unknown = sorted(set(opts) - _OPTIONS)
        if unknown:
            raise ConfigError(f"unknown lsl option(s) {', '.join(unknown)}; use "
                              f"{', '.join(sorted(_OPTIONS))}")
        timeout = _number("timeout", opts.get("timeout", 5.0), 0.05, 3600.0, "5")
        scale = _number("scale", opts.get("scale", 1.0), -1e9, 1e9, "1.0")
        if scale == 0:
            raise ConfigError("lsl option scale=0 would zero every sample; use e.g. scale=1.0")
        tol = _number("gap_tolerance", opts.get("gap_tolerance", 0.75), 0.0, 1000.0, "0.75")
        confirm = _number("gap_confirm_s", opts.get("gap_confirm_s", 0.5), 0.0, 60.0, "0.5")
        name = unquote(location).strip("/") or None
        return cls(name, stream_type=opts.get("type") or None,
                   source_id=opts.get("source_id") or None, timeout_s=timeout,
                   unit=opts.get("unit"), scale=scale, channel_type=opts.get("channel_type"),
                   gap_tolerance=tol, gap_confirm_s=confirm)

    def _full_info(self, sinfo: Any, timeout_s: float) -> Any:
        """The stream's full description (channel meta-data) without opening the data
        connection (an outlet that waits for a consumer must not start yet)."""
        try:
            from ctypes import byref, c_double, c_int

            from mne_lsl.lsl.load_liblsl import lib
            from mne_lsl.lsl.stream_info import _BaseStreamInfo

            err = c_int()
            obj = lib.lsl_get_fullinfo(self._inlet._obj, c_double(timeout_s), byref(err))
            if err.value == 0 and obj:
                return _BaseStreamInfo(obj)
        except (ImportError, AttributeError):  # pragma: no cover - mne-lsl internals moved
            pass
        return sinfo  # the short description: channels are then named ch1..chN

    # -- BaseSource -------------------------------------------------------------------------
    def _open(self) -> None:
        """Measure the clock offsets (the LSL clock to ``perf_counter_ns``, and the outlet's
        host to this one); the data connection waits for the first :meth:`read`."""
        self._offset_ns = lsl_to_perf_offset_ns()
        self._refresh_time_correction(min(2.0, self._timeout_s))

    def connect(self) -> None:
        """Open the data connection now (else the first :meth:`read` does): samples pushed
        from now on are queued for this source."""
        if not self._is_open:
            self.open()
        if not self._streaming:
            self._inlet.open_stream(timeout=self._timeout_s)  # returns once subscribed
            self._streaming = True

    def _start_stream(self) -> None:
        """Subscribe to the data: the first pull opens the connection implicitly (mne-lsl's
        ``open_stream`` sleeps 0.5 s after subscribing, to work around liblsl issue 176, in
        which samples pushed right after the subscription are missed: an outlet that waits
        for its consumer does not push before it sees the connection, and a running one has
        no history to miss)."""
        self._streaming = True

    def _refresh_time_correction(self, timeout_s: float) -> None:
        try:
            self._tc_s = float(self._inlet.time_correction(timeout=timeout_s))
        except Exception:  # noqa: BLE001 - no estimate yet: keep the last one
            pass
        self._tc_next_ns = time.perf_counter_ns() + _TC_REFRESH_NS

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        wait_s = 1.0 if timeout is None else max(0.0, timeout)
        if not self._streaming:  # the outlet may start only now: give it the open timeout
            self._start_stream()
            wait_s = max(wait_s, self._timeout_s)
        if self._n == 0 and not self._pull(min(max_samples, _MAX_BLOCK), wait_s):
            return None
        received_ns = time.perf_counter_ns()
        off = self._off
        k = min(max_samples, self._n)
        ts = self._ts
        fs = self._fs
        first = self._next_index
        t_first = float(ts[off])
        if self._ref_ts is None:
            self._ref_ts = t_first  # sample 0
        else:  # how far the stream is behind its own timeline, in samples
            lag = (t_first - self._ref_ts) * fs - first
            tol = self._gap_periods - 1.0
            if lag > tol:
                if self._behind_from < 0:  # a run of blocks behind the timeline starts
                    self._behind_from = first
                    self._behind_min = lag
                else:
                    self._behind_min = min(self._behind_min, lag)
                if first - self._behind_from >= self._confirm_samples:
                    # behind for gap_confirm_s of samples running: they were lost
                    lost = int(round(self._behind_min))
                    first += lost
                    self.samples_lost += lost
                    self.gaps += 1
                    self._behind_from = -1
            else:
                self._behind_from = -1
                if lag < -0.5 * fs:  # timestamps jumped back (outlet restarted): re-anchor
                    self._ref_ts = t_first - first / fs
                else:  # within tolerance: follow a slow or fast clock, never a gap
                    self._ref_ts += 0.05 * lag / fs
        if k > 1:  # a block ends where its own timestamps jump: the rest is read next
            dts = self._dts[:k - 1]
            np.subtract(ts[off + 1:off + k], ts[off:off + k - 1], out=dts)
            over = self._over[:k - 1]
            np.greater(dts, self._gap_periods / fs, out=over)
            j = int(over.argmax())
            if over[j]:
                k = j + 1
        view = self._views.get((off, k))
        if view is None:  # the usual (0, hop) view is made once
            view = self._buf[off:off + k]
            if len(self._views) < 64:
                self._views[(off, k)] = view
        block = self._block
        block.data = view
        block.first_index = first
        self._next_index = first + k
        last_ts = float(ts[off + k - 1])
        self._off += k
        self._n -= k
        if self._n == 0:
            self._off = 0
        self.samples_received += k
        if received_ns >= self._tc_next_ns:
            self._refresh_time_correction(0.0)
        stamped = int((last_ts + self._tc_s) * _NS) + self._offset_ns
        block.received_ns = stamped if 0 < stamped < received_ns else received_ns
        return block

    def _pull(self, n: int, timeout_s: float) -> bool:
        """Pull up to ``n`` samples into the start of the buffer (waits up to ``timeout_s``
        for all of them); False when none came."""
        data, ts = self._inlet.pull_chunk(timeout=timeout_s, max_samples=n)
        got = int(ts.shape[0])
        if got == 0:
            return False
        if self._factors is None:
            self._buf[:got] = data
        else:
            np.multiply(data, self._factors, out=self._buf[:got])
        self._ts[:got] = ts
        self._off = 0
        self._n = got
        return True

    def _close(self) -> None:
        try:
            if self._streaming:
                self._inlet.close_stream()
        except Exception:  # noqa: BLE001 - closing a stream that is already gone
            pass
        self._streaming = False

    def stats(self) -> dict[str, Any]:
        """Stream name, samples received and lost, gaps, the current clock correction."""
        return {"stream": self.stream_name, "type": self.stream_type,
                "source_id": self.stream_source_id, "samples_received": self.samples_received,
                "samples_lost": self.samples_lost, "gaps": self.gaps,
                "time_correction_s": self._tc_s}


def _channel_attr(info: Any, getter: str, n: int) -> list[str | None]:
    try:
        values = getattr(info, getter)()
    except Exception:  # noqa: BLE001 - a malformed description: treat as missing
        values = None
    if not values or len(values) != n:
        return [None] * n
    return [None if v is None else str(v) for v in values]
