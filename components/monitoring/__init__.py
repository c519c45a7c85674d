"""Production monitoring components."""
