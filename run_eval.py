r"""Evaluation of a pretrained CPC encoder (Section 2.2, Appendix A.3).

  python run_eval.py --mode=linear --model_dir=/tmp/cpc_tf_smoke

--mode=linear: the encoder frozen; batch norm without scale, a 1x1 conv to
one logit per class at every grid cell, spatial mean of the logits (A.3);
Adam at 5e-4. Training uses the pretraining augmentation, the test a single
centre crop. Top-1/top-5 on the test split are printed and appended as one
JSON line to <model_dir>/results.jsonl.

  python run_eval.py --mode=export --model_dir=/tmp/cpc_tf_smoke \
      --export_dir=/tmp/cpc_tf_smoke/export

--mode=export: a SavedModel of the encoder with the evaluation preprocessing;
signatures serving_default (uint8 images [N, H, W, 3]) and serving_encoded
(JPEG/PNG bytes [N]) return features [N, D] and latents [N, G, G, D].
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras  # pylint: disable=g-import-not-at-top
import tensorflow as tf
from absl import app
from absl import flags

from cpc_tf import classify
from cpc_tf import config as config_lib
from cpc_tf import data
from cpc_tf import export as export_lib
from cpc_tf import heads
from cpc_tf import sources
from cpc_tf import subsets

flags.DEFINE_enum("mode", "linear", ["linear", "export"],
                  "linear: the A.3 linear probe; export: write a SavedModel "
                  "of the encoder to --export_dir.")
flags.DEFINE_string("model_dir", None, "Pretraining model_dir: its "
                    "config.json and newest checkpoint are used.")
flags.DEFINE_string("dataset", None, "Labelled TFDS dataset or folder:PATH "
                    "of class subfolders (default: the pretraining dataset).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the "
                    "pretraining one, else TFDS_DATA_DIR).")
flags.DEFINE_string("train_split", "train", "Split the head is trained on.")
flags.DEFINE_string("test_split", "test", "Split accuracy is reported on.")
flags.DEFINE_float("label_fraction", 1.0, "Train on this class-balanced "
                   "fraction of the labelled training images (e.g. 0.01, 0.1); "
                   "nested and the same for the same seed.")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of "
                   "each class of the training split (disjoint from the "
                   "labelled subset) and report accuracy on it; choose "
                   "settings on it, not on the test split.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate (A.3: 5e-4).")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps for the head.")
flags.DEFINE_bool("random_init", False, "Use a randomly initialised encoder "
                  "of the same architecture instead of the checkpoint (the "
                  "baseline the pretrained features must beat).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("export_dir", None, "--mode=export: where the SavedModel "
                    "goes (any tf.io.gfile path, e.g. gs://); must not hold "
                    "one already.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def pretrain_config() -> config_lib.PretrainConfig:
  config = config_lib.load_config(FLAGS.model_dir)
  if config is None:
    raise config_lib.ConfigError(
        f"no {config_lib.CONFIG_FILE} in --model_dir={FLAGS.model_dir}: "
        "is it a run_pretrain.py model_dir?")
  return dataclasses.replace(config, model_dir=FLAGS.model_dir)


def export() -> str:
  """Writes the encoder's SavedModel; returns its path."""
  if not FLAGS.export_dir:
    raise config_lib.ConfigError("--mode=export needs --export_dir")
  if tf.io.gfile.exists(os.path.join(FLAGS.export_dir, "saved_model.pb")):
    raise config_lib.ConfigError(
        f"--export_dir={FLAGS.export_dir} already holds a SavedModel; choose "
        "another directory or remove it")
  config = pretrain_config()
  return export_lib.export_encoder(classify.restore_encoder(config), config,
                                   FLAGS.export_dir)


def evaluate_linear() -> dict:
  """Trains the A.3 linear head and returns the test metrics record."""
  clock = classify.WallClock()
  config = pretrain_config()
  dataset = FLAGS.dataset or config.dataset
  data_dir = FLAGS.data_dir or config.data_dir
  train_source = sources.get_source(dataset, FLAGS.train_split, data_dir)
  sources.get_source(dataset, FLAGS.test_split, data_dir)
  classes = train_source.num_classes
  if classes < 2:
    raise sources.DataError(f"{dataset} {FLAGS.train_split} has no class "
                            "labels to evaluate with")
  train_indices, validation_indices = None, []
  if FLAGS.label_fraction < 1 or FLAGS.validation_fraction > 0:
    train_indices, validation_indices = subsets.label_subset(
        train_source.labels(), FLAGS.label_fraction,
        FLAGS.validation_fraction, FLAGS.seed)
  keras.utils.set_random_seed(FLAGS.seed)

  encoder = classify.restore_encoder(config, FLAGS.random_init)
  model = classify.PatchClassifier(encoder, heads.linear_head(classes))
  classify.compile_classifier(model, FLAGS.learning_rate)
  train = data.classification_dataset(
      dataset, FLAGS.train_split, data_dir, config.grid, FLAGS.batch_size,
      train=True, min_crop_area=config.min_crop_area, augment=config.augment,
      indices=train_indices, seed=FLAGS.seed)
  test = data.classification_dataset(
      dataset, FLAGS.test_split, data_dir, config.grid, FLAGS.batch_size,
      train=False)
  model.fit(train, epochs=1, steps_per_epoch=FLAGS.train_steps, shuffle=False,
            verbose=2)
  metrics = model.evaluate(test, return_dict=True, verbose=0)
  validation = {}
  if len(validation_indices):
    held_out = data.classification_dataset(
        dataset, FLAGS.train_split, data_dir, config.grid, FLAGS.batch_size,
        train=False, indices=validation_indices)
    scores = model.evaluate(held_out, return_dict=True, verbose=0)
    validation = {"validation_top1": scores["top1"],
                  "validation_top5": scores["top5"]}
  return {
      "mode": "linear", "random_init": FLAGS.random_init,
      "dataset": dataset, "train_split": FLAGS.train_split,
      "test_split": FLAGS.test_split, "steps": FLAGS.train_steps,
      "label_fraction": FLAGS.label_fraction,
      "validation_fraction": FLAGS.validation_fraction,
      "train_examples": (train_source.num_examples if train_indices is None
                         else len(train_indices)), **validation,
      "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
      "seed": FLAGS.seed, "wall_seconds": round(clock.seconds(), 1),
      "pretrain_config": dataclasses.asdict(config),
      "test_top1": metrics["top1"], "test_top5": metrics["top5"],
      "test_loss": metrics["loss"],
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    if FLAGS.mode == "export":
      print(f"Exported the encoder to {export()}")
      return
    record = evaluate_linear()
  except (config_lib.ConfigError, sources.DataError) as e:
    sys.exit(f"run_eval.py: error: {e}")
  path = classify.append_result(FLAGS.model_dir, record)
  print(f"{record['mode']} probe{' (random encoder)' if FLAGS.random_init else ''}"
        f" on {record['dataset']} {record['test_split']}: "
        f"top-1 {record['test_top1']:.4f}, top-5 {record['test_top5']:.4f}")
  print(f"Result appended to {path}")


if __name__ == "__main__":
  app.run(main)
