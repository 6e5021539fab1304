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
--results_file (default <model_dir>/results.jsonl). The baselines without
trained weights (--random_init, supervised, --probe_features=pixels) can
take --pretrain_flagfile=FLAGFILE, a run_pretrain.py flagfile, in place of
--model_dir. Each mode accepts only its own flags (cpc_tf/tasks/configs.py).

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

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TF enables its oneDNN CPU kernels by default only where AVX-512 VNNI/BF16
# or AMX exist; on an AVX2 Zen 3 they made the CIFAR-10 CPU step 1.44x faster
# (bench/pretrain_step.py --onednn). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cpc_tf import config as config_lib
from cpc_tf import results as results_lib
from cpc_tf import sources
from cpc_tf import tasks
from cpc_tf.tasks import eval_flags

eval_flags.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    config = eval_flags.config_from_flags()
    record = tasks.RUNS[FLAGS.mode](config)
  except (config_lib.ConfigError, sources.DataError) as e:
    sys.exit(f"run_eval.py: error: {e}")
  if FLAGS.mode == "export":
    print(f"Exported the encoder to {' and '.join(record['exported'])}")
    return
  print(describe(record))
  path = results_lib.append(config.model_dir, record, config.results_file)
  print(f"Result appended to {path}")


def describe(record: dict) -> str:
  """One line: what was evaluated and its headline metric."""
  mode = record["mode"]
  kind = {"linear": "A.3 linear probe", "probe": "cached linear probe",
          "efficient": "efficient classifier",
          "supervised": "supervised pixel baseline",
          "detection": "RetinaNet detector"}[mode]
  if record.get("probe_features") == "pixels":
    kind += " on raw pixels"
  elif record.get("random_init"):
    kind += " (random encoder)"
  if record.get("fine_tune"):
    kind += " (fine-tuned)"
  if mode == "detection":
    return (f"{kind} on {record['dataset']} {record['test_split']}: mAP@0.5 "
            f"{record['test_map_all_points']:.4f} (all points), "
            f"{record['test_map_11_point']:.4f} (11-point)")
  return (f"{kind} on {record['dataset']} {record['test_split']} with "
          f"{record['label_fraction']:g} of the labels: top-1 "
          f"{record['test_top1']:.4f}, top-5 {record['test_top5']:.4f}")


if __name__ == "__main__":
  app.run(main)
