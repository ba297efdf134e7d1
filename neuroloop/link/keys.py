"""Link keys: one HMAC-SHA256 key per direction, from a file or the environment, never from code.

Key file (TOML, or JSON when it starts with ``{``), mode 0600::

    # neuroloop link keys (HMAC-SHA256), one per direction. Keep this file private.
    h2d = "5f1c...64 hex digits"   # host -> device: STIM, ARM, HEARTBEAT
    d2h = "9a07...64 hex digits"   # device -> host: every device frame

Environment: ``NEUROLOOP_KEY_H2D`` and ``NEUROLOOP_KEY_D2H`` (hex), or ``NEUROLOOP_KEY_FILE``.
A bench session is two commands: ``firmware-sim --pty --key-file k.toml`` creates the file
(:func:`generate_key_file`) if it does not exist, ``neuroloop run --device ... --key-file k.toml``
reads it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = ["LinkKeys", "load_keys", "load_key_file", "generate_key_file", "KEY_LEN",
           "ENV_H2D", "ENV_D2H", "ENV_FILE"]

#: Bytes of a generated key (the HMAC-SHA256 block-size-safe length, 256 bits).
KEY_LEN = 32
_MIN_KEY_LEN = 16
_MAX_KEY_LEN = 64
ENV_H2D = "NEUROLOOP_KEY_H2D"
ENV_D2H = "NEUROLOOP_KEY_D2H"
ENV_FILE = "NEUROLOOP_KEY_FILE"
_HOW = (f"pass --key-file FILE (firmware-sim --key-file FILE creates one) or set {ENV_H2D} "
        f"and {ENV_D2H}")


@dataclass(frozen=True)
class LinkKeys:
    """The two link keys.

    Attributes
    ----------
    h2d : bytes
        Host -> device key: tags STIM, ARM and HEARTBEAT frames.
    d2h : bytes
        Device -> host key: tags every device frame.
    source : str
        Where the keys came from (a path or the environment), for error messages.
    """

    h2d: bytes = field(repr=False)
    d2h: bytes = field(repr=False)
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("h2d", "d2h"):
            key = getattr(self, name)
            if not isinstance(key, bytes | bytearray):
                raise TypeError(f"{name} key must be bytes")
            if not _MIN_KEY_LEN <= len(key) <= _MAX_KEY_LEN:
                raise ConfigError(f"{name} key from {self.source or 'caller'} is {len(key)} bytes; "
                                  f"use {_MIN_KEY_LEN}..{_MAX_KEY_LEN} bytes "
                                  f"({2 * KEY_LEN} hex digits recommended)")
        if self.h2d == self.d2h:
            raise ConfigError(f"h2d and d2h keys from {self.source or 'caller'} are identical; "
                              "use a different key per direction")

    def fingerprint(self) -> str:
        """Short non-secret identifier of the key pair (first 8 hex digits of a SHA-256)."""
        import hashlib

        return hashlib.sha256(b"neuroloop-keys" + self.h2d + self.d2h).hexdigest()[:8]


def _parse_hex(value: object, name: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: key {name!r} must be a hex string; {_HOW}")
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise ConfigError(f"{where}: key {name!r} is not valid hex; regenerate the file with "
                          "firmware-sim --key-file NEWFILE") from None


def _from_mapping(data: Mapping[str, object], where: str) -> LinkKeys:
    missing = [k for k in ("h2d", "d2h") if k not in data]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}; the file needs hex strings "
                          "'h2d' and 'd2h'")
    return LinkKeys(_parse_hex(data["h2d"], "h2d", where), _parse_hex(data["d2h"], "d2h", where),
                    source=where)


def load_key_file(path: str | os.PathLike[str]) -> LinkKeys:
    """Read a key file (TOML or JSON with hex strings ``h2d`` and ``d2h``).

    Raises
    ------
    ConfigError
        The file is missing, readable by group or others, not TOML/JSON, or a key is bad.
    """
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"key file {p} not found; create it with firmware-sim --key-file {p}"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read key file {p}: {exc.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise ConfigError(f"key file {p} is readable by others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {p}")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"key file {p} is neither TOML nor JSON ({exc}); regenerate it with "
                          "firmware-sim --key-file NEWFILE") from None
    if not isinstance(data, dict):
        raise ConfigError(f"key file {p} must hold a table with 'h2d' and 'd2h'")
    return _from_mapping(data, str(p))


def load_keys(path: str | os.PathLike[str] | None = None,
              env: Mapping[str, str] | None = None) -> LinkKeys:
    """Load the link keys from ``path``, else from the environment.

    Order: ``path``; ``NEUROLOOP_KEY_H2D`` + ``NEUROLOOP_KEY_D2H``; ``NEUROLOOP_KEY_FILE``.

    Raises
    ------
    ConfigError
        No keys anywhere, or the keys found are invalid.
    """
    environ = os.environ if env is None else env
    if path is not None:
        return load_key_file(path)
    if ENV_H2D in environ or ENV_D2H in environ:
        return _from_mapping({k: environ[e] for k, e in (("h2d", ENV_H2D), ("d2h", ENV_D2H))
                              if e in environ}, "environment")
    if environ.get(ENV_FILE):
        return load_key_file(environ[ENV_FILE])
    raise ConfigError(f"no link keys: {_HOW}")


def generate_key_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> LinkKeys:
    """Write a new key file with two random 256-bit keys, mode 0600, and return the keys.

    The file is created with ``O_EXCL`` (so an existing file is never clobbered unless
    ``overwrite``) and its mode is set before any key is written.

    Raises
    ------
    ConfigError
        The file exists (and ``overwrite`` is false) or cannot be written.
    """
    p = Path(path)
    h2d, d2h = secrets.token_bytes(KEY_LEN), secrets.token_bytes(KEY_LEN)
    text = ("# neuroloop link keys (HMAC-SHA256), one per direction. Keep this file private.\n"
            f'h2d = "{h2d.hex()}"  # host -> device: STIM, ARM, HEARTBEAT\n'
            f'd2h = "{d2h.hex()}"  # device -> host: every device frame\n')
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {p} already exists; use it, or remove it to make a new one"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"cannot create key file {p}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
    return LinkKeys(h2d, d2h, source=str(p))
