"""staging_smoke_test: the candidate on a staging target, called with golden prompts before production moves."""
