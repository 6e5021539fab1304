"""Pretraining configuration as data: one dataclass, saved as model_dir/config.json."""

import dataclasses
import json
import os
from typing import Optional, Tuple

import tensorflow as tf

from cpc_tf import checkpoints
from cpc_tf import encoder as encoder_lib
from cpc_tf.augment import PatchAugment
from cpc_tf import infonce
from cpc_tf.data import PatchGrid

CONFIG_FILE = "config.json"
# --precision -> Keras dtype policy: variables stay float32; the loss and the
# softmax are computed in float32 (infonce.contrastive_loss).
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16",
              "mixed_float16": "mixed_float16"}


class ConfigError(ValueError):
  """Settings that cannot work together, named in the message."""


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """Everything a pretraining run is; the flags of run_pretrain.py fill it."""
  # Data.
  dataset: str = "cifar10"
  split: str = "train"
  data_dir: Optional[str] = None
  image_size: int = 32
  patch_size: int = 8
  patch_stride: int = 4
  min_crop_area: float = 0.35
  # Per-patch augmentation (Section 4.1).
  patch_jitter: int = 0
  flip: bool = False
  color_drop: float = 0.0
  pa_geometric: bool = False
  pa_elastic: bool = False
  pa_color: bool = False
  # Encoder f.
  encoder: str = "resnet50"
  encoder_width: int = 64
  encoder_blocks: Tuple[int, ...] = ()
  norm: str = "layer"
  stem: str = "small"
  # Context network g and the A.2 objective.
  directions: int = 1
  share_context: bool = False
  context_dim: int = 256
  context_blocks: int = 5
  target_dim: int = 64
  emb_scale: float = 0.1
  steps_to_ignore: int = 2
  steps_to_predict: int = 3
  negatives: str = "global"
  # Optimisation.
  batch_size: int = 32
  learning_rate: float = 2e-4
  warmup_steps: int = 0
  train_steps: int = 1000
  restart_schedule: bool = False
  # Running.
  model_dir: str = "/tmp/cpc_tf"
  strategy: str = "default"
  tpu: Optional[str] = None
  checkpoint_every: int = 500
  log_every: int = 100
  seed: int = 0
  deterministic: bool = False
  jit_compile: bool = False
  precision: str = "float32"
  recompute: bool = False
  recompute_chunks: int = 8
  steps_per_execution: int = 1
  small_map_matmul: bool = True

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
    return encoder_lib.encoder_config(self.encoder, self.encoder_width,
                                      self.encoder_blocks, self.norm, self.stem)

  def objective(self) -> infonce.CPCObjective:
    return infonce.CPCObjective(
        directions=self.directions, target_dim=self.target_dim,
        emb_scale=self.emb_scale, steps_to_ignore=self.steps_to_ignore,
        steps_to_predict=self.steps_to_predict, context_dim=self.context_dim,
        context_blocks=self.context_blocks, share_context=self.share_context,
        negatives=self.negatives)

  def validate(self):
    """Raises ConfigError naming the setting for anything that cannot work."""
    try:
      grid = self.grid.grid_size
      self.encoder_config  # pylint: disable=pointless-statement
    except ValueError as e:
      raise ConfigError(str(e)) from None
    if grid < self.steps_to_predict + 1:
      raise ConfigError(
          f"a {grid}x{grid} patch grid is too small to predict "
          f"{self.steps_to_predict} rows ahead: need at least "
          f"{self.steps_to_predict + 1} rows (lower steps_to_predict or use "
          "more patches)")
    if not 0 <= self.steps_to_ignore < self.steps_to_predict:
      raise ConfigError("need 0 <= steps_to_ignore < steps_to_predict")
    if self.directions not in infonce.DIRECTIONS:
      raise ConfigError(f"directions must be one of {sorted(infonce.DIRECTIONS)}")
    if self.negatives not in ("global", "local"):
      raise ConfigError("negatives must be 'global' or 'local'")
    if not 0 < self.min_crop_area <= 1:
      raise ConfigError("min_crop_area must be in (0, 1]")
    if not 0 <= self.patch_jitter < self.patch_size - 1:
      raise ConfigError(f"patch_jitter must be in [0, patch_size - 1), got "
                        f"{self.patch_jitter} for patch_size {self.patch_size}")
    if not 0 <= self.color_drop <= 1:
      raise ConfigError(f"color_drop is a probability, got {self.color_drop}")
    for name in ("batch_size", "train_steps", "checkpoint_every", "log_every",
                 "encoder_width", "context_dim", "context_blocks", "target_dim"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
    if self.precision not in PRECISIONS:
      raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got "
                        f"{self.precision!r}")
    if self.recompute and self.norm == "batch":
      raise ConfigError("recompute encodes patches in chunks, which would give "
                        "batch norm per-chunk statistics: use norm layer or none")
    if self.recompute_chunks < 1:
      raise ConfigError("recompute_chunks must be positive")
    if self.steps_per_execution < 1 or self.log_every % self.steps_per_execution:
      raise ConfigError(f"log_every ({self.log_every}) must be a multiple of "
                        f"steps_per_execution ({self.steps_per_execution})")
    if self.warmup_steps >= self.train_steps:
      raise ConfigError(f"warmup_steps ({self.warmup_steps}) must be smaller "
                        f"than train_steps ({self.train_steps})")

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


def save_config(config: PretrainConfig, write: bool = True):
  """Writes model_dir/config.json (if `write`), refusing one that contradicts
  the saved one: another model, or, once training has started, another
  learning-rate schedule without restart_schedule."""
  saved = load_config(config.model_dir)
  if saved is not None:
    check_compatible(saved, config)
    if (checkpoints.latest(config.model_dir) is not None
        and not config.restart_schedule):
      check_schedule(saved, config)
  if not write:
    return
  tf.io.gfile.makedirs(config.model_dir)
  with tf.io.gfile.GFile(os.path.join(config.model_dir, CONFIG_FILE), "w") as f:
    f.write(config.to_json())


def refuse_differences(saved: PretrainConfig, config: PretrainConfig,
                       fields: Tuple[str, ...], saved_as: str, problem: str,
                       remedy: str):
  """ConfigError "model_dir M <problem>; name: <saved_as> X, flags say Y;
  ... <remedy>" if `config` differs from `saved` in any of `fields`."""
  changed = [f"{name}: {saved_as} {getattr(saved, name)!r}, flags say "
             f"{getattr(config, name)!r}"
             for name in fields if getattr(saved, name) != getattr(config, name)]
  if changed:
    raise ConfigError(f"model_dir {config.model_dir} {problem}; "
                      + "; ".join(changed) + f". {remedy}")


def check_schedule(saved: PretrainConfig, config: PretrainConfig):
  """ConfigError naming each schedule setting where a resumed run differs."""
  refuse_differences(
      saved, config, PretrainConfig.SCHEDULE_FIELDS, "the run has",
      "is training on another learning-rate schedule",
      "Resume with the run's settings, or pass --restart_schedule to "
      "continue from the step reached on the schedule of the new settings "
      "(warm-up and cosine recomputed for them: the rate jumps to their "
      "value at that step).")


def check_compatible(saved: PretrainConfig, config: PretrainConfig):
  """ConfigError naming each model setting where `config` differs from `saved`."""
  refuse_differences(saved, config, PretrainConfig.MODEL_FIELDS,
                     "checkpoint has", "holds a different model",
                     "Use another --model_dir or the saved settings.")
