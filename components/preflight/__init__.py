"""Checks that run before any work."""
