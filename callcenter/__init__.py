"""12348 public legal-service hotline platform: service core."""

__version__ = "0.1.0"
