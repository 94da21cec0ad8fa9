"""Synthetic data sets: "digits in scenes" for detector training, and sample videos with per-frame truth."""
