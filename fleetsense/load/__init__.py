"""The roof's load generator (placeholder)."""
