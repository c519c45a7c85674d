"""monitor_model: served traffic against the training data and the SLOs; rollback or retrain on a breach."""
