"""restore_stable: the exit handler that puts the stable revision back when a run fails mid-rollout."""
