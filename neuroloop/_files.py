"""Reading user-named text files safely: a size cap, regular files only, a clear decode error.

The one place that opens a config-like file a user names (a scenario, a limits file), so that
``/dev/zero``, a FIFO, a directory, a binary or a huge file is one line and exit 2, never a
hang, a MemoryError or a UnicodeDecodeError.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

__all__ = ["read_text_capped", "TEXT_FILE_MAX_BYTES"]

#: Largest config-like text file read, bytes (a scenario is a few kB).
TEXT_FILE_MAX_BYTES = 1 << 20


def read_text_capped(path: str | os.PathLike[str], label: str,
                     max_bytes: int = TEXT_FILE_MAX_BYTES) -> str:
    """UTF-8 text of the regular file ``path``, at most ``max_bytes`` long.

    Parameters
    ----------
    path : path-like
    label : str
        How the message names the file, e.g. ``"config file my.toml"``.
    max_bytes : int
        Size cap, bytes.

    Raises
    ------
    ConfigError
        Missing, not a regular file, unreadable, larger than the cap, or not UTF-8 text.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(f"{label} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{label} is a directory; pass a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror}; check the path and "
                          "permissions") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{label} is a directory; pass a TOML file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{label} is not a regular file (a device, pipe or socket); "
                              "pass a TOML file")
        if st.st_size > max_bytes:
            raise ConfigError(f"{label} is {st.st_size} bytes, more than the {max_bytes} a "
                              "config file may have; pass the TOML file itself")
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror}; check the path and "
                          "permissions") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > max_bytes:
        raise ConfigError(f"{label} is more than {max_bytes} bytes; pass the TOML file itself")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ConfigError(f"{label} is not a text TOML file (binary data at byte {nul}); "
                          "pass the scenario or limits TOML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label} is not a text TOML file (not UTF-8 at byte {exc.start}); "
                          "save it as UTF-8") from None
