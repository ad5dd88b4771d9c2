"""Builds a `kdet.SSD`, `kdet.FasterRCNN` or `kdet.CenterNet` from the `model { ... }` block of a
TF OD API `pipeline.config`.

```python
model = kdet.configs.model_builder.build_model_from_text(open("pipeline.config").read(),
                                                         source="pipeline.config")
model.compile()
```

Every field of the block is applied, read without effect (an implementation switch whose
values compute the same thing in kdet, e.g. `use_matmul_crop_and_resize`, `use_static_shapes`,
`inplace_batchnorm_update`), or refused with a `ConfigError` at its `source:line:column:` that
says why; nothing is silently ignored. An absent field means its TF OD API default, as it does
to the TF OD API (e.g. `convolutional_box_predictor { }` has `use_dropout: true` and
`kernel_size: 1`). Each message is read by one function against a schema (see
`kdet.configs.field_reader`); `docs/config_fields/` has a table per message of what kdet does
with each field.

Mappings to note:
- A `Hyperparams` message (`conv_hyperparams`, `fc_hyperparams`,
  `first_stage_box_predictor_conv_hyperparams`) becomes one `kdet.layers.ConvHyperparams`
  (`hyperparams.read_conv_hyperparams`), the `conv_hyperparams` (or `fc_hyperparams`) argument
  of the component it configures: initializer, regularizer (`l2_regularizer { weight: w }` →
  `keras.regularizers.L2(0.5 * w)`, TF1 slim's `w * sum(x²) / 2`, as the TF OD API's Keras
  builder halves it; `l1_regularizer` → `L1(w)`), activation, batch norm (`decay` is the Keras
  `momentum`; `train: false` freezes it), `force_use_bias`, `regularize_depthwise`. An absent
  message leaves the component its documented default.
- `resize_method` runs the TF1 resize ops the TF OD API uses (no half-pixel centres):
  `BILINEAR`, `NEAREST_NEIGHBOR`, `BICUBIC` are kdet's `"legacy_bilinear"`, `"legacy_nearest"`,
  `"legacy_bicubic"`; `AREA` is `"area"`.
- Feature extractor `type` names a registered extractor (yours too); a TF2 name with a
  `_keras` suffix (`ssd_mobilenet_v2_fpn_keras`) names the kdet extractor without it. Each
  field of the extractor message (`depth_multiplier`, `conv_hyperparams`,
  `override_base_feature_extractor_hyperparams`, `pad_to_multiple`, the `fpn` levels, …) goes
  to the extractor when its constructor takes that argument, and is otherwise accepted only
  with its TF OD API default; without `fpn { }` an FPN extractor keeps its own levels, as in
  the TF OD API.
- Faster R-CNN FPN extractors crop as the TF OD API does: from every pyramid level (a RoI of
  224 pixels on level `max_level - 1`), `initial_crop_size` bilinear samples on the RoI's edges,
  then the max pool (`MultiLevelRoIAlign(align_corners=True, maxpool_kernel_size=...)`); the
  RPN has one pair of 1x1 predictors per level (`RPNHead(per_level_predictors=True)`). FPN
  models built in Python or saved before keep RoIAlign at the pooled size and shared predictors.

The package has one translator module per TF OD API message family: `hyperparams`
(`Hyperparams`), `components` (image resizers, anchor generators, box coder, matcher,
similarity), `feature_extractor`, `losses`, `post_processing`, `ssd` (`Ssd` and its box
predictors), `faster_rcnn` (`FasterRcnn`), `center_net` (`CenterNet`, its tasks and the
keypoint label map), and `architecture_check`.

Before any field is read, `check_architecture` refuses a config that needs what kdet does not
have yet (R-FCN, Context R-CNN, instance masks, CenterNet's mask, DensePose and tracking tasks,
a TF OD API feature extractor kdet has no counterpart for), naming it: that is the first error of such a config, not a field that only
follows from it.
"""

from kdet.configs.field_reader import Node
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.architecture_check import check_architecture
from kdet.configs.model_builder.center_net import build_center_net
from kdet.configs.model_builder.faster_rcnn import build_faster_rcnn
from kdet.configs.model_builder.ssd import build_ssd
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Message
from kdet.configs.text_format import parse

_MODEL_BUILDERS = {
    "ssd": build_ssd,
    "faster_rcnn": build_faster_rcnn,
    "center_net": build_center_net,
}


def build_model(model_message):
    """Builds the detector a TF OD API `model { ... }` block describes.

    Args:
        model_message: the `kdet.configs.text_format.Message` of the `model` block (or a
            `kdet.configs.field_reader.Node` of it); it holds exactly one of `ssd { ... }`,
            `faster_rcnn { ... }` and `center_net { ... }`.

    Returns:
        A `kdet.SSD`, `kdet.FasterRCNN` or `kdet.CenterNet`, not built yet (its weights are created on the first
        call or by `model.build((None, None, None, 3))`), randomly initialized.

    Raises:
        ConfigError: `source:line:column: problem` for any field kdet does not support, a value
            of the wrong type or one kdet cannot take, or a missing required field.

    Example:
    ```python
    root = kdet.configs.text_format.parse_file("pipeline.config")
    model = build_model(root.first("model"))
    ```
    """
    node = model_message
    if not isinstance(node, Node):
        node = Node(model_message, "model")
    check_architecture(node)
    kind = read_one_of(node, tuple(_MODEL_BUILDERS))
    return _MODEL_BUILDERS[kind.name](kind)


def build_model_from_text(text, source="<string>"):
    """Parses a whole `pipeline.config` text and builds the detector of its `model` field.

    The other top-level fields (`train_config`, input readers, ...) are not read here.

    Args:
        text: str. The pipeline config in protobuf text format.
        source: str. The name error messages give the text, usually its file path.

    Returns:
        A `kdet.SSD`, `kdet.FasterRCNN` or `kdet.CenterNet`, see `build_model`.

    Raises:
        ConfigError: for a syntax error, a missing or repeated `model` field, or any problem
            `build_model` reports.
    """
    models = parse(text, source).get("model")
    if not models:
        raise ConfigError.at(
            source, 1, 1, "the config has no 'model' field: expected model { ssd { ... } } or "
            "model { faster_rcnn { ... } }"
        )
    if len(models) > 1:
        first = models[0]
        raise ConfigError.at(
            source, models[1].line, models[1].column,
            f"'model' is set twice (first at {first.line}:{first.column}); a config describes "
            "one model",
        )
    model = models[0]
    if not isinstance(model.value, Message):
        raise ConfigError.at(
            source, model.line, model.column, "'model' expects a message: model { ... }"
        )
    return build_model(model.value)
