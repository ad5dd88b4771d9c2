"""The files a pipeline config names (input paths, label maps, the fine-tune checkpoint),
recorded where the config names them and checked when they are needed."""

import dataclasses
import pathlib

from kdet.configs.text_format import ConfigError
from kdet.data.errors import DataError
from kdet.data.input_pipeline import check_has_records
from kdet.data.input_pipeline import list_input_files

# A `fine_tune_checkpoint` that names a kdet zoo model: `"zoo:NAME"`.
ZOO_PREFIX = "zoo:"


@dataclasses.dataclass(frozen=True)
class ConfigPath:
    """A file a pipeline config names, and where it names it.

    Attributes:
        section: `"train_config"`, `"train_input_reader"` or `"eval_input_reader"`.
        index: int, which `eval_input_reader` (0 otherwise).
        field: the dotted field, e.g. `"train_input_reader.tf_record_input_reader.input_path"`.
        value: the path (or glob pattern, or `zoo:NAME`) as written.
        kind: `"records"`, `"label_map"` or `"checkpoint"`.
        source, line, column: where the field is written.
    """

    section: str
    index: int
    field: str
    value: str
    kind: str
    source: str
    line: int
    column: int

    def error(self, problem):
        """A `ConfigError` at this field: `source:line:column: 'field' 'value': problem`."""
        return ConfigError.at(
            self.source, self.line, self.column, f"'{self.field}' {self.value!r}: {problem}"
        )


# The fields of each section that name files: (field path in the section, kind).
_PATH_FIELDS = {
    "train_config": (("fine_tune_checkpoint", "checkpoint"),),
    "train_input_reader": (
        ("tf_record_input_reader.input_path", "records"),
        ("label_map_path", "label_map"),
    ),
}
_PATH_FIELDS["eval_input_reader"] = _PATH_FIELDS["train_input_reader"]


def config_paths(root):
    """The `ConfigPath` of every path field of the (already checked) config tree `root`."""
    paths, counts = [], {}
    for section in root.fields:
        if section.name not in _PATH_FIELDS:
            continue
        index = counts.get(section.name, 0)
        counts[section.name] = index + 1
        for dotted, kind in _PATH_FIELDS[section.name]:
            *parents, name = dotted.split(".")
            messages = [section.value]
            for parent in parents:
                messages = [f.value for m in messages for f in m.fields if f.name == parent]
            paths += [
                ConfigPath(section.name, index, f"{section.name}.{dotted}", field.value, kind,
                           message.source, field.line, field.column)
                for message in messages
                for field in message.fields
                if field.name == name and field.value
            ]
    return paths


def check_config_paths(pipeline, section, index=0):
    """Checks that the files a section of the config names exist, before anything is loaded.

    Input paths (globs) must match a file, and the files must hold a record (one is read);
    label maps must exist; the fine-tune checkpoint must be an existing file or folder (or a
    TF checkpoint prefix, which restoring refuses with its own message) or `zoo:NAME` of a zoo
    model.

    Args:
        pipeline: a `Pipeline`.
        section: `"train_config"`, `"train_input_reader"` or `"eval_input_reader"`.
        index: int, which `eval_input_reader`. Defaults to `0`.

    Raises:
        ConfigError: `config:line:column: 'field' 'value': problem` for the first path that
            names nothing (or records without a single example).
    """
    import tensorflow as tf

    records = []
    for entry in pipeline.config_paths:
        if (entry.section, entry.index) != (section, index):
            continue
        if entry.kind == "records":
            if not tf.io.gfile.glob(entry.value):
                raise entry.error(
                    "no file matches it; expected TFRecord files (kdet convert writes them)"
                )
            records.append(entry)
        if entry.kind == "label_map" and not tf.io.gfile.exists(entry.value):
            raise entry.error("no such file; expected a .pbtxt label map")
        if entry.kind == "checkpoint":
            _check_checkpoint_path(entry)
    if records:
        try:
            check_has_records(list_input_files([entry.value for entry in records]))
        except DataError as error:
            raise records[0].error(str(error)) from None


def _check_checkpoint_path(entry):
    if entry.value.startswith(ZOO_PREFIX):
        from kdet import zoo

        try:
            zoo.get_entry(entry.value[len(ZOO_PREFIX):])
        except ValueError as error:
            raise entry.error(str(error)) from None
        return
    path = pathlib.Path(entry.value)
    if not (path.exists() or path.with_name(path.name + ".index").exists()):
        raise entry.error(
            "no such file or folder; expected a kdet checkpoint (a ckpt-<step>.weights.h5 file "
            "or a model directory holding one), a TF OD API checkpoint (a ckpt-N or model.ckpt "
            "prefix with its .index, or a folder with a `checkpoint` file), a Keras model file "
            f"(.keras) for fine_tune_checkpoint_type 'classification', or a zoo model as "
            f"{ZOO_PREFIX}NAME (kdet zoo lists them)"
        )
