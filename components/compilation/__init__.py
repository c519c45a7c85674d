"""Compilation components."""
