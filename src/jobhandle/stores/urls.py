"""Store URLs: the SQLite file a ``sqlite:///`` URL names, and URLs fit to show (passwords masked)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreURLError


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` -> the file's path."""
    path = url[len("sqlite:///"):]
    if not url.startswith("sqlite:///") or not path:
        raise StoreURLError(f"SQLite URLs look like sqlite:///jobs.db or sqlite:////abs/jobs.db, not {url!r}")
    return Path(path)


def masked_url(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))
