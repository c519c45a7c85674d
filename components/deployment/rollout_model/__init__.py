"""rollout_model: canary rollout with automated analysis and rollback."""
