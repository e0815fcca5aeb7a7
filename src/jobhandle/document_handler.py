"""Seed 004's names for the bundled document handlers (``from jobhandle.document_handler import
process_document_job, process_batch_job``): register them with ``JobManager.register_handler`` as the seed
does. They are ``jobhandle.handlers``' ``process_document`` and ``process_batch`` (docs/handlers.md)."""

from .handlers.documents import process_batch as process_batch_job
from .handlers.documents import process_document as process_document_job

__all__ = ["process_batch_job", "process_document_job"]
