"""The pytest plugin (placeholder until the device fixtures land)."""
