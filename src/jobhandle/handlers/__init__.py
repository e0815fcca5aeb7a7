"""Bundled handlers. Importing this package registers them in ``jobhandle.default_registry``:

- ``process_document``: parse one text/Markdown/HTML/PDF file and split it into chunks;
- ``process_batch``: the same for every supported file of a directory.

See docs/handlers.md.
"""

from .documents import process_batch, process_document

__all__ = ["process_batch", "process_document"]
