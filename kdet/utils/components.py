"""Serializing Keras objects built from injected components."""

import keras


class ComponentsConfig:
    """Mixin for a Keras layer or model whose constructor takes components (layers, anchor
    generators, losses, …): `component_configs` serializes them for `get_config`, and
    `from_config` revives them before calling the constructor.

    Subclasses list the component arguments in `component_names`.
    """

    #: Constructor arguments holding components (subclasses set it).
    component_names = ()

    def component_configs(self):
        """`{name: Keras config}` of each component in `component_names`."""
        return {
            name: keras.saving.serialize_keras_object(getattr(self, name))
            for name in self.component_names
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.component_names:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
