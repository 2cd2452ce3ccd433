"""tuneforge: a hyperparameter tuning service. This package is the SDK users import."""

__version__ = "0.1.0"
