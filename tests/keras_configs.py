"""Comparing Keras configs of models built in one test process."""


def without_names(config):
    """A Keras config without layer names (Keras numbers unnamed layers per process)."""
    if isinstance(config, dict):
        return {key: without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [without_names(value) for value in config]
    return config
