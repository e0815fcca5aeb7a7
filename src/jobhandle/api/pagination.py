"""Opaque list cursors.

A cursor is base64url JSON: where the next page starts, the time the first page was asked for, and a digest
of the filters and sort it belongs to. Sorted by creation time (the default), the next page starts after the
last job of the previous one (its created_at and seq: keyset paging, one index seek at any depth, and no job
skipped or repeated when others are removed in between). Other sorts page by offset, which jobs removed by
cleanup or changing status between pages can shift. The time bounds every later page to jobs created before
the first page was read, so new submissions do not shift the pages. A cursor used with other filters than its
own is refused (400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidParameterError
from ..models import as_utc, parse_job_id
from ..stores.base import JobPosition

MAX_OFFSET = 10**9
"""Past any real list; bounds what a forged cursor can ask of the store."""


@dataclass(frozen=True, slots=True)
class Cursor:
    offset: int
    as_of: datetime
    after: JobPosition | None = None


def fingerprint(filters: dict[str, Any]) -> str:
    text = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(cursor: Cursor, filters: dict[str, Any]) -> str:
    data: dict[str, Any] = {"o": cursor.offset, "t": cursor.as_of.isoformat(), "f": fingerprint(filters)}
    if cursor.after is not None:
        data["a"] = [cursor.after.created_at.isoformat(), cursor.after.job_id]
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(text: str, filters: dict[str, Any]) -> Cursor:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        offset, as_of, digest = data["o"], as_utc(data["t"]), data["f"]
        after = None
        if "a" in data:
            created, job_id = data["a"]
            after = JobPosition(as_utc(created), parse_job_id(job_id))  # type: ignore[arg-type]
            if after.created_at is None:
                raise ValueError(created)
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error, UnicodeDecodeError,
            InvalidParameterError):
        raise InvalidParameterError("cursor is not one this API gave out") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET or as_of is None:
        raise InvalidParameterError("cursor is not one this API gave out")
    if digest != fingerprint(filters):
        raise InvalidParameterError("cursor belongs to a list with other filters or sort")
    return Cursor(offset, as_of, after)
