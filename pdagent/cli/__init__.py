"""Command-line entry points: pd-send, pd-queue, pdagentd (and the integrations)."""
