"""Bundled handlers. Importing this package registers them in ``jobhandle.default_registry``:

- ``process_document``: parse one text/Markdown/HTML/PDF file and split it into chunks;
- ``process_batch``: the same for every supported file of a directory;
- the seeds' job types, ``extraction``, ``document_processing``, ``taxonomy_processing`` and
  ``dataset_generation`` (seed_types.py), on given documents or the shipped samples.

See docs/handlers.md.
"""

from .documents import process_batch, process_document
from .seed_types import dataset_generation, document_processing, extraction, taxonomy_processing

__all__ = ["dataset_generation", "document_processing", "extraction", "process_batch", "process_document",
           "taxonomy_processing"]
