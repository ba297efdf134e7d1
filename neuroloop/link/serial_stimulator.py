"""``SerialStimulator``: stimulation commands to a device over the serial link.

* :meth:`send` writes an authenticated STIM and returns at once; the ACK (with the device's
  application time and its own latency measurement) or NAK is handled by the link's reader
  thread and shows up in :meth:`DeviceLink.stats` and in the link's safety inputs
  (:attr:`safety_inputs`, polled by a session's loop every cycle).
* :meth:`stop` sends STOP (no tag; the device always obeys it) and never raises.
* :meth:`arm` sends ARM and waits for the answer (a wrong key raises
  :class:`~neuroloop.errors.AuthenticationError`: "device rejected our key: check --key-file").
* :meth:`expect_array` names the scenario's electrode array: the link then refuses to arm a
  device that reports another one in INFO (DeviceError naming both).
  If nobody arms explicitly, the link arms the device when the control loop first reads or
  sends (``LinkSettings.auto_arm``), so that the device starts from zero with the loop.
  After a watchdog trip or a device reboot only an explicit :meth:`arm` re-arms it.

The same link (and port) serves :class:`~neuroloop.link.serial_source.SerialSource`: build
both from one URL (``SerialStimulator.from_url(url)`` and ``open_source(url)``) or take
``link.stimulator`` and ``link.source`` from :func:`~neuroloop.link.device.open_device_link`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stimulation.command import StimCommand
from ..stimulation.stimulators import BaseStimulator

if TYPE_CHECKING:
    from ..stimulation.electrodes import ElectrodeArray
    from .device import DeviceLink
    from .monitor import LinkMonitor

__all__ = ["SerialStimulator"]


class SerialStimulator(BaseStimulator):
    """Stimulator backend on a :class:`~neuroloop.link.device.DeviceLink`.

    Parameters
    ----------
    link : DeviceLink, optional
    url, key_file, baudrate : optional
        Open (or share) the link to ``url`` instead (see :meth:`from_url`).
    """

    def __init__(self, *, link: DeviceLink | None = None, url: str | None = None,
                 key_file: str | None = None, baudrate: int | None = None) -> None:
        if (link is None) == (url is None):
            raise ValueError("give exactly one of link= and url=")
        self._link = link
        self._url = url
        self._key_file = key_file
        self._baudrate = baudrate
        self._owns_ref = link is None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, key_file: str | None = None,
                 baudrate: int | None = None) -> SerialStimulator:
        """A stimulator on the (shared) link to ``url``."""
        return cls(url=url, key_file=key_file, baudrate=baudrate)

    @property
    def link(self) -> DeviceLink:
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

    def open(self) -> SerialStimulator:
        self.link  # noqa: B018 - opens the shared link
        return self

    def arm(self, timeout_s: float = 1.0) -> None:
        """ARM the device (blocking; see :meth:`DeviceLink.arm`)."""
        self.link.arm(timeout_s)

    def expect_array(self, array: ElectrodeArray) -> None:
        """Refuse to arm unless the device reports ``array`` (see
        :meth:`DeviceLink.expect_array`; raises DeviceError on a mismatch)."""
        self.link.expect_array(array)

    def send(self, command: StimCommand, *, hop_last_sample: int = -1) -> None:
        """Send ``command`` as an authenticated STIM without waiting for the ACK.

        Raises
        ------
        DeviceError
            The port vanished (one line; the device's watchdog stops its output).
        AuthenticationError
            The device rejected our key.
        """
        self.link.send_stim(command, hop_last_sample)

    def rehearsal(self) -> BaseStimulator:
        """A stimulator for the loop's shadow cycle: it encodes every command into a STIM
        frame exactly as :meth:`send` does (message, header, tag, CRC, COBS), so the real
        send finds that code warm, but sends nothing and changes no link state."""
        return _RehearsalStimulator(self.link)

    def stop(self) -> None:
        """Send STOP. Always allowed, never authenticated, never raises."""
        if self._link is not None:
            self._link.send_stop()

    def status(self) -> dict[str, Any]:
        """The link's statistics (including the device's state and battery)."""
        return self.link.stats() if self._link is not None else {}

    def close(self) -> None:
        """STOP, then release the link if this stimulator opened it."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._owns_ref and self._link is not None:
            self._link.release()


class _RehearsalStimulator(BaseStimulator):
    """Encodes STIM frames and drops them (see :meth:`SerialStimulator.rehearsal`)."""

    def __init__(self, link: DeviceLink) -> None:
        self._link = link

    def send(self, command: StimCommand, hop_last_sample: int = -1) -> None:
        self._link.rehearse_stim(command, hop_last_sample)

    def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}
