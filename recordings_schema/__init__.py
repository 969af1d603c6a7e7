"""See ../shared/ARCHITECTURE.md: recordings_schema."""
