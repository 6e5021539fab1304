r"""The data-efficiency curve (Figure 1) in one command.

  python run_curve.py --model_dir=/tmp/cpc_cifar \
      --eval_flagfile=flags/cifar10_cpu_eval.cfg --fractions=0.01,0.1,1 \
      --seeds=0,1

For every fraction and seed, trains each --methods classifier on the same
class-balanced subset with run_eval.py (one process per run, results
appended to <out_dir>/results.jsonl; runs already there are skipped, so an
interrupted curve resumes; an --out_dir whose runs were made with another
eval flagfile, validation fraction or encoder checkpoint is refused), then
writes <out_dir>/curve.md (a table, mean ± std over seeds) and
<out_dir>/curve.png.
"""

import os
import subprocess
import sys

from absl import app
from absl import flags

from cpc_tf import checkpoints
from cpc_tf import curve
from cpc_tf import results as results_lib

REPO = os.path.dirname(os.path.abspath(__file__))

flags.DEFINE_string("model_dir", None, "Pretraining model_dir of the CPC "
                    "encoder (its config also sets the data and augmentation).")
flags.DEFINE_string("out_dir", None, "Where results.jsonl, curve.md and "
                    "curve.png go (default: <model_dir>/curve).")
flags.DEFINE_list("fractions", ["0.01", "0.1", "1.0"], "Label fractions.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds: each draws its own subsets "
                  "and initialisation.")
flags.DEFINE_list("methods", ["cpc_fixed", "cpc_fine_tuned", "supervised"],
                  f"Any of {list(curve.METHODS)}.")
flags.DEFINE_string("eval_flagfile", None, "run_eval.py flags shared by every "
                    "run (steps, batch size, head and pixel ResNet sizes, ...).")
flags.DEFINE_float("validation_fraction", 0.1, "Held out of each class for "
                   "validation (early stopping when fine-tuning).")
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
  if FLAGS.eval_flagfile and not os.path.exists(FLAGS.eval_flagfile):
    sys.exit(f"run_curve.py: error: --eval_flagfile={FLAGS.eval_flagfile} "
             "does not exist")
  return fractions, seeds


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  fractions, seeds = check_flags()
  out_dir = FLAGS.out_dir or os.path.join(FLAGS.model_dir, "curve")
  eval_flags = ""
  if FLAGS.eval_flagfile:
    with open(FLAGS.eval_flagfile) as f:
      eval_flags = f.read()
  try:
    curve.check_settings(out_dir, {
        "eval_flagfile": eval_flags,
        "validation_fraction": FLAGS.validation_fraction,
        "encoder_checkpoint": checkpoints.latest(FLAGS.model_dir)})
  except ValueError as e:
    sys.exit(f"run_curve.py: error: {e}")
  results = os.path.join(out_dir, results_lib.RESULTS_FILE)
  finished = curve.done(results_lib.read(results))
  shared = [f"--flagfile={FLAGS.eval_flagfile}"] if FLAGS.eval_flagfile else []
  for fraction in fractions:
    for seed in seeds:
      for method in FLAGS.methods:
        if (method, fraction, seed) in finished:
          print(f"[curve] {method} {fraction:g} seed {seed}: done already")
          continue
        print(f"[curve] {method} with {fraction:g} of the labels, seed {seed}",
              flush=True)
        run = subprocess.run(
            [sys.executable, os.path.join(REPO, "run_eval.py"), *shared,
             f"--model_dir={FLAGS.model_dir}", *curve.METHODS[method],
             f"--label_fraction={fraction}", f"--seed={seed}",
             f"--validation_fraction={FLAGS.validation_fraction}",
             f"--results_file={results}"], check=False)
        if run.returncode:
          sys.exit(f"run_curve.py: error: the {method} run ({fraction:g} of "
                   f"the labels, seed {seed}) failed; finished runs are kept "
                   f"in {results} and the same command continues from them")
  summary = curve.summarise(results_lib.read(results))
  table_path, plot_path = curve.write_report(out_dir, summary)
  print(curve.markdown_table(summary))
  print(f"Table: {table_path}\nPlot: {plot_path}\nRuns: {results}")


if __name__ == "__main__":
  app.run(main)
