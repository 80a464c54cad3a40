"""ParityScope service: storage, comparison, diagnosis and the HTTP API."""

from parityscope import __version__

__all__ = ["__version__"]
