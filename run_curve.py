r"""The data-efficiency curve (Figure 1) in one command.

  python run_curve.py --model_dir=/tmp/cpc_cifar \
      --eval_flagfile=flags/cifar10_cpu_eval.cfg --fractions=0.01,0.1,1 \
      --seeds=0,1

For every fraction and seed, trains each --methods classifier on the same
class-balanced subset as run_eval.py would (the run_eval.py flags of
--eval_flagfile that apply to its mode; results appended to
<out_dir>/results.jsonl), then writes <out_dir>/curve.md (a table, mean ±
sample sd over seeds) and <out_dir>/curve.png. A run whose resolved
settings (nested flagfiles and the data directory included) are already
recorded is skipped, so an interrupted curve resumes; an --out_dir whose
runs used another checkpoint of the encoder is refused.
"""

import os
import sys

import cpc_tf  # pylint: disable=unused-import  # TF's environment, first

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras

from cpc_tf.configs import command_line
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources
from cpc_tf.evaluation import curve
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import records
from cpc_tf.evaluation import registry
from cpc_tf.serving import encoder_dir
from cpc_tf.train import checkpoints

flags.DEFINE_string("model_dir", None, "Pretraining model_dir of the CPC "
                    "encoder (its config also sets the data and augmentation).")
flags.DEFINE_string("out_dir", None, "Where results.jsonl, curve.md and "
                    "curve.png go (default: <model_dir>/curve).")
flags.DEFINE_list("fractions", ["0.01", "0.1", "1.0"], "Label fractions.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds: each draws its own subsets "
                  "and initialisation.")
flags.DEFINE_list("methods", ["cpc_fixed", "cpc_fine_tuned", "supervised"],
                  f"Any of {list(curve.methods())} (the *_probe methods are "
                  "the cached linear probe's rows).")
flags.DEFINE_string("eval_flagfile", None, "run_eval.py flags shared by the "
                    "runs (steps, batch size, head and pixel ResNet sizes, "
                    "...), one per line; each run gets those of its mode. "
                    "Not those run_curve.py sets for each run.")
flags.DEFINE_float("validation_fraction", 0.1, "Held out of each class for "
                   "validation (early stopping of every method).")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS

# What run_curve.py sets for every run (besides each method's own flags).
CURVE_SETS = ("mode", "model_dir", "label_fraction", "seed",
              "validation_fraction", "results_file", "pretrain_flagfile")


def check_flags():
  """(fractions, seeds, {method: its eval flagfile lines}); exits naming
  the problem."""
  unknown = set(FLAGS.methods) - set(curve.methods())
  if unknown:
    sys.exit(f"run_curve.py: error: unknown --methods {sorted(unknown)}; "
             f"choose from {list(curve.methods())}")
  try:
    fractions = [float(f) for f in FLAGS.fractions]
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError as e:
    sys.exit(f"run_curve.py: error: --fractions and --seeds: {e}")
  if not all(0 < f <= 1 for f in fractions):
    sys.exit("run_curve.py: error: --fractions must be in (0, 1]")
  text = ""
  if FLAGS.eval_flagfile:
    if not os.path.exists(FLAGS.eval_flagfile):
      sys.exit(f"run_curve.py: error: --eval_flagfile={FLAGS.eval_flagfile} "
               "does not exist")
    with open(FLAGS.eval_flagfile) as f:
      text = f.read()
  method_args = {}
  try:
    for method in FLAGS.methods:
      own = curve.method_args(method)
      sets = set(CURVE_SETS) | {command_line.flag_name(a) for a in own}
      lines = command_line.mode_args(own[0].split("=", 1)[1], text)
      command_line.refuse_lines(lines, sets, "run_curve.py",
                                f"the {method} runs")
      method_args[method] = lines + own
  except ValueError as e:
    sys.exit(f"run_curve.py: error: --eval_flagfile={FLAGS.eval_flagfile}: "
             f"{e}")
  return fractions, seeds, method_args


def run_config(args, fraction, seed, results):
  """The config of one run: what run_eval.py would make of its flags."""
  return command_line.eval_config_from_args([
      *args, f"--model_dir={FLAGS.model_dir}",
      f"--label_fraction={fraction}", f"--seed={seed}",
      f"--validation_fraction={FLAGS.validation_fraction}",
      f"--results_file={results}"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.show_warnings_only()
  fractions, seeds, method_args = check_flags()
  out_dir = FLAGS.out_dir or os.path.join(FLAGS.model_dir, "curve")
  try:
    curve.check_settings(out_dir, {
        "encoder_checkpoint": checkpoints.latest(FLAGS.model_dir)})
    pretrained = encoder_dir.load_config(FLAGS.model_dir)
  except (ValueError, config_lib.ConfigError) as e:
    sys.exit(f"run_curve.py: error: {e}")
  results = os.path.join(out_dir, records.RESULTS_FILE)
  finished = {records.identity(r) for r in records.read(results)}
  # Runs of the same features side by side, so that the probe's cache
  # encodes each image once per encoder (random encoders differ by seed).
  runs = [(method, fraction, seed) for method in FLAGS.methods
          for seed in seeds for fraction in fractions]
  try:   # every run's settings checked before the first one starts
    run_configs = {run: run_config(method_args[run[0]], *run[1:], results)
                   for run in runs}
    for config in run_configs.values():
      config.validate()
  except (config_lib.ConfigError, flags.Error) as e:
    sys.exit(f"run_curve.py: error: {e}")
  cache = feature_cache.FeatureCache()
  for (method, fraction, seed), config in run_configs.items():
    label = f"{method} with {fraction:.0%} of the labels, seed {seed}"
    if records.identity(records.record(config, pretrained)) in finished:
      print(f"[curve] {label}: done already")
      continue
    print(f"[curve] {label}", flush=True)
    task = registry.get(config.MODE)
    try:
      record = task.run(config, cache)
    except (config_lib.ConfigError, sources.DataError) as e:
      sys.exit(f"run_curve.py: error: the {label} run: {e}; finished runs "
               f"are kept in {results} and the same command continues from "
               "them")
    records.append(out_dir, record, results)
    keras.backend.clear_session()   # each run builds its models afresh
  summary = curve.summarise(records.read(results))
  table_path, plot_path = curve.write_report(out_dir, summary)
  print(curve.markdown_table(summary))
  print(f"Table: {table_path}\nPlot: {plot_path}\nRuns: {results}")


if __name__ == "__main__":
  app.run(main)
