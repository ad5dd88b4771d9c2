"""Builds a `kdet.SSD` or `kdet.FasterRCNN` from the `model { ... }` block of a TF OD API
`pipeline.config`.

```python
model = kdet.configs.model_builder.build_model_from_text(open("pipeline.config").read(),
                                                         source="pipeline.config")
model.compile()
```

Every field of the block is either applied or rejected with a `ConfigError` at its
`source:line:column:`; nothing is silently ignored. An absent field means its TF OD API
default, as it does to the TF OD API (e.g. `convolutional_box_predictor { }` has
`use_dropout: true` and `kernel_size: 1`). Each message kind is read by one `_build_*` or
`_read_*` function against a schema (see `kdet.configs.field_reader`), and the docs tables
(`docs/ssd.md`, `docs/faster_rcnn.md`) say which kdet argument each field sets.

Fields kdet cannot change are accepted only with kdet's value (`box_code_size: 4`,
`iou_similarity {}`, `add_background_class: true`, batch norm decay, epsilon and
initializers equal to those of the kdet layer, `first_stage_nms_score_threshold: 0.0`, ...).
Implementation switches whose values compute the same thing
(`use_matmul_crop_and_resize`, `use_static_shapes`, `inplace_batchnorm_update`,
`use_matmul_gather`, the deprecated `anchorwise_output`) are accepted with either value.

Mappings to note:
- A hyperparams `regularizer` becomes the `kernel_regularizer` of the layers it configures:
  `l2_regularizer { weight: w }` → `keras.regularizers.L2(0.5 * w)` (the weight is TF1 slim's,
  `w * sum(x²) / 2`; the TF OD API's Keras builder halves it too), `l1_regularizer` → `L1(w)`,
  weight 0.0 → none. Feature extractor `conv_hyperparams` go to the SSD extractor's
  convolutions, backbone included (the TF OD API regularizes the backbone with its own weight,
  4e-5 for MobileNetV2, the sample configs' value), or to a Faster R-CNN FPN extractor's
  pyramid; box predictor `conv_hyperparams` to the SSD box predictor;
  `first_stage_box_predictor_conv_hyperparams` to the RPN head
  (`first_stage_box_predictor_kernel_regularizer`); `fc_hyperparams` to `BoxClassifierHead`.
  `regularize_depthwise: true` regularizes the depthwise kernels too (the field's documented
  meaning); layers without depthwise convolutions take either value.
- `resize_method: BILINEAR` (the default) is kdet's `"legacy_bilinear"`: the TF OD API resizes
  with TF1 `resize_images`; `AREA` is `"area"`; `NEAREST_NEIGHBOR` and `BICUBIC` are rejected,
  since kdet's versions sample at pixel centres and the TF OD API's do not.
- Feature extractor `type` names a registered extractor (yours too); a TF2 name with a
  `_keras` suffix (`ssd_mobilenet_v2_fpn_keras`) names the kdet extractor without it. Each of
  `depth_multiplier`, `min_depth`, `use_depthwise`, `use_explicit_padding`,
  `batch_norm_trainable`, `override_base_feature_extractor_hyperparams`,
  `first_stage_features_stride` and the `fpn` levels goes to the extractor when its
  constructor takes that argument, and is otherwise accepted only with its TF OD API default;
  without `fpn { }` an FPN extractor keeps its own levels, as in the TF OD API. With
  `override_base_feature_extractor_hyperparams: true` the `conv_hyperparams` set up the
  extractor's body too (its batch norm decay and initializer are then the ones checked).
- Faster R-CNN FPN extractors crop with multilevel RoIAlign straight at the pooled size
  `(initial_crop_size - maxpool_kernel_size) // maxpool_stride + 1` (`roi_align_crop_size`)
  instead of cropping at `initial_crop_size` and max-pooling.
- The TF OD API does not add the groundtruth boxes to the second-stage proposals, so models
  built here pass `add_groundtruth_to_proposals=False`.

The package has one translator module per TF OD API message family: `hyperparams`
(`Hyperparams`), `components` (image resizers, anchor generators, box coder, matcher,
similarity), `feature_extractor`, `losses`, `post_processing`, `ssd` (`Ssd` and its box
predictors), `faster_rcnn` (`FasterRcnn`), and `architecture_check`.

Before any field is read, `check_architecture` refuses a config that needs what kdet does not
have yet (CenterNet, R-FCN, Context R-CNN, instance masks, a TF OD API feature extractor such as
EfficientDet's), naming it: that is the first error of such a config, not a field that only
follows from it.
"""

from kdet.configs.field_reader import Node
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.architecture_check import check_architecture
from kdet.configs.model_builder.faster_rcnn import build_faster_rcnn
from kdet.configs.model_builder.ssd import build_ssd
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Message
from kdet.configs.text_format import parse

_MODEL_BUILDERS = {"ssd": build_ssd, "faster_rcnn": build_faster_rcnn}


def build_model(model_message):
    """Builds the detector a TF OD API `model { ... }` block describes.

    Args:
        model_message: the `kdet.configs.text_format.Message` of the `model` block (or a
            `kdet.configs.field_reader.Node` of it); it holds exactly one of `ssd { ... }` and
            `faster_rcnn { ... }`.

    Returns:
        A `kdet.SSD` or `kdet.FasterRCNN`, not built yet (its weights are created on the first
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
        A `kdet.SSD` or `kdet.FasterRCNN`, see `build_model`.

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
