"""Deployment components."""
