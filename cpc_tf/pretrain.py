"""CPC pretraining: build under a strategy, resume, fit, checkpoint."""

import keras
import tensorflow as tf
from absl import logging

from cpc_tf import checkpoints as checkpoints_lib
from cpc_tf import config as config_lib
from cpc_tf import data
from cpc_tf import distribute
from cpc_tf import sources
from cpc_tf import summaries
from cpc_tf.encoder import build_encoder
from cpc_tf.model import CPCModel


def learning_rate_schedule(config: config_lib.PretrainConfig):
  """Linear warm-up to the peak rate, then cosine decay to 0 at train_steps."""
  decay_steps = config.train_steps - config.warmup_steps
  if config.warmup_steps:
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps)
  return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps)


def build_model(config: config_lib.PretrainConfig) -> CPCModel:
  """The compiled CPC model with all variables (optimizer slots too) created;
  call inside the strategy's scope."""
  model = CPCModel(build_encoder(config.encoder_config), config.objective())
  grid = config.grid
  model(tf.zeros([1, grid.grid_size, grid.grid_size, grid.patch_size,
                  grid.patch_size, 3]))
  model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(config)),
                jit_compile=config.jit_compile)
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
                        strategy: tf.distribute.Strategy):
  def dataset_fn(input_context):
    return data.pretrain_dataset(
        config.dataset, config.split, config.data_dir, config.grid,
        config.batch_size, config.min_crop_area, config.augment,
        seed=config.seed if config.deterministic else None,
        input_context=input_context)
  return strategy.distribute_datasets_from_function(dataset_fn)


def pretrain(config: config_lib.PretrainConfig) -> CPCModel:
  """Trains to config.train_steps, resuming from model_dir if it holds a run."""
  config.validate()
  sources.get_source(config.dataset, config.split, config.data_dir)  # fail early
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = distribute.make_strategy(config.strategy, config.tpu)
  check_replicas(config, strategy)
  config_lib.save_config(config)

  with strategy.scope():
    model = build_model(config)
  checkpoints = checkpoints_lib.Checkpoints(config.model_dir, model,
                                            config.checkpoint_every)
  start = checkpoints.restore_latest()
  remaining = config.train_steps - start
  if remaining <= 0:
    print(f"Already trained to step {start} of {config.train_steps}.")
    return model

  logging.info("Training %d steps (each Keras epoch is %d steps)",
               remaining, config.log_every)
  dataset = distributed_dataset(config, strategy)
  callbacks = [checkpoints_lib.CheckpointCallback(checkpoints),
               summaries.ScalarSummaries(config.model_dir)]
  # Keras epochs of log_every steps: metrics are reset and logged per epoch.
  epochs, rest = divmod(remaining, config.log_every)
  for steps, count in ((config.log_every, epochs), (rest, 1 if rest else 0)):
    if count:
      model.fit(dataset, epochs=count, steps_per_epoch=steps, shuffle=False,
                callbacks=callbacks, verbose=1)
  return model
