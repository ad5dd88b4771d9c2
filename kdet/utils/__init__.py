"""Small utilities shared by kdet's packages."""
