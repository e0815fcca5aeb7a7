"""The REST API: ``create_app(queue, settings)`` builds the FastAPI application (``jobhandle serve`` runs it)."""

from .app import create_app

__all__ = ["create_app"]
