"""Objectives the bundled workers run: scikit-learn cross-validation and user callables."""
