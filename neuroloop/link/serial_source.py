"""``SerialSource``: samples from a device on a serial link (``serial://``, ``socket://``, a path).

Built by :func:`neuroloop.acquisition.open_source` from ``serial:///dev/ttyUSB0?baud=921600``,
``/dev/pts/5`` or ``socket://127.0.0.1:7000`` (options ``baud`` and ``key_file``; keys
otherwise from the environment), or taken from :attr:`DeviceLink.source`.

* ``paced_by_device``: samples arrive in real time; :meth:`read` waits for them.
* ``first_index`` is the device's sample index (continued across device reboots), so a
  dropped frame shows as a jump and is never papered over: lost samples are not synthesised.
* ``received_ns`` is ``time.perf_counter_ns()`` when the frame holding the block's last
  sample arrived (the loop's clock in live runs).
* labels are the simulator's ground truth when the device sends them, else ``NO_LABEL``.
* :attr:`safety_inputs` is the link's monitor: a session built on this source polls it
  every cycle (heartbeat lost, stream stalled, NAK storm, device fault, impedance).
* :meth:`samples_ready` and :meth:`wait_for_samples` tell the control loop whether samples
  are waiting without taking them: it warms its caches before a hop is expected, unless the
  hop is there already.
* The first :meth:`read` drops whatever was queued before it, and frames still in the port's
  buffer (they arrive more than 10 ms later than the stream's fastest frame, judged from the
  device timestamps): samples from before the loop started are history, not input. Counted
  in ``frames_discarded_at_start``.

The returned :class:`Block` and its arrays are reused by the next read (no allocation per
read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..acquisition.base import BaseSource, Block, SourceInfo
from ..errors import ConfigError

if TYPE_CHECKING:
    from .device import DeviceLink
    from .monitor import LinkMonitor

__all__ = ["SerialSource"]

#: Options of the synthetic patient a scenario may pass along; the device decides those.
_DEVICE_SIDE_OPTIONS = frozenset({"seed", "snr", "patient", "segment", "artifact_rate_per_min",
                                  "line_hz", "duration_s", "n_channels", "sampling_rate_hz",
                                  "max_block_samples"})
_MAX_BLOCK = 4096


class SerialSource(BaseSource):
    """Neural samples from a serial-attached device.

    Parameters
    ----------
    link : DeviceLink, optional
        An existing link (``DeviceLink.source`` passes itself).
    url : str, optional
        Device URL to open a shared link on (used by :meth:`from_url`).
    key_file : str, optional
    baudrate : int, optional
    """

    scheme: ClassVar[str] = "serial"
    paced_by_device: ClassVar[bool] = True

    def __init__(self, *, link: DeviceLink | None = None, url: str | None = None,
                 key_file: str | None = None, baudrate: int | None = None) -> None:
        super().__init__()
        if (link is None) == (url is None):
            raise ValueError("give exactly one of link= and url=")
        self._link = link
        self._url = url
        self._key_file = key_file
        self._baudrate = baudrate
        self._owns_ref = link is None
        self._buf: np.ndarray | None = None
        self._lab: np.ndarray | None = None
        self._block: Block | None = None
        self._views: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._info: SourceInfo | None = None

    @classmethod
    def from_url(cls, scheme: str, location: str, options: Mapping[str, Any]) -> SerialSource:
        """Build from ``serial://PATH``, ``socket://HOST:PORT`` or a bare path.

        Options: ``baud`` (int), ``key_file`` (path). Options of the synthetic patient
        (``seed``, ``snr`` ...) are ignored: the device generates its own data.
        """
        opts = dict(options)
        baud = opts.pop("baud", opts.pop("baudrate", None))
        key_file = opts.pop("key_file", None)
        unknown = sorted(k for k in opts if k not in _DEVICE_SIDE_OPTIONS)
        if unknown:
            raise ConfigError(f"serial source option {unknown[0]!r} is unknown; use baud= or "
                              "key_file=")
        try:
            baudrate = None if baud is None else int(baud)
        except (TypeError, ValueError):
            raise ConfigError(f"serial source option baud={baud!r} is not an integer; use e.g. "
                              "baud=921600") from None
        url = f"socket://{location}" if scheme == "socket" else location
        return cls(url=url, key_file=None if key_file is None else str(key_file),
                   baudrate=baudrate)

    @property
    def link(self) -> DeviceLink:
        """The device link (opened on :meth:`open`)."""
        if self._link is None:
            from .device import open_device_link

            assert self._url is not None
            self._link = open_device_link(self._url, key_file=self._key_file,
                                          baudrate=self._baudrate)
        return self._link

    @property
    def safety_inputs(self) -> LinkMonitor:
        """The device link's safety-input provider (a session's loop polls it every cycle)."""
        return self.link.monitor

    @property
    def info(self) -> SourceInfo:
        """What the device streams (from its INFO frame; opens the link if needed)."""
        if self._info is None:
            link = self.link
            if not link.is_open:
                link.open()
            self._info = link._source_info()
        return self._info

    @info.setter
    def info(self, value: SourceInfo) -> None:
        # BaseSource.info is a plain attribute; keep it assignable here too.
        self._info = value

    def _open(self) -> None:
        n_ch = self.info.n_channels
        self._buf = np.zeros((_MAX_BLOCK, n_ch), dtype=np.float64)
        self._lab = np.zeros(_MAX_BLOCK, dtype=np.int8)
        self._block = Block(data=self._buf[:0], first_index=0, labels=self._lab[:0])
        self._views.clear()

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        assert self._buf is not None and self._lab is not None and self._block is not None
        n, first, recv = self.link._read_into(self._buf, self._lab, min(max_samples, _MAX_BLOCK),
                                              timeout)
        if n == 0:
            return None
        view = self._views.get(n)
        if view is None:
            view = (self._buf[:n], self._lab[:n])
            self._views[n] = view
        block = self._block
        block.data, block.labels = view
        block.first_index = first
        block.received_ns = recv
        return block

    def samples_ready(self) -> bool:
        """True when samples are waiting for :meth:`read` (never blocks; False before the
        first read, which drops whatever was queued before it)."""
        return self.link.samples.ready()

    def wait_for_samples(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s) for samples without reading them (a loop sleeps with
        it until shortly before a hop is expected; the samples wake it early)."""
        link = self.link
        return link.samples.wait_ready(max(0.0, timeout_s), link._interrupted)

    def _close(self) -> None:
        if self._owns_ref and self._link is not None:
            self._link.release()

    def stats(self) -> dict[str, Any]:
        """The link's counters (see :meth:`DeviceLink.stats`)."""
        return self.link.stats()

