"""The classification tasks run in-process from their configs: linear (A.3),
the cached probe, efficient (fixed and fine-tuned) and supervised (A.4)."""

import dataclasses
import os

import numpy as np
import pytest

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.evaluation import classification
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import probe
from cpc_tf.evaluation import records
from cpc_tf.evaluation import registry
from cpc_tf.serving import encoder_dir
from helpers import REPO, TINY

SMALL = dict(train_split="train[:80]", test_split="test[:32]")


@pytest.fixture
def separable(separable_folder):
  """Settings of the trivially separable set (2 classes, 80 training
  images): every classifier must learn it."""
  return dict(dataset=separable_folder, train_split="train",
              test_split="test")


def learnt(record):
  """Far above chance (50%) on the separable set's 40 test images."""
  assert record["test_top1"] >= 0.9, record["test_top1"]


@pytest.fixture
def early_stops(monkeypatch):
  """(max_steps, eval_every, patience) of each early-stopped training."""
  calls = []
  train = classification.train_with_early_stopping

  def spy(model, train_data, held_out, max_steps, eval_every, patience,
          callbacks=()):
    calls.append((max_steps, eval_every, patience))
    return train(model, train_data, held_out, max_steps, eval_every,
                 patience, callbacks)

  monkeypatch.setattr(classification, "train_with_early_stopping", spy)
  return calls


def test_linear_probe_with_early_stopping(pretrained, separable):
  config, _ = pretrained
  record = registry.run(modes.LinearConfig(
      model_dir=config.model_dir, batch_size=8, train_steps=30,
      learning_rate=1e-2, validation_fraction=0.25, eval_every=10,
      patience=1, **separable))
  assert (record["mode"], record["probe"]) == ("linear", "a3_linear")
  assert record["random_init"] is False and record["train_steps"] == 30
  assert record["steps"] in (10, 20, 30) and "validation_top1" in record
  assert record["pretrain_config"]["model_dir"] == config.model_dir
  learnt(record)


def test_cached_probe_of_a_random_encoder(pretrained, separable):
  config, _ = pretrained
  record = registry.run(modes.ProbeConfig(
      model_dir=config.model_dir, validation_fraction=0.25, random_init=True,
      probe_steps=20, probe_penalties=(0.1, 0.0), **separable))
  assert (record["probe"], record["random_init"]) == ("cached_linear", True)
  assert (record["train_examples"], record["validation_examples"]) == (60, 20)
  assert record["penalty"] in (0.1, 0.0)
  assert record["encoder_checkpoint"] is None
  assert record["method"] == "random_probe"
  learnt(record)


def test_cached_probe_at_another_stride(pretrained, monkeypatch):
  """--probe_stride averages the latents of a denser grid of the same
  patches; a stride that does not tile the image is refused by name."""
  config, _ = pretrained
  grids = []
  dataset = probe.pipelines.classification_dataset

  def spy(name, split, data_dir, grid, *args, **kwargs):
    grids.append(grid)
    return dataset(name, split, data_dir, grid, *args, **kwargs)

  monkeypatch.setattr(probe.pipelines, "classification_dataset", spy)
  record = registry.run(modes.ProbeConfig(
      model_dir=config.model_dir, validation_fraction=0.25, probe_stride=2,
      probe_steps=5, probe_penalties=(0.0,), **SMALL))
  assert record["probe_stride"] == 2
  assert {(g.patch_size, g.stride, g.grid_size) for g in grids} == {(8, 2, 5)}
  with pytest.raises(config_lib.ConfigError, match="--probe_stride=3"):
    registry.run(modes.ProbeConfig(
        model_dir=config.model_dir, validation_fraction=0.25, probe_stride=3,
        **SMALL))


def test_cached_probe_readouts_and_the_shared_cache(pretrained, monkeypatch):
  """Each readout's features have its size; runs that share a FeatureCache
  encode each image once (the second fraction only the images the first
  did not need); pixels read the encoder's patches."""
  config, _ = pretrained
  encoded = []
  dataset = probe.pipelines.classification_dataset

  def spy(name, split, data_dir, grid, *args, indices=None, **kwargs):
    encoded.append((split, len(indices)))
    return dataset(name, split, data_dir, grid, *args, indices=indices,
                   **kwargs)

  monkeypatch.setattr(probe.pipelines, "classification_dataset", spy)
  cache = feature_cache.FeatureCache()
  settings = dict(model_dir=config.model_dir, validation_fraction=0.25,
                  probe_steps=5, probe_penalties=(0.0,), **SMALL)
  half = registry.run(modes.ProbeConfig(
      label_fraction=0.5, probe_pool="grid", **settings), cache)
  whole = registry.run(modes.ProbeConfig(
      probe_pool="grid", **settings), cache)
  # Of 80 training images: half of those not held out, the held-out ones,
  # the test split, then the labelled images the first run did not use.
  labelled = 80 - half["validation_examples"]
  assert 0 < half["train_examples"] < labelled == whole["train_examples"]
  assert encoded == [("train[:80]", half["train_examples"]),
                     ("train[:80]", half["validation_examples"]),
                     ("test[:32]", 32),
                     ("train[:80]", labelled - half["train_examples"])]
  side, dim = config.grid.grid_size, 64
  assert half["feature_dim"] == whole["feature_dim"] == side * side * dim
  assert whole["probe_pool"] == "grid"
  quadrants = registry.run(modes.ProbeConfig(
      probe_pool="quadrants", **settings), cache)
  assert quadrants["feature_dim"] == 4 * dim and len(encoded) == 7
  pixels = registry.run(modes.ProbeConfig(
      probe_pool="quadrants", probe_features="pixels", **settings), cache)
  assert pixels["feature_dim"] == 4 * 8 * 8 * 3
  assert 0 <= pixels["test_top1"] <= pixels["test_top5"] <= 1


def test_efficient_classifier_fine_tuned(pretrained, early_stops, separable):
  config, _ = pretrained
  record = registry.run(modes.EfficientConfig(
      model_dir=config.model_dir, batch_size=8, train_steps=20,
      learning_rate=1e-2, label_fraction=0.5, head_blocks=1, head_width=16,
      head_bottleneck=8, fine_tune=True, fine_tune_steps=10, eval_every=10,
      validation_fraction=0.2, **separable))
  # Both stages stop early on the validation part: the fixed-encoder head,
  # then encoder and head together.
  assert early_stops == [(20, 10, 3), (10, 10, 3)] and record["steps"] == 20
  assert record["mode"] == "efficient" and record["train_examples"] == 32
  assert record["fine_tune"] and record["fine_tune_steps_taken"] == 10
  assert "validation_top1" in record and record["patch_augment"]
  assert record["method"] == "cpc_fine_tuned"
  learnt(record)


def test_supervised_baseline_keeps_its_encoder(pretrained, tmp_path, separable,
                                               early_stops):
  config, _ = pretrained
  saved_dir = str(tmp_path / "supervised_encoder")
  record = registry.run(modes.SupervisedConfig(
      model_dir=config.model_dir, batch_size=8, train_steps=20,
      learning_rate=1e-2, label_fraction=0.5, validation_fraction=0.25,
      eval_every=10, patience=1, pixel_blocks=(1,), pixel_width=8,
      dropout=0.5, patch_augment=False, save_encoder=saved_dir,
      **separable))
  assert record["mode"] == "supervised" and not record["patch_augment"]
  assert early_stops == [(20, 10, 1)] and record["steps"] in (10, 20)
  learnt(record)
  # The trained pixel ResNet, as a model_dir the other modes can read.
  assert record["saved_encoder"].startswith(saved_dir)
  saved = config_lib.load_config(saved_dir)
  assert (saved.encoder_width, saved.encoder_blocks, saved.norm) == (
      8, (1,), "batch")
  # Beside it, what trained it: this supervised run, not CPC pretraining.
  trained_by = encoder_dir.trained_by(saved_dir)
  assert trained_by["mode"] == "supervised"
  assert (trained_by["pixel_width"], trained_by["train_steps"]) == (8, 20)
  encoder = encoder_dir.restore(saved)
  moving_means = [w for w in encoder.weights if "moving_mean" in w.path]
  assert moving_means and any(np.any(w.numpy() != 0) for w in moving_means)
  with pytest.raises(config_lib.ConfigError, match="already holds an encoder"):
    dataclasses.replace(modes.SupervisedConfig(model_dir=config.model_dir),
                        save_encoder=saved_dir).validate()


def test_record_names_what_trained_a_saved_encoder(tmp_path):
  config = modes.ProbeConfig(model_dir=str(tmp_path))
  assert "encoder_trained_by" not in records.record(config, TINY, top1=0.5)
  (tmp_path / encoder_dir.TRAINED_BY_FILE).write_text('{"mode": "supervised"}')
  record = records.record(config, TINY, top1=0.5)
  assert record["encoder_trained_by"] == {"mode": "supervised"}
  assert record["top1"] == 0.5 and record["mode"] == "probe"


def test_baselines_without_a_model_dir(tmp_path, separable):
  """The supervised baseline and the pixel probe take their data, grid and
  augmentation from a pretraining flagfile: no pretraining run needed."""
  flagfile = os.path.join(REPO, "flags", "smoke.cfg")
  results = str(tmp_path / "results.jsonl")
  supervised = registry.run(modes.SupervisedConfig(
      pretrain_flagfile=flagfile, results_file=results, batch_size=8,
      train_steps=20, learning_rate=1e-2, pixel_blocks=(1,), pixel_width=8,
      **separable))
  pixels = registry.run(modes.ProbeConfig(
      pretrain_flagfile=flagfile, results_file=results,
      probe_features="pixels", validation_fraction=0.25, probe_steps=20,
      probe_penalties=(0.0,), **separable))
  for record in (supervised, pixels):
    learnt(record)
    assert record["model_dir"] is None
    assert record["pretrain_config"]["model_dir"] is None
    assert record["pretrain_config"]["image_size"] == 32
  assert pixels["feature_dim"] == 32 * 32 * 3


@pytest.mark.parametrize("config,message", [
    (modes.LinearConfig(pretrain_flagfile="f.cfg"),
     "needs the trained encoder's --model_dir"),
    (modes.ProbeConfig(pretrain_flagfile="f.cfg", validation_fraction=0.1,
                         random_init=True), "set --results_file"),
    (modes.SupervisedConfig(model_dir="m", pretrain_flagfile="f.cfg"),
     "not both"),
    (modes.EfficientConfig(model_dir="m", fine_tune=True),
     "set --validation_fraction"),
    (modes.ProbeConfig(model_dir="m"), "set --validation_fraction"),
    (modes.ProbeConfig(model_dir="m", validation_fraction=0.1,
                         random_init=True, probe_features="pixels"),
     "--random_init is for --probe_features=encoder"),
    (modes.ProbeConfig(model_dir="m", validation_fraction=0.1,
                         probe_penalties=(0.1, -1.0)), "--probe_penalties"),
    (modes.ProbeConfig(model_dir="m", validation_fraction=0.1,
                         probe_stride=0), "--probe_stride must be at least 1"),
    (modes.ProbeConfig(model_dir="m", validation_fraction=0.1,
                         probe_stride=2, probe_features="pixels"),
     "--probe_stride is for --probe_features=encoder"),
    (modes.LinearConfig(model_dir="m", validation_fraction=0.1,
                          eval_every=20, train_steps=10),
     r"--eval_every \(20\) is more than --train_steps"),
    (modes.SupervisedConfig(model_dir="m", validation_fraction=0.1,
                              eval_every=20, train_steps=10),
     r"--eval_every \(20\) is more than --train_steps"),
    (modes.LinearConfig(), "--model_dir is required"),
    (modes.SupervisedConfig(model_dir="m", dropout=1.0), "--dropout"),
    (modes.EfficientConfig(model_dir="m", head_width=0), "--head_width"),
    (modes.DetectionConfig(model_dir="m", detection_data="d",
                             min_scale=2.0), "--min_scale"),
])
def test_settings_that_cannot_work_are_named(config, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config.validate()


def test_each_mode_has_only_its_settings():
  fields = {mode: set(modes.field_names(mode)) for mode in modes.CONFIGS}
  assert "dropout" not in fields["linear"]
  assert "random_init" not in fields["supervised"] | fields["export"]
  assert "color_drop" in fields["detection"] - fields["efficient"]
  assert {"head_blocks", "fine_tune"} <= fields["efficient"]
  assert "fine_tune" not in fields["probe"] | fields["supervised"]
  for config_class in modes.CONFIGS.values():
    for field in dataclasses.fields(config_class):
      assert field.metadata.get("help"), (config_class, field.name)


def test_every_problem_of_a_config_is_named_at_once():
  with pytest.raises(config_lib.ConfigError) as error:
    modes.EfficientConfig(model_dir="m", head_width=0, dropout=1.0,
                          label_fraction=2.0).validate()
  assert sorted(p.split()[0] for p in str(error.value).split("; ")) == [
      "--dropout", "--head_width", "--label_fraction"]


def test_a_run_is_described_as_a_user_reads_it():
  record = {"dataset": "cifar10", "test_split": "test", "test_top1": 0.5,
            "test_top5": 0.9, "label_fraction": 1.0}
  assert registry.get("linear").describe(record) == (
      "A.3 linear probe on cifar10 test with 100% of the labels: top-1 "
      "0.5000, top-5 0.9000")
  assert registry.get("probe").describe(
      {**record, "label_fraction": 0.01, "method": "random_probe",
       "probe_pool": "grid"}).startswith(
           "Linear probe on a random encoder (grid readout) on cifar10 test "
           "with 1% of the labels")
