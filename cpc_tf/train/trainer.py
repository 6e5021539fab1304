"""CPC pretraining: build under a strategy, resume, fit, checkpoint."""

import contextlib
import math

import keras
import tensorflow as tf
from absl import logging

from cpc_tf.train import checkpoints as checkpoints_lib
from cpc_tf.train import saved_config
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.train import distribute
from cpc_tf.data import sources
from cpc_tf.train import summaries
from cpc_tf.models.encoder import build_encoder
from cpc_tf.models.cpc import CPCModel
from cpc_tf.models.infonce import CPCObjective


def learning_rate_schedule(config: config_lib.PretrainConfig):
  """Linear warm-up to the peak rate, then cosine decay to 0 at train_steps."""
  decay_steps = config.train_steps - config.warmup_steps
  if config.warmup_steps:
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps)
  return keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                decay_steps)


@contextlib.contextmanager
def dtype_policy(name: str):
  """Layers built inside compute in this Keras dtype policy."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def objective(config: config_lib.PretrainConfig) -> CPCObjective:
  """The A.2 objective of config: context networks, targets, predictions."""
  return CPCObjective(
      directions=config.directions, target_dim=config.target_dim,
      emb_scale=config.emb_scale, steps_to_ignore=config.steps_to_ignore,
      steps_to_predict=config.steps_to_predict,
      context_dim=config.context_dim, context_blocks=config.context_blocks,
      share_context=config.share_context, negatives=config.negatives)


def build_model(config: config_lib.PretrainConfig) -> CPCModel:
  """The compiled CPC model with all variables (optimizer slots too) created;
  call inside the strategy's scope."""
  with dtype_policy(config_lib.PRECISIONS[config.precision]):
    model = CPCModel(build_encoder(config.encoder_config), objective(config),
                     recompute_chunks=config.recompute_chunks
                     if config.recompute else 0)
  grid = config.grid
  model(tf.zeros([1, grid.grid_size, grid.grid_size, grid.patch_size,
                  grid.patch_size, 3]))
  optimizer = keras.optimizers.Adam(learning_rate_schedule(config))
  if config.precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  model.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                steps_per_execution=config.steps_per_execution)
  model.optimizer.build(model.trainable_variables)
  return model


def check_replicas(config: config_lib.PretrainConfig,
                   strategy: tf.distribute.Strategy):
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise config_lib.ConfigError(
        f"batch_size {config.batch_size} is not divisible by the "
        f"{replicas} replicas of --strategy={config.strategy}")


def distributed_dataset(config: config_lib.PretrainConfig,
                        strategy: tf.distribute.Strategy, start_step: int = 0):
  """Per-worker input pipelines. With config.deterministic the pipeline is
  seeded and replayed past the batches of the first start_step steps, so a
  resumed run sees the batches an uninterrupted one would."""
  def dataset_fn(input_context):
    dataset = pipelines.pretrain_dataset(
        config.dataset, config.split, config.data_dir, config.grid,
        config.batch_size, config.min_crop_area, config.augment,
        seed=config.seed if config.deterministic else None,
        input_context=input_context)
    if config.deterministic and start_step:
      # Each step takes one batch per replica of this worker.
      per_step = (input_context.num_replicas_in_sync //
                  input_context.num_input_pipelines)
      dataset = dataset.skip(start_step * per_step)
    return dataset
  return strategy.distribute_datasets_from_function(dataset_fn)


class StopAtStep(keras.callbacks.Callback):
  """Ends fit() once the optimizer has taken `last_step` steps."""

  def __init__(self, last_step: int):
    super().__init__()
    self.last_step = last_step

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations.numpy()) >= self.last_step:
      self.model.stop_training = True


def pretrain(config: config_lib.PretrainConfig) -> CPCModel:
  """Trains to config.train_steps, resuming from model_dir if it holds a run."""
  config.validate()
  # Fail early on a dataset that cannot be read.
  sources.get_source(config.dataset, config.split, config.data_dir)
  # The strategy first: joining a multi-worker cluster resets TF's context,
  # global seed included.
  strategy = distribute.make_strategy(config.strategy, config.tpu)
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  check_replicas(config, strategy)
  chief = distribute.is_chief(strategy)
  saved_config.save_config(config, write=chief)

  with strategy.scope():
    model = build_model(config)
  scratch = (None if chief
             else distribute.scratch_dir(config.model_dir, strategy))
  checkpoints = checkpoints_lib.Checkpoints(
      config.model_dir, model, config.checkpoint_every, write_dir=scratch)
  try:
    start = checkpoints.restore_latest()
  except AssertionError as e:     # objects of the model the checkpoint lacks
    raise config_lib.ConfigError(
        f"{checkpoints_lib.latest(config.model_dir)} does not hold this "
        "run's whole model and optimizer (a folder written by run_eval.py "
        "--save_encoder holds the encoder only: it can be evaluated, not "
        f"resumed): {str(e).strip().splitlines()[0][:200]}") from None
  remaining = config.train_steps - start
  if remaining <= 0:
    print(f"Already trained to step {start} of {config.train_steps}.")
    return model

  logging.info("Training %d steps (each Keras epoch is %d steps)",
               remaining, config.log_every)
  dataset = distributed_dataset(config, strategy, start)
  with checkpoints_lib.Preemption() as preemption:
    callbacks = [StopAtStep(config.train_steps),
                 checkpoints_lib.CheckpointCallback(checkpoints, preemption),
                 summaries.ScalarSummaries(config.model_dir, write=chief)]
    # One fit() and so one pass of one iterator over the data, in Keras
    # epochs of log_every steps (metrics are reset and logged per epoch).
    model.fit(dataset, epochs=math.ceil(remaining / config.log_every),
              steps_per_epoch=config.log_every, shuffle=False,
              callbacks=callbacks, verbose=1 if chief else 2)
  if scratch:
    tf.io.gfile.rmtree(scratch)
  return model
