"""HMAC-SHA256 tags on frames.

A tag is the first :data:`TAG_LEN` (16) bytes of HMAC-SHA256(key, header || payload). 128-bit
truncated HMAC-SHA256 is what RFC 4868 and NIST SP 800-107 allow for authentication; forging one
takes about 2^128 tries, and every failed try is counted and answered with a NAK.
Tags are compared with :func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["TAG_LEN", "compute_tag", "verify_tag"]

#: Bytes of a truncated HMAC-SHA256 tag on the wire.
TAG_LEN = 16


def compute_tag(key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """Truncated HMAC-SHA256 of ``data`` under ``key``, :data:`TAG_LEN` bytes."""
    return hmac.digest(key, data, hashlib.sha256)[:TAG_LEN]


def verify_tag(key: bytes, data: bytes | bytearray | memoryview, tag: bytes) -> bool:
    """True when ``tag`` is the tag of ``data`` under ``key`` (constant-time comparison)."""
    return hmac.compare_digest(compute_tag(key, data), tag)
