"""Pretrained models and weight converters."""
