"""Batch scoring (``em3 score`` and the scoring pipeline's steps): impression logs scored by a registered model,
fetched from the registry (em3.registry), with the scorer of the served model (em3.pyfunc)."""
