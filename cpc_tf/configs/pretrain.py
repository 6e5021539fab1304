"""Pretraining configuration as data: one dataclass, saved as
model_dir/config.json."""

import dataclasses
import json
import os
from typing import List, Optional, Tuple

import tensorflow as tf

from cpc_tf.data.augment import PatchAugment
from cpc_tf.data.patches import PatchGrid
from cpc_tf.models import encoder as encoder_lib
from cpc_tf.models import infonce

CONFIG_FILE = "config.json"
# --precision -> Keras dtype policy: variables stay float32; the loss and the
# softmax are computed in float32 (infonce.contrastive_loss).
# --strategy: the tf.distribute strategies train/distribute.py makes.
STRATEGIES = ("default", "mirrored", "tpu", "multi_worker")
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16",
              "mixed_float16": "mixed_float16"}


def setting(default, help_text: str, choices=None):
  """A config field with the help text (and choices) of its flag."""
  return dataclasses.field(default=default, metadata={
      "help": help_text, "choices": choices})


class ConfigError(ValueError):
  """Settings that cannot work together, named in the message."""


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """Everything a pretraining run is. run_pretrain.py makes one flag of each
  field, with the field's help text (command_line.py)."""
  # Data.
  dataset: str = setting(
      "cifar10", "A TFDS dataset name (e.g. cifar10, imagenet2012) or "
      "folder:PATH, a folder of JPEG/PNG images, flat or in class subfolders.")
  split: str = setting(
      "train", "Split to pretrain on: a TFDS split (slicing such as "
      "train[:10%] works) or, for a folder, its subfolder of that name if "
      "there is one.")
  data_dir: Optional[str] = setting(
      None, "TFDS data directory (default: TFDS_DATA_DIR or "
      "~/tensorflow_datasets). May be gs://.")
  image_size: int = setting(
      32, "Side of the square input image the patch grid is cut from (paper: "
      "240).")
  patch_size: int = setting(
      8, "Side of each square patch (paper: 80).")
  patch_stride: int = setting(
      4, "Stride between patches (paper: 32); patches overlap when smaller "
      "than patch_size.")
  min_crop_area: float = setting(
      0.35, "Smallest fraction of the image area kept by the random crop "
      "before resizing.")
  # Per-patch augmentation (Section 4.1).
  patch_jitter: int = setting(
      0, "Spatial jitter: each patch is a random (patch_size - "
      "patch_jitter)^2 crop of itself, resized back. 0 turns it off.")
  flip: bool = setting(
      False, "Random horizontal flip of each patch.")
  color_drop: float = setting(
      0.0, "Probability of dropping two of the three colour channels of a "
      "patch (RC in the paper, which always drops: 1.0).")
  pa_geometric: bool = setting(
      False, "PA: random shear, rotation and translation of each patch.")
  pa_elastic: bool = setting(
      False, "PA: random elastic deformation of each patch.")
  pa_color: bool = setting(
      False, "PA: random brightness, contrast, saturation, hue and greyscale "
      "of each patch.")
  # Encoder f.
  encoder: str = setting(
      "resnet50", "Encoder architecture: pre-activation bottleneck ResNet.",
      choices=sorted(encoder_lib.PRESETS))
  encoder_width: int = setting(
      64, "Width of the first bottleneck (64 in the paper); all stages scale "
      "with it.")
  encoder_blocks: Tuple[int, ...] = setting(
      (), "Blocks per stage, e.g. 1,1,1 (default: the preset's; fewer entries "
      "keep only the first stages).")
  norm: str = setting(
      "layer", "Normalisation in the encoder: layer (CPC v2), batch or none "
      "(ablation).", choices=encoder_lib.NORMS)
  stem: str = setting(
      "small", "imagenet: 7x7/2 conv and max-pool (for 64-80px patches); "
      "small: one 3x3/1 conv (for 8-16px patches).", choices=encoder_lib.STEMS)
  # Context network g and the A.2 objective.
  directions: int = setting(
      1, "Prediction directions: 1 top-down (CPC v1), 2 adds bottom-up, 4 "
      "adds left-to-right and right-to-left.",
      choices=sorted(infonce.DIRECTIONS))
  share_context: bool = setting(
      False, "One context network for all directions instead of one per "
      "direction (predictions are always per direction).")
  context_dim: int = setting(
      256, "Hidden width of the masked context network (A.2: 256).")
  context_blocks: int = setting(
      5, "Masked residual blocks in each context network (A.2: 5).")
  target_dim: int = setting(
      64, "Dimension of targets and predictions (A.2: 64).")
  emb_scale: float = setting(
      0.1, "Scale of the predictions before the dot product (A.2: 0.1).")
  steps_to_ignore: int = setting(
      2, "A.2: offsets i in [steps_to_ignore, steps_to_predict) predict the "
      "row i+1 below.")
  steps_to_predict: int = setting(
      3, "See steps_to_ignore.")
  negatives: str = setting(
      "global", "global: score each prediction against the targets of the "
      "whole global batch; local: only its replica's.",
      choices=infonce.NEGATIVES)
  # Optimisation.
  batch_size: int = setting(
      32, "Global batch size (images), split evenly over replicas.")
  learning_rate: float = setting(
      2e-4, "Peak Adam learning rate.")
  warmup_steps: int = setting(
      0, "Linear warm-up steps before the cosine decay.")
  train_steps: int = setting(
      1000, "Total optimizer steps.")
  restart_schedule: bool = setting(
      False, "Allow resuming a model_dir with another --train_steps, "
      "--learning_rate or --warmup_steps (refused otherwise): from the step "
      "reached, the rate follows the schedule of the new flags, e.g. a longer "
      "cosine restarts above where the old one had decayed to (a warm "
      "restart).")
  # Running.
  model_dir: str = setting(
      "/tmp/cpc_tf", "Checkpoints, TensorBoard events and config.json go here "
      "(may be gs://).")
  strategy: str = setting(
      "default", "tf.distribute strategy.", choices=STRATEGIES)
  tpu: Optional[str] = setting(
      None, "TPU name or grpc:// address for --strategy=tpu ('' for the local "
      "TPU).")
  checkpoint_every: int = setting(
      500, "Save a checkpoint every this many steps (and at the end).")
  log_every: int = setting(
      100, "Log metrics to TensorBoard and reset them every this many steps.")
  seed: int = setting(
      0, "Random seed.")
  deterministic: bool = setting(
      False, "Deterministic ops and input order (slower), for reproducible "
      "runs.")
  jit_compile: bool = setting(
      False, "Compile the train step with XLA (TPUs always use it; on a "
      "2-core CPU it was 2x slower for flags/cifar10_cpu.cfg, see "
      "bench/pretrain_step.json).")
  precision: str = setting(
      "float32", "float32; bfloat16: mixed bfloat16 (TPUs, recent CPUs); "
      "mixed_float16: with dynamic loss scaling (GPUs). Variables, the loss "
      "and the softmax stay float32.", choices=sorted(PRECISIONS))
  recompute: bool = setting(
      False, "Recompute encoder activations in the backward pass, one chunk "
      "of patches at a time, so larger batches fit in memory (costs one more "
      "forward pass).")
  recompute_chunks: int = setting(
      8, "--recompute: the patches of a replica's batch are encoded in this "
      "many chunks; peak encoder memory is about one chunk's.")
  steps_per_execution: int = setting(
      1, "Train steps run per call from Python (TPUs: 100s, to keep the host "
      "out of the loop); log_every must be a multiple, and callbacks see "
      "every Nth step.")
  small_map_matmul: bool = setting(
      True, "Compute convolutions on maps of at most 16 pixels as one matrix "
      "product (cpc_tf/models/small_conv.py) instead of TF's Conv2D. Which "
      "is faster depends on the CPU and TF's oneDNN kernels: "
      "bench/pretrain_step.py --variants=float32,float32_conv2d tells. "
      "Checkpoints are the same either way.")

  # Settings that define the trained variables: a checkpoint only fits a run
  # that agrees on all of them.
  MODEL_FIELDS = ("image_size", "patch_size", "patch_stride", "encoder",
                  "encoder_width", "encoder_blocks", "norm", "stem",
                  "directions", "share_context", "context_dim",
                  "context_blocks", "target_dim", "steps_to_ignore",
                  "steps_to_predict", "loss_scaling")

  # Settings that define the learning rate at each step: a resumed run
  # follows the schedule it started with unless restart_schedule is set.
  SCHEDULE_FIELDS = ("learning_rate", "warmup_steps", "train_steps")

  @property
  def loss_scaling(self) -> bool:
    """Whether the optimizer carries a loss scale (mixed_float16 only):
    variables are float32 in every precision, so float32 and bfloat16 runs
    resume each other's checkpoints."""
    return self.precision == "mixed_float16"

  @property
  def grid(self) -> PatchGrid:
    return PatchGrid(self.image_size, self.patch_size, self.patch_stride)

  @property
  def augment(self) -> PatchAugment:
    return PatchAugment(
        jitter=self.patch_jitter, flip=self.flip, color_drop=self.color_drop,
        geometric=self.pa_geometric, elastic=self.pa_elastic,
        color=self.pa_color)

  @property
  def encoder_config(self) -> encoder_lib.EncoderConfig:
    return encoder_lib.encoder_config(
        self.encoder, self.encoder_width, self.encoder_blocks, self.norm,
        self.stem, self.small_map_matmul)

  def problems(self) -> List[str]:
    """Every setting that cannot work, each named, in one list."""
    found = []
    for name, choices in self.choices().items():
      if getattr(self, name) not in choices:
        found.append(f"--{name} must be one of {list(choices)}, got "
                     f"{getattr(self, name)!r}")
    if found:          # the checks below build the grid and encoder
      return found
    try:
      grid = self.grid.grid_size
      self.encoder_config  # pylint: disable=pointless-statement
    except ValueError as e:
      found.append(str(e))
      grid = None
    if grid is not None and grid < self.steps_to_predict + 1:
      found.append(
          f"a {grid}x{grid} patch grid is too small to predict "
          f"{self.steps_to_predict} rows ahead: need at least "
          f"{self.steps_to_predict + 1} rows (lower steps_to_predict or use "
          "more patches)")
    if not 0 <= self.steps_to_ignore < self.steps_to_predict:
      found.append("need 0 <= steps_to_ignore < steps_to_predict")
    if not 0 < self.min_crop_area <= 1:
      found.append("min_crop_area must be in (0, 1]")
    if not 0 <= self.patch_jitter < self.patch_size - 1:
      found.append(f"patch_jitter must be in [0, patch_size - 1), got "
                   f"{self.patch_jitter} for patch_size {self.patch_size}")
    if not 0 <= self.color_drop <= 1:
      found.append(f"color_drop is a probability, got {self.color_drop}")
    found += [f"{name} must be positive, got {getattr(self, name)}"
              for name in ("batch_size", "train_steps", "checkpoint_every",
                           "log_every", "encoder_width", "context_dim",
                           "context_blocks", "target_dim", "recompute_chunks",
                           "steps_per_execution")
              if getattr(self, name) < 1]
    if self.recompute and self.norm == "batch":
      found.append("recompute encodes patches in chunks, which would give "
                   "batch norm per-chunk statistics: use norm layer or none")
    if self.steps_per_execution >= 1 and (
        self.log_every % self.steps_per_execution):
      found.append(f"log_every ({self.log_every}) must be a multiple of "
                   f"steps_per_execution ({self.steps_per_execution})")
    if self.warmup_steps >= self.train_steps:
      found.append(f"warmup_steps ({self.warmup_steps}) must be smaller "
                   f"than train_steps ({self.train_steps})")
    return found

  def validate(self):
    """Raises ConfigError naming every setting that cannot work."""
    found = self.problems()
    if found:
      raise ConfigError("; ".join(found))

  @classmethod
  def choices(cls) -> dict:
    """{field: its allowed values} of the fields that take one of a list."""
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(cls)
            if f.metadata.get("choices") is not None}

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "PretrainConfig":
    values = json.loads(text)
    values["encoder_blocks"] = tuple(values.get("encoder_blocks", ()))
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def load_config(model_dir: str) -> Optional[PretrainConfig]:
  path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return PretrainConfig.from_json(f.read())
