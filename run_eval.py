r"""Evaluation of a pretrained CPC encoder (Section 2.2, Appendix A.3, A.4).

  python run_eval.py --mode=linear --model_dir=/tmp/cpc_tf_smoke

--mode=linear: the encoder frozen; batch norm without scale, a 1x1 conv to
one logit per class at every grid cell, spatial mean of the logits (A.3);
Adam at 5e-4, training on the pretraining augmentation with batch
statistics, testing with the statistics of clean training latents; with
--validation_fraction the steps are chosen on the held-out part.
--mode=probe: the cached linear probe. The evaluation view of every image
is encoded once; A.3's head, which with fixed statistics is a linear map of
the standardised mean latent, is fitted to convergence for each
--probe_penalties and the best on the held-out part is reported. Minutes.
--probe_features=pixels fits it on raw pixels instead.
--mode=efficient: a ResNet head on the latent grid (--head_*), trained on a
--label_fraction subset; --fine_tune then also trains the encoder from the
pretrained weights at --encoder_learning_rate, with early stopping on the
held-out validation part (--validation_fraction).
--mode=supervised: the A.4 baseline, a ResNet v2 on pixels (--pixel_*) with
dropout before the last layer, on the same subsets and augmentation;
--save_encoder=DIR keeps it as an encoder model_dir (a supervised backbone
for --mode=detection).
Training uses the pretraining augmentation (--nopatch_augment: its image
crop alone), the test a single centre crop.
Top-1/top-5 on the test split are printed and appended as one JSON line to
--results_file (default <model_dir>/results.jsonl).

  python run_eval.py --mode=export --model_dir=/tmp/cpc_tf_smoke \
      --export_dir=/tmp/cpc_tf_smoke/export

  python run_eval.py --mode=detection --model_dir=/tmp/cpc_tf_smoke \
      --detection_data=../shared/data/fruit_detection

--mode=detection: keras-hub's RetinaNet with the encoder, applied to whole
images, as its backbone (fixed; --fine_tune then trains it too at
--encoder_learning_rate); mAP@0.5, 11-point and all-points, per class and
overall, on --test_split of a VOC-style folder.

--mode=export: a SavedModel of the encoder with the evaluation preprocessing;
signatures serving_default (uint8 images [N, H, W, 3]) and serving_encoded
(JPEG/PNG bytes [N]) return features [N, D] and latents [N, G, G, D].
With --save_encoder=DIR it also (or, without --export_dir, only) writes
the encoder's weights and config.json as a small encoder model_dir, the
form in which an encoder is released (docs/encoders/).
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TF enables its oneDNN CPU kernels by default only where AVX-512 VNNI/BF16
# or AMX exist; on an AVX2 Zen 3 they made the CIFAR-10 CPU step 1.44x faster
# (bench/pretrain_step.py --onednn). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # pylint: disable=g-import-not-at-top
import tensorflow as tf
from absl import app
from absl import flags

from cpc_tf import checkpoints
from cpc_tf import classify
from cpc_tf import config as config_lib
from cpc_tf import data
from cpc_tf import detect
from cpc_tf import encoder as encoder_lib
from cpc_tf import export as export_lib
from cpc_tf import heads
from cpc_tf import probe
from cpc_tf import results as results_lib
from cpc_tf import sources
from cpc_tf import subsets
from cpc_tf import voc
from cpc_tf.augment import PatchAugment

MODES = ["linear", "probe", "efficient", "supervised", "detection", "export"]

flags.DEFINE_enum("mode", "linear", MODES,
                  "linear: the A.3 linear probe; probe: the cached linear "
                  "probe (A.3's head fitted to convergence on features "
                  "encoded once, minutes); efficient: a ResNet head on "
                  "the latents (optionally fine-tuning the encoder); "
                  "supervised: the A.4 pixel baseline; detection: RetinaNet "
                  "on the encoder, mAP on a VOC-style folder; export: write a "
                  "SavedModel of the encoder to --export_dir.")
flags.DEFINE_string("model_dir", None, "Pretraining model_dir: its "
                    "config.json and newest checkpoint are used.")
flags.DEFINE_string("dataset", None, "Labelled TFDS dataset or folder:PATH "
                    "of class subfolders (default: the pretraining dataset).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the "
                    "pretraining one, else TFDS_DATA_DIR).")
flags.DEFINE_string("train_split", "train", "Split the classifier is trained on.")
flags.DEFINE_string("test_split", "test", "Split accuracy is reported on.")
flags.DEFINE_float("label_fraction", 1.0, "Train on this class-balanced "
                   "fraction of the labelled training images (e.g. 0.01, 0.1); "
                   "nested and the same for the same seed.")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of "
                   "each class of the training split (disjoint from the "
                   "labelled subset) and report accuracy on it; choose "
                   "settings on it, not on the test split.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate of the head "
                   "(A.3: 5e-4), and of the whole network in supervised mode.")
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps (with the encoder "
                     "fixed, in linear and efficient modes); linear mode "
                     "with --validation_fraction stops early on it.")
flags.DEFINE_bool("random_init", False, "Use a randomly initialised encoder "
                  "of the same architecture instead of the checkpoint (the "
                  "baseline the pretrained features must beat).")
flags.DEFINE_integer("seed", 0, "Random seed (subsets, initialisation, data order).")
flags.DEFINE_string("results_file", None, "JSON-lines file the result is "
                    "appended to (default: <model_dir>/results.jsonl).")
# The cached linear probe.
flags.DEFINE_enum("probe_features", "encoder", ["encoder", "pixels"],
                  "probe: the encoder's mean latent (its checkpoint, or a "
                  "random one with --random_init), or the raw pixels of the "
                  "evaluation view (the baseline every encoder must beat).")
flags.DEFINE_list("probe_penalties", [str(p) for p in probe.PENALTIES],
                  "probe: L2 penalties tried; the one with the best "
                  "validation top-1 is reported.")
flags.DEFINE_integer("probe_steps", 500, "probe: full-batch Adam steps per "
                     "fit (the record holds the final gradient norm).")
# Efficient classification (Section 2.2).
flags.DEFINE_integer("head_blocks", 11, "efficient: bottleneck blocks of the "
                     "ResNet head (paper: 11).")
flags.DEFINE_integer("head_width", 4096, "efficient: width of the head's "
                     "feature maps (paper: 4096).")
flags.DEFINE_integer("head_bottleneck", 1024, "efficient: bottleneck width "
                     "of the head's blocks (paper: 1024).")
flags.DEFINE_enum("head_norm", "batch", encoder_lib.NORMS,
                  "efficient: normalisation in the head.")
flags.DEFINE_float("dropout", 0.0, "Dropout before the last linear layer "
                   "(efficient and supervised modes).")
flags.DEFINE_bool("patch_augment", True, "linear, efficient, supervised: "
                  "train on the pretraining augmentation, the image crop and "
                  "the per-patch one; with --nopatch_augment, on the image "
                  "crop alone (the test always sees a centre crop).")
flags.DEFINE_bool("fine_tune", False, "efficient and detection: after "
                  "--train_steps with the encoder fixed, train encoder and "
                  "head together.")
flags.DEFINE_float("encoder_learning_rate", 5e-5, "--fine_tune: the "
                   "encoder's own (smaller) Adam learning rate.")
flags.DEFINE_integer("fine_tune_steps", 1000, "--fine_tune: at most this "
                     "many steps; efficient mode runs whole rounds of "
                     "--eval_every and stops early on the validation part, "
                     "detection runs them all.")
flags.DEFINE_integer("eval_every", 100, "--fine_tune, and linear mode with "
                     "--validation_fraction: steps between validations for "
                     "early stopping.")
flags.DEFINE_integer("patience", 3, "--fine_tune, and linear mode with "
                     "--validation_fraction: validations without "
                     "improvement before stopping; the best weights are kept.")
# The supervised baseline (A.4).
flags.DEFINE_enum("pixel_encoder", "resnet50",
                  sorted(n for n in encoder_lib.PRESETS if n != "resnet161"),
                  "supervised: ResNet v2 depth.")
flags.DEFINE_integer("pixel_width", 64, "supervised: width of the first "
                     "bottleneck (64 is the standard ResNet).")
flags.DEFINE_list("pixel_blocks", [], "supervised: blocks per stage, "
                  "overriding the preset (small CPU sizes), e.g. 1,1,1.")
flags.DEFINE_enum("pixel_norm", "batch", encoder_lib.NORMS,
                  "supervised: normalisation in the ResNet.")
flags.DEFINE_enum("pixel_stem", None, encoder_lib.STEMS, "supervised: stem "
                  "(default: the pretraining encoder's).")
flags.DEFINE_string("save_encoder", None, "supervised: also write the trained "
                    "pixel ResNet; export: write the model_dir's encoder. "
                    "Written as an encoder model_dir (config.json and "
                    "checkpoints/ with the encoder's weights only, any "
                    "tf.io.gfile path) that the other modes read with "
                    "--model_dir, e.g. a released encoder or a supervised "
                    "backbone for --mode=detection; must not hold one "
                    "already.")
# Transfer to detection (Sections 2.2, 4.3).
flags.DEFINE_string("detection_data", None, "detection: a VOC-style folder "
                    "(one XML per image, in <split>/ subfolders or not, or "
                    "the VOCdevkit layout), or tfds:NAME for a prepared TFDS "
                    "detection dataset under --data_dir (e.g. tfds:voc/2007 "
                    "with --train_split=train+validation).")
flags.DEFINE_integer("detection_image_size", 256, "detection: images are "
                     "resized to this square size.")
flags.DEFINE_integer("min_level", 3, "detection: finest pyramid level "
                     "(stride 2^level); must be an encoder stage's level.")
flags.DEFINE_integer("max_level", 7, "detection: coarsest pyramid level; "
                     "levels above the encoder's come from strided convs.")
flags.DEFINE_integer("head_convs", 4, "detection: 3x3 convolutions in each "
                     "RetinaNet head before its output layer.")
flags.DEFINE_float("min_scale", 0.75, "detection: scale augmentation, least "
                   "factor (1 and --max_scale=1: none).")
flags.DEFINE_float("max_scale", 1.25, "detection: scale augmentation, "
                   "largest factor.")
flags.DEFINE_float("color_drop", 0.5, "detection: probability of colour "
                   "dropping per training image (Section 4.3).")
flags.DEFINE_string("export_dir", None, "--mode=export: where the SavedModel "
                    "goes (any tf.io.gfile path, e.g. gs://); must not hold "
                    "one already.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS
# Images per batch when encoding features for the cached probe.
PROBE_BATCH = 128
# A.3 probe: clean training images whose latents give the test-time
# normalisation statistics.
NORM_STATISTICS_IMAGES = 10000


def pretrain_config() -> config_lib.PretrainConfig:
  config = config_lib.load_config(FLAGS.model_dir)
  if config is None:
    raise config_lib.ConfigError(
        f"no {config_lib.CONFIG_FILE} in --model_dir={FLAGS.model_dir}: "
        "is it a run_pretrain.py model_dir?")
  return dataclasses.replace(config, model_dir=FLAGS.model_dir)


def export() -> str:
  """Writes the encoder's SavedModel (--export_dir) and/or its weights and
  config as an encoder model_dir (--save_encoder); returns what it wrote."""
  if not (FLAGS.export_dir or FLAGS.save_encoder):
    raise config_lib.ConfigError(
        "--mode=export needs --export_dir (a SavedModel) or --save_encoder "
        "(config.json and the encoder's weights)")
  if FLAGS.export_dir and tf.io.gfile.exists(
      os.path.join(FLAGS.export_dir, "saved_model.pb")):
    raise config_lib.ConfigError(
        f"--export_dir={FLAGS.export_dir} already holds a SavedModel; choose "
        "another directory or remove it")
  check_flags()
  config = pretrain_config()
  encoder = classify.restore_encoder(config)
  written = []
  if FLAGS.export_dir:
    written.append(export_lib.export_encoder(encoder, config,
                                             FLAGS.export_dir))
  if FLAGS.save_encoder:
    step = int(checkpoints.latest(config.model_dir).rsplit("-", 1)[1])
    written.append(classify.save_encoder(
        encoder, dataclasses.replace(config, model_dir=FLAGS.save_encoder),
        step))
  return " and ".join(written)


def check_flags():
  if FLAGS.fine_tune and FLAGS.mode not in ("efficient", "detection"):
    raise config_lib.ConfigError("--fine_tune is for --mode=efficient or "
                                 "--mode=detection")
  if FLAGS.mode == "detection":
    if not FLAGS.detection_data:
      raise config_lib.ConfigError("--mode=detection needs --detection_data")
    if not 0 < FLAGS.min_scale <= FLAGS.max_scale:
      raise config_lib.ConfigError("need 0 < --min_scale <= --max_scale")
    if not 0 <= FLAGS.color_drop <= 1:
      raise config_lib.ConfigError("--color_drop must be in [0, 1]")
  elif FLAGS.fine_tune and FLAGS.validation_fraction <= 0:
    raise config_lib.ConfigError(
        "--fine_tune stops early on held-out data: set --validation_fraction")
  elif FLAGS.fine_tune and FLAGS.eval_every > FLAGS.fine_tune_steps:
    raise config_lib.ConfigError(
        f"--eval_every ({FLAGS.eval_every}) is more than --fine_tune_steps "
        f"({FLAGS.fine_tune_steps}): no validation would happen")
  if (FLAGS.mode == "linear" and FLAGS.validation_fraction > 0
      and FLAGS.eval_every > FLAGS.train_steps):
    raise config_lib.ConfigError(
        f"--eval_every ({FLAGS.eval_every}) is more than --train_steps "
        f"({FLAGS.train_steps}): no validation would happen")
  if FLAGS.random_init and FLAGS.mode not in ("linear", "probe", "efficient",
                                              "detection"):
    raise config_lib.ConfigError(
        f"--random_init is for the modes that evaluate an encoder (linear, "
        f"probe, efficient, detection), not --mode={FLAGS.mode}")
  if FLAGS.mode == "probe":
    if FLAGS.validation_fraction <= 0:
      raise config_lib.ConfigError("--mode=probe chooses its penalty on "
                                   "held-out data: set --validation_fraction")
    if FLAGS.random_init and FLAGS.probe_features == "pixels":
      raise config_lib.ConfigError("--random_init is for "
                                   "--probe_features=encoder")
    try:
      penalties = [float(p) for p in FLAGS.probe_penalties]
    except ValueError:
      penalties = [-1.0]
    if not penalties or min(penalties) < 0:
      raise config_lib.ConfigError("--probe_penalties must be numbers >= 0, "
                                   f"got {FLAGS.probe_penalties}")
  for name in ("batch_size", "train_steps", "probe_steps", "eval_every",
               "patience", "fine_tune_steps", "head_blocks", "head_width",
               "head_bottleneck", "pixel_width", "detection_image_size",
               "head_convs"):
    if getattr(FLAGS, name) < 1:
      raise config_lib.ConfigError(f"--{name} must be at least 1")
  if not 0 <= FLAGS.dropout < 1:
    raise config_lib.ConfigError("--dropout must be in [0, 1)")
  if not 0 < FLAGS.label_fraction <= 1:
    raise config_lib.ConfigError("--label_fraction must be in (0, 1]")
  if not 0 <= FLAGS.validation_fraction < 1:
    raise config_lib.ConfigError("--validation_fraction must be in [0, 1)")
  if FLAGS.save_encoder:
    if FLAGS.mode not in ("supervised", "export"):
      raise config_lib.ConfigError("--save_encoder is for --mode=supervised "
                                   "or --mode=export")
    if tf.io.gfile.exists(os.path.join(FLAGS.save_encoder,
                                       config_lib.CONFIG_FILE)):
      raise config_lib.ConfigError(
          f"--save_encoder={FLAGS.save_encoder} already holds an encoder "
          f"({config_lib.CONFIG_FILE}); choose another directory")


def pixel_config(config, dataset, data_dir) -> config_lib.PretrainConfig:
  """config with the supervised pixel ResNet (--pixel_*) as its encoder,
  trained on dataset's --train_split, kept in --save_encoder."""
  return dataclasses.replace(
      config, model_dir=FLAGS.save_encoder, dataset=dataset,
      data_dir=data_dir, split=FLAGS.train_split,
      train_steps=FLAGS.train_steps, encoder=FLAGS.pixel_encoder,
      encoder_width=FLAGS.pixel_width,
      encoder_blocks=tuple(int(b) for b in FLAGS.pixel_blocks),
      norm=FLAGS.pixel_norm, stem=FLAGS.pixel_stem or config.stem)


def build_classifier(config, classes: int) -> classify.PatchClassifier:
  """The mode's network (for supervised, config is pixel_config's)."""
  if FLAGS.mode == "supervised":
    encoder = encoder_lib.build_encoder(config.encoder_config,
                                        name="pixel_resnet")
    head = heads.pooled_head(classes, encoder.output_shape[-1], FLAGS.dropout)
    return classify.PatchClassifier(encoder, head, fine_tune=True)
  encoder = classify.restore_encoder(config, FLAGS.random_init)
  if FLAGS.mode == "linear":
    head = heads.linear_head(classes)
  else:
    head = heads.resnet_head(classes, encoder.output_shape[-1],
                             FLAGS.head_blocks, FLAGS.head_bottleneck,
                             FLAGS.head_width, FLAGS.head_norm, FLAGS.dropout)
  return classify.PatchClassifier(encoder, head)


def grid_for_mode(config) -> data.PatchGrid:
  """The pixel baseline sees the whole image as a single patch."""
  if FLAGS.mode == "supervised":
    size = config.image_size
    return data.PatchGrid(image_size=size, patch_size=size, stride=size)
  return config.grid


def labelled_data(config):
  """(dataset, data_dir, training split's source) of a classification
  evaluation, both splits checked to exist and to be labelled."""
  dataset = FLAGS.dataset or config.dataset
  data_dir = FLAGS.data_dir or config.data_dir
  train_source = sources.get_source(dataset, FLAGS.train_split, data_dir)
  sources.get_source(dataset, FLAGS.test_split, data_dir)
  if train_source.num_classes < 2:
    raise sources.DataError(f"{dataset} {FLAGS.train_split} has no class "
                            "labels to evaluate with")
  return dataset, data_dir, train_source


def evaluate() -> dict:
  """Trains the mode's classifier and returns the test metrics record."""
  clock = classify.WallClock()
  check_flags()
  config = pretrain_config()
  dataset, data_dir, train_source = labelled_data(config)
  classes = train_source.num_classes
  train_indices, validation_indices = None, []
  if FLAGS.label_fraction < 1 or FLAGS.validation_fraction > 0:
    train_indices, validation_indices = subsets.label_subset(
        train_source.labels(), FLAGS.label_fraction,
        FLAGS.validation_fraction, FLAGS.seed)
  keras.utils.set_random_seed(FLAGS.seed)
  grid = grid_for_mode(config)

  def labelled(split, train, indices=None):
    return data.classification_dataset(
        dataset, split, data_dir, grid, FLAGS.batch_size, train=train,
        min_crop_area=config.min_crop_area,
        augment=config.augment if FLAGS.patch_augment else PatchAugment(),
        indices=indices, seed=FLAGS.seed)

  train = labelled(FLAGS.train_split, True, train_indices)
  held_out = (labelled(FLAGS.train_split, False, validation_indices)
              if len(validation_indices) else None)
  model_config = (pixel_config(config, dataset, data_dir)
                  if FLAGS.mode == "supervised" else config)
  model = build_classifier(model_config, classes)
  classify.compile_classifier(model, FLAGS.learning_rate)
  steps = FLAGS.train_steps
  if FLAGS.mode == "linear":
    # Training normalises with each batch's statistics (A.3), testing with
    # those of clean (unaugmented) training latents: collected on augmented,
    # partly colour-dropped latents they would not describe the test inputs.
    classify.use_clean_statistics(
        model, labelled(FLAGS.train_split, False, train_indices).take(
            -(-NORM_STATISTICS_IMAGES // FLAGS.batch_size)))
  if FLAGS.mode == "linear" and held_out is not None:
    steps = classify.train_with_early_stopping(
        model, train, held_out, FLAGS.train_steps, FLAGS.eval_every,
        FLAGS.patience)
  else:
    model.fit(train, epochs=1, steps_per_epoch=FLAGS.train_steps,
              shuffle=False, verbose=2)
  saved = {}
  if FLAGS.save_encoder:
    saved = {"saved_encoder": classify.save_encoder(
        model.encoder, model_config, FLAGS.train_steps)}
    print(f"Saved the supervised encoder to {FLAGS.save_encoder}", flush=True)
  fine_tune_steps = 0
  if FLAGS.fine_tune:
    model, fine_tune_steps = classify.fine_tune(
        model, train, held_out, FLAGS.learning_rate,
        FLAGS.encoder_learning_rate, FLAGS.fine_tune_steps, FLAGS.eval_every,
        FLAGS.patience)

  metrics = model.evaluate(labelled(FLAGS.test_split, False),
                           return_dict=True, verbose=0)
  validation = {}
  if held_out is not None:
    scores = model.evaluate(held_out, return_dict=True, verbose=0)
    validation = {"validation_top1": scores["top1"],
                  "validation_top5": scores["top5"]}
  return {
      "mode": FLAGS.mode, "random_init": FLAGS.random_init,
      **({"probe": "a3_linear"} if FLAGS.mode == "linear" else {}),
      "fine_tune": FLAGS.fine_tune, "patch_augment": FLAGS.patch_augment,
      "dataset": dataset,
      "train_split": FLAGS.train_split, "test_split": FLAGS.test_split,
      "steps": steps, "fine_tune_steps": fine_tune_steps,
      "label_fraction": FLAGS.label_fraction,
      "validation_fraction": FLAGS.validation_fraction,
      "train_examples": (train_source.num_examples if train_indices is None
                         else len(train_indices)), **validation,
      "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
      "classifier_params": model.count_params(),
      "eval_flags": {name: getattr(FLAGS, name) for name in (
          "head_blocks", "head_width", "head_bottleneck", "head_norm",
          "dropout", "encoder_learning_rate", "pixel_encoder", "pixel_width",
          "pixel_blocks", "pixel_norm", "pixel_stem")},
      "seed": FLAGS.seed, "wall_seconds": round(clock.seconds(), 1),
      "pretrain_config": dataclasses.asdict(config), **saved,
      "test_top1": metrics["top1"], "test_top5": metrics["top5"],
      "test_loss": metrics["loss"],
  }


def cached_probe() -> dict:
  """Encodes the evaluation view of the labelled images once and fits the
  cached linear probe; returns its record."""
  clock = classify.WallClock()
  check_flags()
  config = pretrain_config()
  dataset, data_dir, train_source = labelled_data(config)
  train_indices, validation_indices = subsets.label_subset(
      train_source.labels(), FLAGS.label_fraction, FLAGS.validation_fraction,
      FLAGS.seed)
  keras.utils.set_random_seed(FLAGS.seed)
  if FLAGS.probe_features == "pixels":
    size = config.image_size
    grid = data.PatchGrid(image_size=size, patch_size=size, stride=size)
    cells = probe.pixel_cells
  else:
    grid = config.grid
    cells = probe.latent_cells(classify.restore_encoder(config,
                                                        FLAGS.random_init))

  def cache(split, indices=None):
    images = data.classification_dataset(
        dataset, split, data_dir, grid, PROBE_BATCH, train=False,
        indices=indices)
    total = len(indices) if indices is not None else sources.get_source(
        dataset, split, data_dir).num_examples
    bar = keras.utils.Progbar(total, unit_name="image")
    print(f"Encoding {total} images of {split}", flush=True)
    return probe.cache_features(cells, images, progress=bar.update)

  train = cache(FLAGS.train_split, train_indices)
  validation = cache(FLAGS.train_split, validation_indices)
  test = cache(FLAGS.test_split)
  encode_seconds = clock.seconds()
  penalties = [float(p) for p in FLAGS.probe_penalties]
  fit = probe.fit_probe(train, validation, test, train_source.num_classes,
                        penalties, FLAGS.probe_steps)
  return {
      "mode": "probe", "probe": "cached_linear",
      "features": FLAGS.probe_features, "random_init": FLAGS.random_init,
      "dataset": dataset, "train_split": FLAGS.train_split,
      "test_split": FLAGS.test_split, "label_fraction": FLAGS.label_fraction,
      "validation_fraction": FLAGS.validation_fraction,
      "train_examples": len(train_indices),
      "validation_examples": len(validation_indices),
      "feature_dim": int(train.means.shape[1]),
      "penalties": penalties, "probe_steps": FLAGS.probe_steps,
      **{k: v for k, v in fit.items() if k not in ("weights", "bias")},
      "encoder_checkpoint": (
          None if FLAGS.random_init or FLAGS.probe_features == "pixels" else
          checkpoints.latest(config.model_dir)),
      "seed": FLAGS.seed, "encode_seconds": round(encode_seconds, 1),
      "wall_seconds": round(clock.seconds(), 1),
      "pretrain_config": dataclasses.asdict(config),
  }


def detection() -> dict:
  """Trains RetinaNet on the encoder and returns the test mAP record."""
  clock = classify.WallClock()
  check_flags()
  config = pretrain_config()
  data_dir = FLAGS.data_dir or config.data_dir
  train_annotations, train_report = voc.load(FLAGS.detection_data,
                                             FLAGS.train_split, data_dir)
  test_annotations, test_report = voc.load(FLAGS.detection_data,
                                           FLAGS.test_split, data_dir)
  names = voc.class_names(train_annotations)
  # Seeded first, as in evaluate(): --random_init's weights depend on --seed.
  keras.utils.set_random_seed(FLAGS.seed)
  encoder = classify.restore_encoder(config, FLAGS.random_init)
  size = FLAGS.detection_image_size
  try:
    detector = detect.build_detector(
        encoder_lib.stage_maps(encoder, config.encoder_config),
        config.encoder_config,
        len(names), FLAGS.min_level, FLAGS.max_level, FLAGS.head_convs)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from e
  train = detect.detection_dataset(
      train_annotations, names, size, FLAGS.batch_size, train=True,
      min_scale=FLAGS.min_scale, max_scale=FLAGS.max_scale,
      color_drop=FLAGS.color_drop, seed=FLAGS.seed)
  detect.train(detector, train, FLAGS.train_steps, FLAGS.learning_rate)
  metrics = detect.evaluate_map(detector, test_annotations, names, size,
                                FLAGS.batch_size)
  fixed = {}
  if FLAGS.fine_tune:
    # The fixed-backbone result comes for free on the way.
    fixed = {f"fixed_test_{name}": value for name, value in metrics.items()}
    print(f"with the encoder fixed: mAP@0.5 {metrics['map_all_points']:.4f} "
          "(all points)", flush=True)
    detector = detect.fine_tunable(detector, FLAGS.encoder_learning_rate)
    detect.train(detector, train, FLAGS.fine_tune_steps, FLAGS.learning_rate)
    metrics = detect.evaluate_map(detector, test_annotations, names, size,
                                  FLAGS.batch_size)
  return {
      "mode": "detection", "random_init": FLAGS.random_init,
      "fine_tune": FLAGS.fine_tune, "dataset": FLAGS.detection_data,
      "train_split": FLAGS.train_split, "test_split": FLAGS.test_split,
      "classes": names, "train_images": len(train_annotations),
      "test_images": len(test_annotations),
      "repairs": {split: dataclasses.asdict(report) | {
          "skipped_files": len(report.skipped_files)} for split, report in
                  (("train", train_report), ("test", test_report))},
      "steps": FLAGS.train_steps,
      "fine_tune_steps": FLAGS.fine_tune_steps if FLAGS.fine_tune else 0,
      "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
      "detector_params": detector.count_params(),
      "eval_flags": {name: getattr(FLAGS, name) for name in (
          "detection_image_size", "min_level", "max_level", "head_convs",
          "min_scale", "max_scale", "color_drop", "encoder_learning_rate")},
      "seed": FLAGS.seed, "wall_seconds": round(clock.seconds(), 1),
      "pretrain_config": dataclasses.asdict(config), **fixed,
      **{f"test_{name}": value for name, value in metrics.items()},
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    if FLAGS.mode == "export":
      print(f"Exported the encoder to {export()}")
      return
    run = {"detection": detection, "probe": cached_probe}.get(FLAGS.mode,
                                                              evaluate)
    record = run()
  except (config_lib.ConfigError, sources.DataError) as e:
    sys.exit(f"run_eval.py: error: {e}")
  print(describe(record))
  path = results_lib.append(FLAGS.model_dir, record, FLAGS.results_file)
  print(f"Result appended to {path}")


def describe(record: dict) -> str:
  """One line: what was evaluated and its headline metric."""
  kind = {"linear": "A.3 linear probe", "probe": "cached linear probe",
          "efficient": "efficient classifier",
          "supervised": "supervised pixel baseline",
          "detection": "RetinaNet detector"}[FLAGS.mode]
  if FLAGS.mode == "probe" and FLAGS.probe_features == "pixels":
    kind += " on raw pixels"
  elif FLAGS.random_init:
    kind += " (random encoder)"
  if FLAGS.fine_tune:
    kind += " (fine-tuned)"
  if FLAGS.mode == "detection":
    return (f"{kind} on {record['dataset']} {record['test_split']}: mAP@0.5 "
            f"{record['test_map_all_points']:.4f} (all points), "
            f"{record['test_map_11_point']:.4f} (11-point)")
  return (f"{kind} on {record['dataset']} {record['test_split']} with "
          f"{FLAGS.label_fraction:g} of the labels: top-1 "
          f"{record['test_top1']:.4f}, top-5 {record['test_top5']:.4f}")


if __name__ == "__main__":
  app.run(main)
