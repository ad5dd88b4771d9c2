"""What every translator of the package uses."""

def construct(node, factory, **kwargs):
    """Calls `factory(**kwargs)`; a `ValueError` it raises becomes a `ConfigError` at `node`."""
    try:
        return factory(**kwargs)
    except ValueError as error:
        raise node.error(f"'{node.path}': {error}") from None
