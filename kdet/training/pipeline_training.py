"""Training a pipeline config into a model directory: what `kdet train` does, as one call (the
TF OD API's `model_lib_v2.train_loop`).

Example:
```python
summary = kdet.training.train_pipeline("pets.config", "runs/pets", num_steps=2000)
summary["final_step"], summary["checkpoint"]
```
"""


def train_pipeline(config, model_dir, num_steps=None, checkpoint_every_n=1000, log_every_n=100,
                   strategy=None, dtype_policy=None, verbose="auto", log=print, data_service=None):
    """Trains the model of a pipeline config into `model_dir`, resuming if it can.

    The steps of `kdet train`:

    1. `kdet.configs.compiled_pipeline(config, dtype_policy)` under `strategy.scope()`, and
       the `train_input_reader` paths checked (`check_config_paths`) before any weights load.
    2. A new run (no intact checkpoint in `model_dir`) starts from
       `train_config.fine_tune_checkpoint` (`kdet.configs.restore_fine_tune_checkpoint`; its
       one-line account goes to `log`); a resumed one from its newest checkpoint.
    3. `kdet.training.train` on `kdet.configs.train_dataset(pipeline)` (checked to give a
       batch), to `num_steps`, keeping a copy of the config in `model_dir`
       (`save_pipeline_config`) and the label map's names in the TensorBoard images.

    Args:
        config: str or path of the pipeline.config / YAML config.
        model_dir: str or path of the model directory (created if needed).
        num_steps: int, total steps; overrides `train_config.num_steps`.
        checkpoint_every_n: int, steps between checkpoints. Defaults to 1000.
        log_every_n: int, steps between TensorBoard scalars. Defaults to 100.
        strategy: optional `tf.distribute.Strategy` (see `distribution_strategy`). Defaults to
            the current one.
        dtype_policy: optional Keras dtype policy name, e.g. `"mixed_bfloat16"`.
        verbose: `fit`'s `verbose`. Defaults to `"auto"`.
        log: callable taking one line, or None. Defaults to `print`.
        data_service: None, or the tf.data service the training input runs on (`kdet train
            --data_service`): a dispatcher address `"grpc://host:port"` or a
            `kdet.data.service.DataService` (see `kdet.configs.train_dataset`). Under a
            multi-worker strategy, a service without a `job_name` gets
            `"kdet-train:<model_dir's name>:<first step>"`, the same on every worker, so the
            trainers share one job, each batch going to one of them. Defaults to None.

    Returns:
        `kdet.training.train`'s dict (`"start_step"`, `"final_step"`, `"seconds"`,
        `"checkpoint"`, `"losses"`), with `"replicas"` (int, the strategy's replicas in sync)
        and `"fine_tune"` (the `kdet.configs.FineTuneRestore`, or None).

    Raises:
        ValueError: no `train_config`, or no step limit (`train_config.num_steps` 0 and no
            `num_steps`).
        kdet.configs.ConfigError: a bad config or path, naming its line.
        kdet.data.DataError: the training input gives no batch, or runs out before
            `num_steps` (in the config's terms; the steps done are checkpointed).
    """
    import tensorflow as tf

    from kdet.configs import check_config_paths
    from kdet.configs import check_train_dataset
    from kdet.configs import compiled_pipeline
    from kdet.configs import restore_fine_tune_checkpoint
    from kdet.configs import train_dataset
    from kdet.configs.datasets import train_input_ran_out
    from kdet.data.label_map import read_label_map
    from kdet.training.config_copy import config_copy_callback
    from kdet.training.trainer import TrainingInputRanOutError
    from kdet.training.trainer import latest_checkpoint
    from kdet.training.trainer import train

    log = log or (lambda line: None)
    strategy = strategy or tf.distribute.get_strategy()
    restored = None
    resume = latest_checkpoint(model_dir)
    with strategy.scope():
        pipeline = compiled_pipeline(config, dtype_policy=dtype_policy)
        # Path typos are reported at their config line before any weights are restored.
        check_config_paths(pipeline, "train_input_reader")
        # A new run starts from the fine-tune checkpoint; a resumed one from its own.
        if resume is None:
            restored = restore_fine_tune_checkpoint(pipeline)
            if restored is not None:
                log(str(restored))
    num_steps = num_steps or pipeline.train.num_steps
    if num_steps <= 0:
        raise ValueError(
            f"{config}: train_config.num_steps is 0 (no limit); pass --num_train_steps "
            "(num_steps in Python)"
        )
    dataset = train_dataset(
        pipeline, data_service=_shared_job(data_service, strategy, model_dir, resume)
    )
    check_train_dataset(pipeline, dataset)
    label_map = pipeline.train_input.get("label_map")
    try:
        summary = train(
            pipeline.model,
            dataset,
            model_dir,
            num_steps,
            checkpoint_every_n,
            log_every_n=log_every_n,
            label_map=read_label_map(label_map) if label_map else None,
            callbacks=[config_copy_callback(config, model_dir)],
            verbose=verbose,
        )
    except TrainingInputRanOutError as error:  # the same, said in the config's terms
        raise train_input_ran_out(
            pipeline, error.summary["final_step"], num_steps, error.summary["checkpoint"]
        ) from None
    return {**summary, "replicas": strategy.num_replicas_in_sync, "fine_tune": restored}


def _shared_job(data_service, strategy, model_dir, resume):
    """`data_service` (see `train_pipeline`) with the job name the workers of a multi-worker
    `strategy` share, unless it has one (`resume`: `latest_checkpoint(model_dir)`)."""
    import dataclasses
    import pathlib

    from kdet.data.service import as_data_service

    data_service = as_data_service(data_service)
    resolver = getattr(strategy, "cluster_resolver", None)
    if data_service is None or data_service.job_name or resolver is None or not resolver.task_type:
        return data_service
    step = resume[0] if resume else 0
    return dataclasses.replace(
        data_service, job_name=f"kdet-train:{pathlib.Path(model_dir).resolve().name}:{step}"
    )
