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
--model_dir. Each mode accepts only its own flags (cpc_tf/configs/modes.py).

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

import sys

import cpc_tf  # pylint: disable=unused-import  # TF's environment, first

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cpc_tf.configs import command_line
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources
from cpc_tf.evaluation import records
from cpc_tf.evaluation import registry

command_line.define_eval_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.show_warnings_only()
  try:
    config = command_line.eval_config_from_flags()
    task = registry.get(config.MODE)
    record = task.run(config)
  except (config_lib.ConfigError, sources.DataError) as e:
    sys.exit(f"run_eval.py: error: {e}")
  print(task.describe(record))
  if config.MODE == "export":
    return
  path = records.append(config.model_dir, record, config.results_file)
  print(f"Result appended to {path}")


if __name__ == "__main__":
  app.run(main)
