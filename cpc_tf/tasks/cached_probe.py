"""The cached linear probe: the evaluation view of every labelled image
encoded once, A.3's head (with fixed statistics a linear map of the
standardised mean latent) fitted to convergence for each penalty; the
penalty with the best held-out top-1 is reported. Minutes, not hours."""

import dataclasses

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


def run(config: configs.ProbeConfig) -> dict:
  clock = classify.WallClock()
  config.validate()
  pretrained = common.pretrained(config)
  dataset, data_dir, train_source = common.labelled_data(config, pretrained)
  train_indices, validation_indices = subsets.label_subset(
      train_source.labels(), config.label_fraction, config.validation_fraction,
      config.seed)
  keras.utils.set_random_seed(config.seed)
  pixels = config.probe_features == "pixels"
  if pixels:
    size = pretrained.image_size
    grid = data.PatchGrid(image_size=size, patch_size=size, stride=size)
    cells = probe.pixel_cells
  else:
    grid = pretrained.grid
    if config.probe_stride:
      grid = grid_at_stride(grid, config.probe_stride)
    cells = probe.latent_cells(encoder_dir.restore(pretrained,
                                                        config.random_init))

  def cache(split, indices=None):
    images = data.classification_dataset(
        dataset, split, data_dir, grid, BATCH, train=False, indices=indices)
    total = len(indices) if indices is not None else sources.get_source(
        dataset, split, data_dir).num_examples
    bar = keras.utils.Progbar(total, unit_name="image")
    print(f"Encoding {total} images of {split}", flush=True)
    return probe.cache_features(cells, images, progress=bar.update)

  train = cache(config.train_split, train_indices)
  validation = cache(config.train_split, validation_indices)
  test = cache(config.test_split)
  encode_seconds = clock.seconds()
  fit = probe.fit_probe(train, validation, test, train_source.num_classes,
                        config.probe_penalties, config.probe_steps)
  return common.record(
      config, pretrained, probe="cached_linear", dataset=dataset,
      data_dir=data_dir,
      train_examples=len(train_indices),
      validation_examples=len(validation_indices),
      feature_dim=int(train.means.shape[1]),
      **{k: v for k, v in fit.items() if k not in ("weights", "bias")},
      encoder_checkpoint=(None if config.random_init or pixels
                          else checkpoints.latest(pretrained.model_dir)),
      encode_seconds=round(encode_seconds, 1),
      wall_seconds=round(clock.seconds(), 1))
