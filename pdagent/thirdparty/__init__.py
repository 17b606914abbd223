"""Names the original agent's integration scripts import; nothing here is vendored."""
