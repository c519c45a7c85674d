"""The stop_on_invalid_data component."""
