"""monitor: scheduled production monitoring."""
