"""Evaluation metrics and calibration shared by training and ``cre eval``."""
