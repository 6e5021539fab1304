"""Evaluation settings as data: one frozen dataclass per run_eval.py mode,
assembled from groups of settings, each field written once with its help
text (run_eval.py makes one flag of each field, command_line.py).

A mode's config holds only the settings that mode uses, so a flag given for
another mode can be refused by name. validate() collects the problems of
every group the config is made of.
"""

import dataclasses
import os
from typing import ClassVar, List, Optional, Tuple

import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.models import encoder as encoder_lib

setting = config_lib.setting

# The cached probe's L2 penalties (the one best on validation is reported)
# and its readouts of an image's grid of features: the mean over all cells
# (A.3), the means of the four quarters side by side, or every cell.
PENALTIES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 0.0)
READOUTS = ("mean", "quadrants", "grid")


def _at_least_one(config, *names) -> List[str]:
  return [f"--{name} must be at least 1, got {getattr(config, name)}"
          for name in names if getattr(config, name) < 1]


class _Checked:
  """Cooperative validation: each settings group adds its problems."""

  def problems(self) -> List[str]:
    return []

  def validate(self):
    """Raises ConfigError naming every setting that cannot work."""
    problems = self.problems()
    if problems:
      raise config_lib.ConfigError("; ".join(problems))


@dataclasses.dataclass(frozen=True)
class Encoder(_Checked):
  model_dir: Optional[str] = setting(
      None, "Pretraining model_dir, or an encoder model_dir written by "
      "--save_encoder: its config.json and newest checkpoint are used.")

  def problems(self):
    return super().problems() + (
        [] if self.model_dir else ["--model_dir is required"])


@dataclasses.dataclass(frozen=True)
class RandomInit(_Checked):
  random_init: bool = setting(
      False, "Use a randomly initialised encoder of the same architecture "
      "instead of the checkpoint (the baseline the pretrained features must "
      "beat).")


@dataclasses.dataclass(frozen=True)
class Recorded(_Checked):
  seed: int = setting(
      0, "Random seed (subsets, initialisation, data order).")
  results_file: Optional[str] = setting(
      None, "JSON-lines file the result is appended to (default: "
      "<model_dir>/results.jsonl).")


@dataclasses.dataclass(frozen=True)
class EncoderOrSpec(Encoder, Recorded):
  """An encoder from a model_dir, or, for evaluations that use no trained
  weights, only its description in a pretraining flagfile."""
  pretrain_flagfile: Optional[str] = setting(
      None, "In place of --model_dir, for evaluations that use no trained "
      "weights (--random_init, --mode=supervised, --probe_features=pixels): "
      "a run_pretrain.py flagfile (e.g. flags/cifar10_cpu_session.cfg) that "
      "sets the data, patch grid, augmentation and encoder architecture.")

  def uses_weights(self) -> bool:
    """Whether the evaluation needs the trained weights (modes override)."""
    return not getattr(self, "random_init", False)

  def problems(self):
    if not self.pretrain_flagfile:
      return super().problems()
    found = super(Encoder, self).problems()
    if self.model_dir:
      found.append("give --model_dir or --pretrain_flagfile, not both")
    elif self.uses_weights():
      found.append("--pretrain_flagfile describes an encoder without "
                   "weights, for --random_init, --mode=supervised or "
                   "--probe_features=pixels; this evaluation needs the "
                   "trained encoder's --model_dir")
    elif not self.results_file:
      found.append("set --results_file: without --model_dir there is no "
                   "model_dir/results.jsonl to append to")
    return found


@dataclasses.dataclass(frozen=True)
class Splits(_Checked):
  data_dir: Optional[str] = setting(
      None, "TFDS data directory (default: the pretraining one, else "
      "TFDS_DATA_DIR).")
  train_split: str = setting("train", "Split the classifier is trained on.")
  test_split: str = setting("test", "Split accuracy is reported on.")


@dataclasses.dataclass(frozen=True)
class Labels(Splits):
  dataset: Optional[str] = setting(
      None, "Labelled TFDS dataset or folder:PATH of class subfolders "
      "(default: the pretraining dataset).")
  label_fraction: float = setting(
      1.0, "Train on this class-balanced fraction of the labelled training "
      "images (e.g. 0.01, 0.1); nested and the same for the same seed.")
  validation_fraction: float = setting(
      0.0, "Hold out this fraction of each class of the training split "
      "(disjoint from the labelled subset) and report accuracy on it; "
      "choose settings on it, not on the test split.")

  def problems(self):
    found = super().problems()
    if not 0 < self.label_fraction <= 1:
      found.append("--label_fraction must be in (0, 1]")
    if not 0 <= self.validation_fraction < 1:
      found.append("--validation_fraction must be in [0, 1)")
    return found


@dataclasses.dataclass(frozen=True)
class Training(_Checked):
  batch_size: int = setting(64, "Batch size.")
  learning_rate: float = setting(
      5e-4, "Adam learning rate of the head (A.3: 5e-4), and of the whole "
      "network in supervised mode.")
  train_steps: int = setting(
      1000, "Optimizer steps (with the encoder fixed, in linear, efficient "
      "and detection modes); linear mode with --validation_fraction stops "
      "early on it.")

  def problems(self):
    return super().problems() + _at_least_one(self, "batch_size",
                                              "train_steps")


@dataclasses.dataclass(frozen=True)
class PatchAugmentation(_Checked):
  patch_augment: bool = setting(
      True, "Train on the pretraining augmentation, the image crop and the "
      "per-patch one; with --nopatch_augment, on the image crop alone (the "
      "test always sees a centre crop).")


@dataclasses.dataclass(frozen=True)
class EarlyStopping(_Checked):
  """With --validation_fraction, training (and --fine_tune) runs in rounds
  of eval_every steps and stops early on the validation part."""
  eval_every: int = setting(
      100, "With --validation_fraction: steps between validations for "
      "early stopping (training, and --fine_tune).")
  patience: int = setting(
      3, "With --validation_fraction: validations without improvement "
      "before stopping; the best weights are kept.")

  def problems(self):
    found = super().problems() + _at_least_one(self, "eval_every", "patience")
    if self.validation_fraction > 0 and self.eval_every > self.train_steps:
      found.append(f"--eval_every ({self.eval_every}) is more than "
                   f"--train_steps ({self.train_steps}): no validation would "
                   "happen")
    return found


@dataclasses.dataclass(frozen=True)
class FineTuning(_Checked):
  fine_tune: bool = setting(
      False, "After --train_steps with the encoder fixed, train encoder and "
      "head together.")
  encoder_learning_rate: float = setting(
      5e-5, "--fine_tune: the encoder's own (smaller) Adam learning rate.")
  fine_tune_steps: int = setting(
      1000, "--fine_tune: at most this many steps; efficient mode runs whole "
      "rounds of --eval_every and stops early on the validation part, "
      "detection runs them all.")

  def problems(self):
    return super().problems() + _at_least_one(self, "fine_tune_steps")


@dataclasses.dataclass(frozen=True)
class Dropout(_Checked):
  dropout: float = setting(0.0, "Dropout before the last linear layer.")

  def problems(self):
    return super().problems() + (
        [] if 0 <= self.dropout < 1 else ["--dropout must be in [0, 1)"])


@dataclasses.dataclass(frozen=True)
class SaveEncoder(_Checked):
  save_encoder: Optional[str] = setting(
      None, "Write the encoder (supervised: the trained pixel ResNet) as an "
      "encoder model_dir, config.json and checkpoints/ with the encoder's "
      "weights only, at any tf.io.gfile path; the other modes read it with "
      "--model_dir (a released encoder, a supervised backbone for "
      "detection). Must not hold one already.")

  def problems(self):
    found = super().problems()
    if self.save_encoder and tf.io.gfile.exists(
        os.path.join(self.save_encoder, config_lib.CONFIG_FILE)):
      found.append(f"--save_encoder={self.save_encoder} already holds an "
                   f"encoder ({config_lib.CONFIG_FILE}); choose another "
                   "directory")
    return found


@dataclasses.dataclass(frozen=True)
class LinearConfig(EncoderOrSpec, RandomInit, Labels, Training,
                   PatchAugmentation, EarlyStopping):
  """The A.3 linear probe: batch norm without scale, a 1x1 conv, the
  spatial mean of the logits; the encoder fixed."""
  MODE: ClassVar[str] = "linear"


@dataclasses.dataclass(frozen=True)
class ProbeConfig(EncoderOrSpec, RandomInit, Labels):
  """The cached linear probe: features encoded once, A.3's head fitted to
  convergence for each penalty, the best on the held-out part reported."""
  MODE: ClassVar[str] = "probe"
  probe_features: str = setting(
      "encoder", "The encoder's mean latent (its checkpoint, or a random "
      "one with --random_init), or the raw pixels of the evaluation view "
      "(the baseline every encoder must beat).", choices=("encoder", "pixels"))
  probe_pool: str = setting(
      "mean", "How each image's grid of features is read out: mean, the "
      "mean over all cells (A.3's head, the paper's protocol); quadrants, "
      "the means of the grid's four quarters side by side (4 D features; "
      "on an odd side the middle row and column belong to both halves); "
      "grid, every cell's features (G*G*D). Pixels: mean is the whole "
      "image, quadrants and grid read the encoder's patches of pixels.",
      choices=READOUTS)
  probe_penalties: Tuple[float, ...] = setting(
      PENALTIES, "L2 penalties tried; the one with the best validation "
      "top-1 is reported.")
  probe_steps: int = setting(
      500, "Full-batch Adam steps per fit (the record holds the final "
      "gradient norm).")
  probe_stride: Optional[int] = setting(
      None, "Patch stride of the evaluation view the encoder's latents are "
      "averaged over (default: the pretraining stride). A smaller stride "
      "encodes a denser grid of the same patches: more latents per image, "
      "encoding time growing with the grid's area.")

  def uses_weights(self):
    return self.probe_features == "encoder" and not self.random_init

  def problems(self):
    found = super().problems() + _at_least_one(self, "probe_steps")
    if self.validation_fraction <= 0:
      found.append("--mode=probe chooses its penalty on held-out data: set "
                   "--validation_fraction")
    if self.random_init and self.probe_features == "pixels":
      found.append("--random_init is for --probe_features=encoder")
    if self.probe_stride is not None and self.probe_stride < 1:
      found.append(f"--probe_stride must be at least 1, got "
                   f"{self.probe_stride}")
    if self.probe_stride is not None and self.probe_features == "pixels":
      found.append("--probe_stride is for --probe_features=encoder")
    if not self.probe_penalties or min(self.probe_penalties) < 0:
      found.append("--probe_penalties must be numbers >= 0, got "
                   f"{list(self.probe_penalties)}")
    return found


@dataclasses.dataclass(frozen=True)
class EfficientConfig(EncoderOrSpec, RandomInit, Labels, Training,
                      PatchAugmentation, FineTuning, EarlyStopping, Dropout):
  """Efficient classification (Section 2.2): a ResNet head on the latent
  grid, the encoder fixed or fine-tuned."""
  MODE: ClassVar[str] = "efficient"
  head_blocks: int = setting(
      11, "Bottleneck blocks of the ResNet head (paper: 11).")
  head_width: int = setting(
      4096, "Width of the head's feature maps (paper: 4096).")
  head_bottleneck: int = setting(
      1024, "Bottleneck width of the head's blocks (paper: 1024).")
  head_norm: str = setting(
      "batch", "Normalisation in the head.", choices=encoder_lib.NORMS)

  def problems(self):
    found = super().problems() + _at_least_one(
        self, "head_blocks", "head_width", "head_bottleneck")
    if self.fine_tune and self.validation_fraction <= 0:
      found.append("--fine_tune stops early on held-out data: set "
                   "--validation_fraction")
    elif self.fine_tune and self.eval_every > self.fine_tune_steps:
      found.append(f"--eval_every ({self.eval_every}) is more than "
                   f"--fine_tune_steps ({self.fine_tune_steps}): no "
                   "validation would happen")
    return found


@dataclasses.dataclass(frozen=True)
class SupervisedConfig(EncoderOrSpec, Labels, Training, PatchAugmentation,
                       EarlyStopping, Dropout, SaveEncoder):
  """The A.4 baseline: a ResNet v2 on pixels, trained from scratch on the
  same subsets and augmentation (--model_dir gives data and augmentation)."""
  MODE: ClassVar[str] = "supervised"
  pixel_encoder: str = setting(
      "resnet50", "ResNet v2 depth.",
      choices=tuple(sorted(n for n in encoder_lib.PRESETS if n != "resnet161")))
  pixel_width: int = setting(
      64, "Width of the first bottleneck (64 is the standard ResNet).")
  pixel_blocks: Tuple[int, ...] = setting(
      (), "Blocks per stage, overriding the preset (small CPU sizes), "
      "e.g. 1,1,1.")
  pixel_norm: str = setting(
      "batch", "Normalisation in the ResNet.", choices=encoder_lib.NORMS)
  pixel_stem: Optional[str] = setting(
      None, "Stem (default: the pretraining encoder's).",
      choices=encoder_lib.STEMS)

  def uses_weights(self):
    return False

  def problems(self):
    return super().problems() + _at_least_one(self, "pixel_width")


@dataclasses.dataclass(frozen=True)
class DetectionConfig(EncoderOrSpec, RandomInit, Splits, Training,
                      FineTuning):
  """Transfer to detection: keras-hub's RetinaNet with the encoder, applied
  to whole images, as its backbone; mAP@0.5 on a VOC-style test split."""
  MODE: ClassVar[str] = "detection"
  detection_data: Optional[str] = setting(
      None, "A VOC-style folder (one XML per image, in <split>/ subfolders or "
      "not, or the VOCdevkit layout), or tfds:NAME for a prepared TFDS "
      "detection dataset under --data_dir (e.g. tfds:voc/2007 with "
      "--train_split=train+validation).")
  detection_image_size: int = setting(
      256, "Images are resized to this square size.")
  min_level: int = setting(
      3, "Finest pyramid level (stride 2^level); must be an encoder stage's "
      "level.")
  max_level: int = setting(
      7, "Coarsest pyramid level; levels above the encoder's come from "
      "strided convs.")
  head_convs: int = setting(
      4, "3x3 convolutions in each RetinaNet head before its output layer.")
  min_scale: float = setting(
      0.75, "Scale augmentation, least factor (1 and --max_scale=1: none).")
  max_scale: float = setting(1.25, "Scale augmentation, largest factor.")
  color_drop: float = setting(
      0.5, "Probability of colour dropping per training image (Section 4.3).")

  def problems(self):
    found = super().problems() + _at_least_one(
        self, "detection_image_size", "head_convs")
    if not self.detection_data:
      found.append("--mode=detection needs --detection_data")
    if not 0 < self.min_scale <= self.max_scale:
      found.append("need 0 < --min_scale <= --max_scale")
    if not 0 <= self.color_drop <= 1:
      found.append("--color_drop must be in [0, 1]")
    return found


@dataclasses.dataclass(frozen=True)
class ExportConfig(Encoder, SaveEncoder):
  """A SavedModel of the encoder with the evaluation preprocessing and/or
  the encoder model_dir (config and weights) in which encoders are released."""
  MODE: ClassVar[str] = "export"
  export_dir: Optional[str] = setting(
      None, "Where the SavedModel goes (any tf.io.gfile path, e.g. gs://); "
      "must not hold one already.")

  def problems(self):
    found = super().problems()
    if not (self.export_dir or self.save_encoder):
      found.append("--mode=export needs --export_dir (a SavedModel) or "
                   "--save_encoder (config.json and the encoder's weights)")
    if self.export_dir and tf.io.gfile.exists(
        os.path.join(self.export_dir, "saved_model.pb")):
      found.append(f"--export_dir={self.export_dir} already holds a "
                   "SavedModel; choose another directory or remove it")
    return found


CONFIGS = {cls.MODE: cls for cls in (
    LinearConfig, ProbeConfig, EfficientConfig, SupervisedConfig,
    DetectionConfig, ExportConfig)}


def field_names(mode: str) -> List[str]:
  return [f.name for f in dataclasses.fields(CONFIGS[mode])]


# Every evaluation setting, of any mode.
ALL_FIELDS = frozenset(name for mode in CONFIGS for name in field_names(mode))
