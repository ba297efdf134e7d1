"""A minimal PEP 517 build backend: packs the package directory and the entry points of
pyproject.toml into a wheel (standard library only). For the plugin example's test."""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _meta() -> dict:
    return tomllib.loads((_HERE / "pyproject.toml").read_text())["project"]


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    return []


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory: str, config_settings: dict | None = None,
                metadata_directory: str | None = None) -> str:
    meta = _meta()
    dist = meta["name"].replace("-", "_")
    version = meta["version"]
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted((_HERE / dist).rglob("*.py")):
        files[path.relative_to(_HERE).as_posix()] = path.read_bytes()
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {version}",
             f"Summary: {meta.get('description', '')}"]
    lines += [f"Requires-Dist: {d}" for d in meta.get("dependencies", [])]
    files[f"{info}/METADATA"] = ("\n".join(lines) + "\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: inline_backend\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    eps = []
    for group, entries in meta.get("entry-points", {}).items():
        eps.append(f"[{group}]")
        eps += [f"{k} = {v}" for k, v in entries.items()]
    files[f"{info}/entry_points.txt"] = ("\n".join(eps) + "\n").encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return name
