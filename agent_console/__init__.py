"""See ../shared/ARCHITECTURE.md: agent_console."""
