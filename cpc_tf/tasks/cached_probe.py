"""The cached linear probe: the evaluation view of every labelled image
encoded once, A.3's head (with fixed statistics a linear map of the
standardised readout) fitted to convergence for each penalty; the penalty
with the best held-out top-1 is reported. Minutes, not hours."""

import dataclasses
from typing import Optional

import keras

from cpc_tf import checkpoints
from cpc_tf import classify
from cpc_tf import config as config_lib
from cpc_tf import data
from cpc_tf import encoder_dir
from cpc_tf import probe
from cpc_tf import sources
from cpc_tf import subsets
from cpc_tf.tasks import common
from cpc_tf.tasks import configs

# Images per batch when encoding features.
BATCH = 128


def grid_at_stride(grid: data.PatchGrid, stride: int) -> data.PatchGrid:
  """The pretraining grid's patches at another stride, checked to tile the
  image before any encoding starts."""
  grid = dataclasses.replace(grid, stride=stride)
  try:
    grid.grid_size
  except ValueError as error:
    raise config_lib.ConfigError(f"--probe_stride={stride}: {error}") from None
  return grid


def evaluation_grid(config: configs.ProbeConfig, pretrained) -> data.PatchGrid:
  """The patches the features are read from: the encoder's grid (at
  --probe_stride), or for A.3's pixel baseline the whole image as one
  patch (the spatial readouts of pixels read the encoder's patches)."""
  if config.probe_features == "pixels" and config.probe_pool == "mean":
    size = pretrained.image_size
    return data.PatchGrid(image_size=size, patch_size=size, stride=size)
  if config.probe_stride:
    return grid_at_stride(pretrained.grid, config.probe_stride)
  return pretrained.grid


def features_key(config: configs.ProbeConfig, pretrained, grid) -> tuple:
  """What the cached features depend on: the same key, the same features."""
  if config.probe_features == "pixels":
    encoder = ("pixels",)
  elif config.random_init:
    encoder = ("random", pretrained.encoder_config, config.seed)
  else:
    encoder = ("checkpoint", checkpoints.latest(pretrained.model_dir))
  return (encoder, grid, config.probe_pool, config.dataset or
          pretrained.dataset, config.data_dir or pretrained.data_dir)


def run(config: configs.ProbeConfig,
        cache: Optional[probe.FeatureCache] = None) -> dict:
  """The probe's record; `cache` keeps the encoded splits for the next run
  of the same features (run_curve.py, run_ladder.py)."""
  clock = classify.WallClock()
  config.validate()
  pretrained = common.pretrained(config)
  dataset, data_dir, train_source = common.labelled_data(config, pretrained)
  train_indices, validation_indices = subsets.label_subset(
      train_source.labels(), config.label_fraction, config.validation_fraction,
      config.seed)
  keras.utils.set_random_seed(config.seed)
  grid = evaluation_grid(config, pretrained)
  cache = cache or probe.FeatureCache()
  key = features_key(config, pretrained, grid)
  cells = None

  def cached(split, indices=None):
    def encode(positions):
      nonlocal cells
      if cells is None:
        cells = (probe.pixel_cells if config.probe_features == "pixels" else
                 probe.latent_cells(encoder_dir.restore(pretrained,
                                                        config.random_init)))
      images = data.classification_dataset(
          dataset, split, data_dir, grid, BATCH, train=False,
          indices=positions)
      bar = keras.utils.Progbar(len(positions), unit_name="image")
      print(f"Encoding {len(positions)} images of {split}", flush=True)
      return probe.cache_features(cells, images, config.probe_pool,
                                  progress=bar.update)
    size = sources.get_source(dataset, split, data_dir).num_examples
    return cache.get(key, split, size, indices, encode)

  train = cached(config.train_split, train_indices)
  validation = cached(config.train_split, validation_indices)
  test = cached(config.test_split)
  encode_seconds = clock.seconds()
  fit = probe.fit_probe(train, validation, test, train_source.num_classes,
                        config.probe_penalties, config.probe_steps)
  return common.record(
      config, pretrained, probe="cached_linear", dataset=dataset,
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
