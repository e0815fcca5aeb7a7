from .context import JobContext
from .worker import Worker

__all__ = ["JobContext", "Worker"]
