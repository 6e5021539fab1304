r"""CPC v2 pretraining (Hénaff et al., Section 2.1 and Appendix A.2).

  python run_pretrain.py --flagfile=flags/smoke.cfg --model_dir=/tmp/cpc_smoke

Running the same command again resumes from the newest checkpoint in
--model_dir. TensorBoard: tensorboard --logdir=<model_dir>.
"""

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TF enables its oneDNN CPU kernels by default only where AVX-512 VNNI/BF16
# or AMX exist; on an AVX2 Zen 3 they made the CIFAR-10 CPU step 1.44x faster
# (bench/pretrain_step.py --onednn). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cpc_tf import checkpoints
from cpc_tf import config as config_lib
from cpc_tf import distribute
from cpc_tf import encoder
from cpc_tf import infonce
from cpc_tf import pretrain
from cpc_tf import sources

D = config_lib.PretrainConfig()

# Data.
flags.DEFINE_string("dataset", D.dataset, "A TFDS dataset name (e.g. cifar10, "
                    "imagenet2012) or folder:PATH, a folder of JPEG/PNG "
                    "images, flat or in class subfolders.")
flags.DEFINE_string("split", D.split, "Split to pretrain on: a TFDS split "
                    "(slicing such as train[:10%] works) or, for a folder, "
                    "its subfolder of that name if there is one.")
flags.DEFINE_string("data_dir", D.data_dir, "TFDS data directory (default: "
                    "TFDS_DATA_DIR or ~/tensorflow_datasets). May be gs://.")
flags.DEFINE_integer("image_size", D.image_size, "Side of the square input "
                     "image the patch grid is cut from (paper: 240).")
flags.DEFINE_integer("patch_size", D.patch_size, "Side of each square patch "
                     "(paper: 80).")
flags.DEFINE_integer("patch_stride", D.patch_stride, "Stride between patches "
                     "(paper: 32); patches overlap when smaller than "
                     "patch_size.")
flags.DEFINE_float("min_crop_area", D.min_crop_area, "Smallest fraction of the "
                   "image area kept by the random crop before resizing.")
# Per-patch augmentation, each on its own so the paper's ablation can be run.
flags.DEFINE_integer("patch_jitter", D.patch_jitter, "Spatial jitter: each "
                     "patch is a random (patch_size - patch_jitter)^2 crop "
                     "of itself, resized back. 0 turns it off.")
flags.DEFINE_bool("flip", D.flip, "Random horizontal flip of each patch.")
flags.DEFINE_float("color_drop", D.color_drop, "Probability of dropping two "
                   "of the three colour channels of a patch (RC in the paper, which "
                   "always drops: 1.0).")
flags.DEFINE_bool("pa_geometric", D.pa_geometric, "PA: random shear, "
                  "rotation and translation of each patch.")
flags.DEFINE_bool("pa_elastic", D.pa_elastic, "PA: random elastic "
                  "deformation of each patch.")
flags.DEFINE_bool("pa_color", D.pa_color, "PA: random brightness, "
                  "contrast, saturation, hue and greyscale of each patch.")
# Encoder.
flags.DEFINE_enum("encoder", D.encoder, sorted(encoder.PRESETS),
                  "Encoder architecture: pre-activation bottleneck ResNet.")
flags.DEFINE_integer("encoder_width", D.encoder_width, "Width of the first "
                     "bottleneck (64 in the paper); all stages scale with it.")
flags.DEFINE_list("encoder_blocks", list(map(str, D.encoder_blocks)),
                  "Blocks per stage, e.g. 1,1,1 (default: the preset's; "
                  "fewer entries keep only the first stages).")
flags.DEFINE_enum("norm", D.norm, encoder.NORMS, "Normalisation in the "
                  "encoder: layer (CPC v2), batch or none (ablation).")
flags.DEFINE_enum("stem", D.stem, encoder.STEMS, "imagenet: 7x7/2 conv and "
                  "max-pool (for 64-80px patches); small: one 3x3/1 conv (for "
                  "8-16px patches).")
# Context network and objective.
flags.DEFINE_enum("directions", str(D.directions),
                  [str(d) for d in infonce.DIRECTIONS],
                  "Prediction directions: 1 top-down (CPC v1), 2 adds "
                  "bottom-up, 4 adds left-to-right and right-to-left.")
flags.DEFINE_bool("share_context", D.share_context, "One context network for "
                  "all directions instead of one per direction (predictions "
                  "are always per direction).")
flags.DEFINE_integer("context_dim", D.context_dim, "Hidden width of the "
                     "masked context network (A.2: 256).")
flags.DEFINE_integer("context_blocks", D.context_blocks, "Masked residual "
                     "blocks in each context network (A.2: 5).")
flags.DEFINE_integer("target_dim", D.target_dim, "Dimension of targets and "
                     "predictions (A.2: 64).")
flags.DEFINE_float("emb_scale", D.emb_scale, "Scale of the predictions "
                   "before the dot product (A.2: 0.1).")
flags.DEFINE_integer("steps_to_ignore", D.steps_to_ignore, "A.2: offsets "
                     "i in [steps_to_ignore, steps_to_predict) predict the "
                     "row i+1 below.")
flags.DEFINE_integer("steps_to_predict", D.steps_to_predict, "See "
                     "steps_to_ignore.")
flags.DEFINE_enum("negatives", D.negatives, ["global", "local"], "global: "
                  "score each prediction against the targets of the whole "
                  "global batch; local: only its replica's.")
# Optimisation.
flags.DEFINE_integer("batch_size", D.batch_size, "Global batch size (images), "
                     "split evenly over replicas.")
flags.DEFINE_float("learning_rate", D.learning_rate, "Peak Adam learning rate.")
flags.DEFINE_integer("warmup_steps", D.warmup_steps, "Linear warm-up steps "
                     "before the cosine decay.")
flags.DEFINE_integer("train_steps", D.train_steps, "Total optimizer steps.")
flags.DEFINE_bool("restart_schedule", D.restart_schedule, "Allow resuming "
                  "a model_dir with another --train_steps, --learning_rate "
                  "or --warmup_steps (refused otherwise): from the step "
                  "reached, the rate follows the schedule of the new flags, "
                  "e.g. a longer cosine restarts above where the old one "
                  "had decayed to (a warm restart).")
flags.DEFINE_float("train_epochs", None, "If set, overrides train_steps: "
                   "epochs over the split at batch_size.")
# Running.
flags.DEFINE_string("model_dir", D.model_dir, "Checkpoints, TensorBoard "
                    "events and config.json go here (may be gs://).")
flags.DEFINE_enum("strategy", D.strategy, distribute.STRATEGIES,
                  "tf.distribute strategy.")
flags.DEFINE_string("tpu", D.tpu, "TPU name or grpc:// address for "
                    "--strategy=tpu ('' for the local TPU).")
flags.DEFINE_integer("steps_per_execution", D.steps_per_execution, "Train "
                     "steps run per call from Python (TPUs: 100s, to keep "
                     "the host out of the loop); log_every must be a "
                     "multiple, and callbacks see every Nth step.")
flags.DEFINE_integer("checkpoint_every", D.checkpoint_every, "Save a "
                     "checkpoint every this many steps (and at the end).")
flags.DEFINE_integer("log_every", D.log_every, "Log metrics to TensorBoard "
                     "and reset them every this many steps.")
flags.DEFINE_integer("seed", D.seed, "Random seed.")
flags.DEFINE_bool("deterministic", D.deterministic, "Deterministic ops and "
                  "input order (slower), for reproducible runs.")
flags.DEFINE_bool("jit_compile", D.jit_compile, "Compile the train step with "
                  "XLA (TPUs always use it; on a 2-core CPU it was 2x slower "
                  "for flags/cifar10_cpu.cfg, see bench/pretrain_step.json).")
flags.DEFINE_enum("precision", D.precision, sorted(config_lib.PRECISIONS),
                  "float32; bfloat16: mixed bfloat16 (TPUs, recent CPUs); "
                  "mixed_float16: with dynamic loss scaling (GPUs). Variables, "
                  "the loss and the softmax stay float32.")
flags.DEFINE_bool("recompute", D.recompute, "Recompute encoder activations "
                  "in the backward pass, one chunk of patches at a time, so "
                  "larger batches fit in memory (costs one more forward pass).")
flags.DEFINE_bool("small_map_matmul", D.small_map_matmul, "Compute "
                  "convolutions on maps of at most 16 pixels as one matrix "
                  "product (cpc_tf/small_conv.py) instead of TF's Conv2D. "
                  "Which is faster depends on the CPU and TF's oneDNN "
                  "kernels: bench/pretrain_step.py --variants=float32,"
                  "float32_conv2d tells. Checkpoints are the same either way.")
flags.DEFINE_integer("recompute_chunks", D.recompute_chunks, "--recompute: "
                     "the patches of a replica's batch are encoded in this "
                     "many chunks; peak encoder memory is about one chunk's.")

FLAGS = flags.FLAGS


def config_from_flags() -> config_lib.PretrainConfig:
  """The run's configuration; train_epochs is turned into train_steps."""
  train_steps = FLAGS.train_steps
  if FLAGS.train_epochs is not None:
    examples = sources.get_source(FLAGS.dataset, FLAGS.split,
                                  FLAGS.data_dir).num_examples
    train_steps = math.ceil(FLAGS.train_epochs * examples / FLAGS.batch_size)
  try:
    blocks = tuple(int(b) for b in FLAGS.encoder_blocks)
  except ValueError:
    raise config_lib.ConfigError(
        f"--encoder_blocks must be integers, got {FLAGS.encoder_blocks}") from None
  return config_lib.PretrainConfig(
      dataset=FLAGS.dataset, split=FLAGS.split, data_dir=FLAGS.data_dir,
      image_size=FLAGS.image_size, patch_size=FLAGS.patch_size,
      patch_stride=FLAGS.patch_stride, min_crop_area=FLAGS.min_crop_area,
      patch_jitter=FLAGS.patch_jitter, flip=FLAGS.flip,
      color_drop=FLAGS.color_drop, pa_geometric=FLAGS.pa_geometric,
      pa_elastic=FLAGS.pa_elastic, pa_color=FLAGS.pa_color,
      encoder=FLAGS.encoder, encoder_width=FLAGS.encoder_width,
      encoder_blocks=blocks, norm=FLAGS.norm, stem=FLAGS.stem,
      directions=int(FLAGS.directions), share_context=FLAGS.share_context,
      context_dim=FLAGS.context_dim, context_blocks=FLAGS.context_blocks,
      target_dim=FLAGS.target_dim,
      emb_scale=FLAGS.emb_scale, steps_to_ignore=FLAGS.steps_to_ignore,
      steps_to_predict=FLAGS.steps_to_predict, negatives=FLAGS.negatives,
      batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
      warmup_steps=FLAGS.warmup_steps, train_steps=train_steps,
      restart_schedule=FLAGS.restart_schedule,
      model_dir=FLAGS.model_dir, strategy=FLAGS.strategy, tpu=FLAGS.tpu,
      checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every,
      seed=FLAGS.seed, deterministic=FLAGS.deterministic,
      jit_compile=FLAGS.jit_compile, precision=FLAGS.precision,
      recompute=FLAGS.recompute, recompute_chunks=FLAGS.recompute_chunks,
      steps_per_execution=FLAGS.steps_per_execution,
      small_map_matmul=FLAGS.small_map_matmul)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    config = config_from_flags()
    config.validate()
    pretrain.pretrain(config)
  except (config_lib.ConfigError, sources.DataError,
          checkpoints.NonFiniteLossError) as e:
    sys.exit(f"run_pretrain.py: error: {e}")


if __name__ == "__main__":
  app.run(main)
