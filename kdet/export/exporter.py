"""A trained checkpoint exported into a folder as the TF OD API's `exporter_main_v2.py` lays it
out: what `kdet export` does, as one call (`exporter_lib_v2.export_inference_graph`).

Example:
```python
kdet.export.export_inference_graph("pets.config", "runs/pets", "exported/pets")
# exported/pets/saved_model/, checkpoint/, pipeline.config
```
"""

import pathlib
import shutil

from kdet.export.export_folder import discard_staging
from kdet.export.export_folder import publish_export
from kdet.export.export_folder import recover_export_folder
from kdet.export.export_folder import staging_folder
from kdet.export.saved_model import DEFAULT_MAX_IMAGE_PIXELS
from kdet.utils.progress import stage_log


def export_inference_graph(config, checkpoint, output_directory, input_type="image_tensor",
                           tflite=False, tflite_quantization=None,
                           max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, progress=True,
                           tflite_representative_images=None):
    """Restores a trained checkpoint (`kdet train`'s or the TF OD API's) into its config's
    model and exports it.

    Writes into `output_directory` (created if needed): `saved_model/` (`export_saved_model`:
    signature `serving_default`, `input_tensor` → `detection_boxes`, `detection_scores`,
    `detection_classes`, `num_detections`; for a CenterNet with keypoints also
    `detection_keypoints`, `detection_keypoint_scores`; for a Mask R-CNN also
    `detection_masks`, in each box's frame), `checkpoint/` (the checkpoint:
    `copy_checkpoint`), a copy of the config (`pipeline.config`, or `pipeline.yaml` for a YAML
    config) and, with `tflite`, `model.tflite` (`export_tflite`; SSD and CenterNet, written
    first so that a model TFLite cannot take fails before anything else). Everything is written to a staging folder and
    swapped in at once (`kdet.export.export_folder.publish_export`): a failed or killed export
    leaves the earlier one as it was; one killed during its swap is completed first.

    Args:
        config: str or path of the pipeline.config / YAML config the model was trained with.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory (its newest intact
            checkpoint); or a TF OD API checkpoint (`exporter_main_v2.py
            --trained_checkpoint_dir`: a training or zoo `checkpoint/` folder, or a `ckpt-N` /
            `model.ckpt-N` prefix), restored with `kdet.checkpoints.restore_tfod_checkpoint`.
        output_directory: str or path of the export folder.
        input_type: the SavedModel's input, one of `INPUT_TYPES`. Defaults to
            `"image_tensor"`.
        tflite: bool, also write `model.tflite`. Defaults to `False`.
        tflite_quantization: `export_tflite`'s `quantization` (None: float32).
        max_image_pixels: int, the largest encoded image the SavedModel decodes (see
            `export_saved_model`).
        progress: bool, or a `kdet.utils.progress.StageLog` whose lines the stages become.
            Defaults to `True` (lines on stderr).
        tflite_representative_images: `export_tflite`'s `representative_images`, which
            `tflite_quantization="int8"` of a config without `graph_rewriter { quantization
            { … } }` calibrates on, e.g. `kdet.export.RepresentativeImages("photos/")`.

    Returns:
        dict: `"step"` (int or None), `"checkpoint"` (the file exported) and `"written"` (the
        entries written, e.g. `["saved_model/", "checkpoint/", "pipeline.config"]`).

    Raises:
        FileNotFoundError: no checkpoint (see `kdet.configs.restored_pipeline`).
        kdet.checkpoints.CheckpointError: a TF OD API checkpoint that does not fit the model.
        kdet.export.export_folder.ExportInProgressError: another live process is publishing
            into `output_directory`.
    """
    from kdet.configs import restored_pipeline
    from kdet.configs.checkpoints import resolve_trained_checkpoint
    from kdet.export.saved_model import export_saved_model
    from kdet.export.tflite import export_tflite
    from kdet.training.model_dir import config_copy_name

    log = stage_log(progress, "Exporting")
    step, checkpoint = resolve_trained_checkpoint(checkpoint)
    model = restored_pipeline(config, checkpoint, step, progress=log).model

    output = pathlib.Path(output_directory)
    config = pathlib.Path(config)
    config_copy = config_copy_name(config)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    # An earlier export killed during its swap is completed first; what killed runs left goes.
    for line in recover_export_folder(output):
        log(f"{output}: {line}")
    staging = staging_folder(output)
    staging.mkdir()
    written = []
    try:
        if tflite:
            export_tflite(model, staging / "model.tflite", tflite_quantization,
                          progress=log.nested("TFLite"),
                          representative_images=tflite_representative_images)
            written.append("model.tflite")
        export_saved_model(model, staging / "saved_model", input_type,
                           progress=log.nested("SavedModel"), max_image_pixels=max_image_pixels)
        copy_checkpoint(checkpoint, staging / "checkpoint")
        shutil.copyfile(config, staging / config_copy)
        publish_export(output, staging, ["saved_model", "checkpoint", config_copy, *written],
                       keep=[config])
    except BaseException:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise
    finally:
        discard_staging(output, staging)
    log.done()
    return {
        "step": step,
        "checkpoint": checkpoint,
        "written": ["saved_model/", "checkpoint/", config_copy, *written],
    }


def copy_checkpoint(checkpoint, folder):
    """Copies a trained checkpoint into the new `folder`: a kdet checkpoint with its `.sha256`;
    a TF OD API one's `.index` and `.data-*` files with a `checkpoint` file naming it, so the
    folder is a TF OD API checkpoint folder again (as `exporter_main_v2.py` writes it)."""
    from kdet.configs.checkpoints import is_tfod_checkpoint
    from kdet.configs.checkpoints import tfod_checkpoint_files
    from kdet.utils.verified_files import checksum_path

    folder.mkdir()
    if not is_tfod_checkpoint(checkpoint):
        for path in (checkpoint, checksum_path(checkpoint)):
            shutil.copyfile(path, folder / path.name)
        return
    for path in tfod_checkpoint_files(checkpoint):
        shutil.copyfile(path, folder / path.name)
    name = pathlib.Path(checkpoint).name
    (folder / "checkpoint").write_text(
        f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    )
