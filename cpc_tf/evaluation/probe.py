"""--mode=probe, the cached linear probe: the evaluation view of every
labelled image encoded once, A.3's head (with fixed statistics a linear
map of the standardised readout) fitted to convergence for each penalty;
the penalty with the best held-out top-1 is reported. Minutes, not hours."""

import dataclasses
from typing import Optional

import keras

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.data import sources
from cpc_tf.data import subsets
from cpc_tf.data.patches import PatchGrid
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import logistic
from cpc_tf.evaluation import records
from cpc_tf.evaluation import task
from cpc_tf.serving import encoder_dir
from cpc_tf.train import checkpoints

# Images per batch when encoding features.
BATCH = 128


def grid_at_stride(grid: PatchGrid, stride: int) -> PatchGrid:
  """The pretraining grid's patches at another stride, checked to tile the
  image before any encoding starts."""
  grid = dataclasses.replace(grid, stride=stride)
  try:
    grid.grid_size
  except ValueError as error:
    raise config_lib.ConfigError(f"--probe_stride={stride}: {error}") from None
  return grid


def evaluation_grid(config: modes.ProbeConfig, pretrained) -> PatchGrid:
  """The patches the features are read from: the encoder's grid (at
  --probe_stride), or for A.3's pixel baseline the whole image as one
  patch (the spatial readouts of pixels read the encoder's patches)."""
  if config.probe_features == "pixels" and config.probe_pool == "mean":
    size = pretrained.image_size
    return PatchGrid(image_size=size, patch_size=size, stride=size)
  if config.probe_stride:
    return grid_at_stride(pretrained.grid, config.probe_stride)
  return pretrained.grid


def features_key(config: modes.ProbeConfig, pretrained, grid) -> tuple:
  """What the cached features depend on: the same key, the same features."""
  if config.probe_features == "pixels":
    encoder = ("pixels",)
  elif config.random_init:
    encoder = ("random", pretrained.encoder_config, config.seed)
  else:
    encoder = ("checkpoint", checkpoints.latest(pretrained.model_dir))
  return (encoder, grid, config.probe_pool, config.dataset or
          pretrained.dataset, config.data_dir or pretrained.data_dir)


@task.register
class ProbeTask(task.Task):
  CONFIG = modes.ProbeConfig
  NAME = "cached linear probe"
  METHODS = {
      "cpc_probe": task.CurveMethod(
          (), "Linear probe on CPC features", ("tab:blue", "--", "s")),
      "random_probe": task.CurveMethod(
          ("--random_init",), "Linear probe on a random encoder",
          ("tab:orange", "--", "s")),
      "pixels_probe": task.CurveMethod(
          ("--probe_features=pixels",), "Linear probe on pixels",
          ("tab:green", "--", "s")),
  }

  def method(self, config):
    if config.probe_features == "pixels":
      return "pixels_probe"
    return "random_probe" if config.random_init else "cpc_probe"

  def kind(self, record):
    readout = record.get("probe_pool", "mean")
    return super().kind(record) + (
        "" if readout == "mean" else f" ({readout} readout)")

  def run(self, config: modes.ProbeConfig,
          cache: Optional[feature_cache.FeatureCache] = None) -> dict:
    """The probe's record; `cache` keeps the encoded splits for the next
    run of the same features (run_curve.py, run_ladder.py)."""
    return _run(config, cache or feature_cache.FeatureCache(),
                self.method(config))


def _run(config, cache, method) -> dict:
  clock = task.WallClock()
  config.validate()
  pretrained = task.pretrained(config)
  dataset, data_dir, train_source = task.labelled_data(config, pretrained)
  train_indices, validation_indices = subsets.label_subset(
      train_source.labels(), config.label_fraction, config.validation_fraction,
      config.seed)
  keras.utils.set_random_seed(config.seed)
  grid = evaluation_grid(config, pretrained)
  key = features_key(config, pretrained, grid)
  cells = None

  def cached(split, indices=None):
    def encode(positions):
      nonlocal cells
      if cells is None:
        cells = (feature_cache.pixel_cells
                 if config.probe_features == "pixels" else
                 feature_cache.latent_cells(encoder_dir.restore(
                     pretrained, config.random_init)))
      images = pipelines.classification_dataset(
          dataset, split, data_dir, grid, BATCH, train=False,
          indices=positions)
      bar = keras.utils.Progbar(len(positions), unit_name="image")
      print(f"Encoding {len(positions)} images of {split}", flush=True)
      return feature_cache.cache_features(cells, images, config.probe_pool,
                                          progress=bar.update)
    size = sources.get_source(dataset, split, data_dir).num_examples
    return cache.get(key, split, size, indices, encode)

  train = cached(config.train_split, train_indices)
  validation = cached(config.train_split, validation_indices)
  test = cached(config.test_split)
  encode_seconds = clock.seconds()
  fit = logistic.fit_probe(train, validation, test, train_source.num_classes,
                        config.probe_penalties, config.probe_steps)
  return records.record(
      config, pretrained, method, probe="cached_linear", dataset=dataset,
      data_dir=data_dir,
      train_examples=len(train_indices),
      validation_examples=len(validation_indices),
      feature_dim=int(train.features.shape[1]),
      **{k: v for k, v in fit.items() if k not in ("weights", "bias")},
      encoder_checkpoint=(None if config.random_init or
                          config.probe_features == "pixels"
                          else checkpoints.latest(pretrained.model_dir)),
      encode_seconds=round(encode_seconds, 1),
      wall_seconds=round(clock.seconds(), 1))
