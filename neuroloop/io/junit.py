"""JUnit XML of a corpus check, as GitHub Actions and GitLab CI display test results.

One ``<testcase>`` per recording (``classname`` ``neuroloop.replay``, ``name`` the recording
path). A divergence is a ``<failure>`` whose ``message`` is the first divergent cycle, field and
both values and whose text adds the per-field counts, the interlock-event comparison and what
the replay was compared with; a recording that could not be replayed is an ``<error>``;
an accepted baseline is a passing case whose ``<system-out>`` says what the acceptance changed.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError
from .check import ACCEPTED, DIVERGED, ERROR, RecordingCheck

__all__ = ["write_junit", "check_junit_path", "junit_tree"]

#: Characters XML 1.0 cannot hold (control characters, lone surrogates from undecodable
#: file names, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def check_junit_path(path: str | os.PathLike[str]) -> Path:
    """``path`` can be written as the JUnit file (its directory exists and is writable, and it
    is not a directory), else a one-line :class:`ConfigError` - checked before any replay."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ConfigError(f"--junit {path} is a directory; pass a file path such as "
                          f"{p / 'replay.xml'}")
    if not parent.is_dir():
        raise ConfigError(f"--junit {path}: directory {parent} does not exist; create it first "
                          "(mkdir -p) or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--junit {path}: directory {parent} is not writable; choose another "
                          "path")
    return p


def junit_tree(results: Sequence[RecordingCheck], *, wall_s: float,
               suite: str = "neuroloop replay",
               properties: Mapping[str, str] | None = None) -> ET.ElementTree:
    """The ``<testsuites>`` document of ``results``."""
    failures = sum(r.status == DIVERGED for r in results)
    errors = sum(r.status == ERROR for r in results)
    attrs = {"name": suite, "tests": str(len(results)), "failures": str(failures),
             "errors": str(errors), "time": f"{wall_s:.3f}"}
    root = ET.Element("testsuites", attrs)
    ts = ET.SubElement(root, "testsuite", dict(
        attrs, skipped="0", hostname=_x(socket.gethostname()),
        timestamp=_dt.datetime.now(_dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")))
    if properties:
        props = ET.SubElement(ts, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", {"name": _x(k), "value": _x(v)})
    for r in results:
        case = ET.SubElement(ts, "testcase", {"classname": "neuroloop.replay", "name": _x(r.path),
                                              "file": _x(r.path), "time": f"{r.wall_s:.3f}"})
        if r.status == DIVERGED:
            counts = ", ".join(f"{k} {v}" for k, v in r.counts.items())
            fail = ET.SubElement(case, "failure", {
                "type": "ReplayDivergence",
                "message": _x(f"diverged from {r.against} at {r.first_divergence}; cycles "
                              f"differing per field: {counts}")})
            body = [f"recording: {r.path}", f"compared with: {r.against}", "", r.detail]
            if r.explain_text:
                body += ["", r.explain_text]
            fail.text = _x("\n".join(body))
        elif r.status == ERROR:
            err = ET.SubElement(case, "error", {"type": "RecordingError",
                                                "message": _x(r.error or "")})
            err.text = _x(r.error or "")
        out = [f"{r.cycles} cycles replayed; compared with {r.against}" if r.status != ERROR
               else ""]
        if r.status == ACCEPTED:
            out = [r.line(), r.explain_text]
        if any(out):
            ET.SubElement(case, "system-out").text = _x("\n".join(x for x in out if x))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: str | os.PathLike[str], results: Sequence[RecordingCheck], *,
                wall_s: float, suite: str = "neuroloop replay",
                properties: Mapping[str, str] | None = None) -> None:
    """Write the JUnit XML file atomically (temporary file + ``os.replace``)."""
    p = check_junit_path(path)
    tree = junit_tree(results, wall_s=wall_s, suite=suite, properties=properties)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write --junit {path}: {exc.strerror or exc}; choose another "
                          "path") from None
