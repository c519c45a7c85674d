"""Registry components."""
