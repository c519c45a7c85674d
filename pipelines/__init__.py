"""Pipelines of kfp-llmops, one folder per pipeline."""
