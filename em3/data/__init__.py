"""Data in model form: the token store, impressions with histories, batches, and the synthetic log."""
