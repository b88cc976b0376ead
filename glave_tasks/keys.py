"""Safe object keys built from untrusted names (file names, ids).

Every key the store writes is a sequence of segments joined by ``/``. A segment made from an
untrusted name must never climb out of its prefix (``..``), be absolute, carry separators or
control characters, or exceed object-store key limits. ``safe_segment`` maps any string to a
segment that is safe, readable and, through a short hash suffix whenever it had to change the
name, still unique.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_SEGMENT_CHARS = 96
_ALLOWED = re.compile(r"[^A-Za-z0-9._-]+")
_SEGMENT_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def safe_segment(name: str) -> str:
    """Turn an arbitrary name into one safe key segment.

    Names that are already safe come back unchanged; anything else is transliterated to ASCII,
    stripped of separators and dots at the ends, truncated, and suffixed with a hash of the
    original so that two different hostile names never collide.
    """
    if _SEGMENT_OK.match(name) and len(name) <= MAX_SEGMENT_CHARS and ".." not in name:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _ALLOWED.sub("_", ascii_name).strip("._-")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    cleaned = cleaned[: MAX_SEGMENT_CHARS - 11] or "x"
    return f"{cleaned}-{_digest(name)}"


def is_safe_key(key: str) -> bool:
    """True when every segment of a relative key is safe (the store checks every key it touches)."""
    if not key or key.startswith("/") or "\\" in key:
        return False
    return all(
        seg not in ("", ".", "..") and _SEGMENT_OK.match(seg) and len(seg) <= MAX_SEGMENT_CHARS * 2
        for seg in key.split("/")
    )


def join_key(*segments: str) -> str:
    """Join segments that are already safe (built by this package) into a key."""
    key = "/".join(s.strip("/") for s in segments if s)
    if not is_safe_key(key):
        raise ValueError(f"unsafe object key: {key!r}")
    return key
