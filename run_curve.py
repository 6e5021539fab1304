r"""The data-efficiency curve (Figure 1) in one command.

  python run_curve.py --model_dir=/tmp/cpc_cifar \
      --eval_flagfile=flags/cifar10_cpu_eval.cfg --fractions=0.01,0.1,1 \
      --seeds=0,1

For every fraction and seed, trains each --methods classifier on the same
class-balanced subset as run_eval.py would (the run_eval.py flags of
--eval_flagfile that apply to its mode; results appended to
<out_dir>/results.jsonl; runs already there are skipped, so an
interrupted curve resumes; an --out_dir whose runs were made with another
eval flagfile, validation fraction or encoder checkpoint is refused), then
writes <out_dir>/curve.md (a table, mean ± std over seeds) and
<out_dir>/curve.png.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# As in run_eval.py: oneDNN's CPU kernels on unless TF_ENABLE_ONEDNN_OPTS=0.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras

from cpc_tf import checkpoints
from cpc_tf import config as config_lib
from cpc_tf import curve
from cpc_tf import probe
from cpc_tf import results as results_lib
from cpc_tf import sources
from cpc_tf import tasks
from cpc_tf.tasks import cached_probe
from cpc_tf.tasks import configs
from cpc_tf.tasks import eval_flags

flags.DEFINE_string("model_dir", None, "Pretraining model_dir of the CPC "
                    "encoder (its config also sets the data and augmentation).")
flags.DEFINE_string("out_dir", None, "Where results.jsonl, curve.md and "
                    "curve.png go (default: <model_dir>/curve).")
flags.DEFINE_list("fractions", ["0.01", "0.1", "1.0"], "Label fractions.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds: each draws its own subsets "
                  "and initialisation.")
flags.DEFINE_list("methods", ["cpc_fixed", "cpc_fine_tuned", "supervised"],
                  f"Any of {list(curve.METHODS)} (the *_probe methods are "
                  "the cached linear probe's rows).")
flags.DEFINE_string("eval_flagfile", None, "run_eval.py flags shared by the "
                    "runs (steps, batch size, head and pixel ResNet sizes, "
                    "...), one per line; each run gets those of its mode.")
flags.DEFINE_float("validation_fraction", 0.1, "Held out of each class for "
                   "validation (early stopping of every method).")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def check_flags():
  unknown = set(FLAGS.methods) - set(curve.METHODS)
  if unknown:
    sys.exit(f"run_curve.py: error: unknown --methods {sorted(unknown)}; "
             f"choose from {list(curve.METHODS)}")
  try:
    fractions = [float(f) for f in FLAGS.fractions]
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError as e:
    sys.exit(f"run_curve.py: error: --fractions and --seeds: {e}")
  if not all(0 < f <= 1 for f in fractions):
    sys.exit("run_curve.py: error: --fractions must be in (0, 1]")
  eval_flags = ""
  if FLAGS.eval_flagfile:
    if not os.path.exists(FLAGS.eval_flagfile):
      sys.exit(f"run_curve.py: error: --eval_flagfile={FLAGS.eval_flagfile} "
               "does not exist")
    with open(FLAGS.eval_flagfile) as f:
      eval_flags = f.read()
  try:
    method_args = {method: configs.mode_args(curve.mode_of(method), eval_flags)
                   for method in FLAGS.methods}
  except ValueError as e:
    sys.exit(f"run_curve.py: error: --eval_flagfile={FLAGS.eval_flagfile}: "
             f"{e}")
  return fractions, seeds, eval_flags, method_args


def run_config(method_args, method, fraction, seed, results):
  """The config of one run: what run_eval.py would make of its flags."""
  return eval_flags.config_from_args([
      *method_args[method], *curve.METHODS[method],
      f"--model_dir={FLAGS.model_dir}", f"--label_fraction={fraction}",
      f"--seed={seed}", f"--validation_fraction={FLAGS.validation_fraction}",
      f"--results_file={results}"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  fractions, seeds, eval_flags, method_args = check_flags()
  out_dir = FLAGS.out_dir or os.path.join(FLAGS.model_dir, "curve")
  try:
    curve.check_settings(out_dir, {
        "eval_flagfile": eval_flags,
        "validation_fraction": FLAGS.validation_fraction,
        "encoder_checkpoint": checkpoints.latest(FLAGS.model_dir)})
  except ValueError as e:
    sys.exit(f"run_curve.py: error: {e}")
  results = os.path.join(out_dir, results_lib.RESULTS_FILE)
  finished = curve.done(results_lib.read(results))
  # Runs of the same features side by side, so that the probe's cache
  # encodes each image once per encoder (random encoders differ by seed).
  runs = [(method, fraction, seed) for method in FLAGS.methods
          for seed in seeds for fraction in fractions]
  try:   # every run's settings checked before the first one starts
    run_configs = {run: run_config(method_args, *run, results) for run in runs}
    for config in run_configs.values():
      config.validate()
  except (config_lib.ConfigError, flags.Error) as e:
    sys.exit(f"run_curve.py: error: {e}")
  cache = probe.FeatureCache()
  for (method, fraction, seed), config in run_configs.items():
    if (method, fraction, seed) in finished:
      print(f"[curve] {method} {fraction:g} seed {seed}: done already")
      continue
    print(f"[curve] {method} with {fraction:g} of the labels, seed {seed}",
          flush=True)
    try:
      record = (cached_probe.run(config, cache) if config.MODE == "probe"
                else tasks.RUNS[config.MODE](config))
    except (config_lib.ConfigError, sources.DataError) as e:
      sys.exit(f"run_curve.py: error: the {method} run ({fraction:g} of the "
               f"labels, seed {seed}): {e}; finished runs are kept in "
               f"{results} and the same command continues from them")
    results_lib.append(out_dir, {**record, "method": method}, results)
    keras.backend.clear_session()   # each run builds its models afresh
  summary = curve.summarise(results_lib.read(results))
  table_path, plot_path = curve.write_report(out_dir, summary)
  print(curve.markdown_table(summary))
  print(f"Table: {table_path}\nPlot: {plot_path}\nRuns: {results}")


if __name__ == "__main__":
  app.run(main)
