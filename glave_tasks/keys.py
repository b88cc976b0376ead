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

from .errors import GlaveError

MAX_SEGMENT_CHARS = 96
MAX_RUN_ID_CHARS = 96
# Run ids become store keys, MLflow tags and Airflow/Kubernetes labels verbatim: no encoding, so
# two different ids can never share a key, and nothing in them needs quoting anywhere.
RUN_ID_CHARSET = "letters A-Z a-z, digits, '.', '_' and '-'; starts with a letter or digit; at most 96 characters; no '..'"
_RUN_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
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


class InvalidRunId(GlaveError):
    """A run id outside the documented charset (see ``RUN_ID_CHARSET``)."""


def validate_run_id(run_id: str) -> str:
    """The run id itself when it is valid; otherwise ``InvalidRunId`` naming the rule it breaks.

    Run ids are never rewritten: an id outside the charset is refused, not encoded.
    """
    if not isinstance(run_id, str) or not run_id:
        raise InvalidRunId("run id is empty; allowed: " + RUN_ID_CHARSET)
    if not _RUN_ID_OK.match(run_id) or ".." in run_id:
        raise InvalidRunId(f"invalid run id {run_id[:120]!r}; allowed: {RUN_ID_CHARSET}")
    return run_id
