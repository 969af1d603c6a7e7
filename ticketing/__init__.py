"""See ../shared/ARCHITECTURE.md: ticketing."""
