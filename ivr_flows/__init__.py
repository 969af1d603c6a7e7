"""See ../shared/ARCHITECTURE.md: ivr_flows."""
