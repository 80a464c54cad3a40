"""ParityScope service: storage, comparison, diagnosis and the HTTP API."""

__version__ = "0.1.0"
