"""Statistics every verb shares: leakage, splits, calibration, fairness, the tabular vocabulary.
Imports no verb and nothing from runtime but runtime.errors (the exception vocabulary, a leaf)."""
