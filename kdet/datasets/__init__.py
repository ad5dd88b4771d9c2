"""Datasets for tests and quick experiments: synthetic shapes and bundled real samples."""
