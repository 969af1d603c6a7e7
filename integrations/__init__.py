"""See ../shared/ARCHITECTURE.md: integrations."""
