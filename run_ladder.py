r"""The ladder from CPC v1 to v2 (the paper's Figures 3 and 4) in one command.

  python run_ladder.py --flagfile=flags/ladder/cifar10.cfg \
      --out_dir=/tmp/cpc_ladder

Each rung (a pretraining flagfile) is pretrained for --train_steps in
<out_dir>/<rung>_seed<seed>, then probed with the cached linear probe with
all labels (label seed 0) and with --few_labels of them (--label_seeds); a
random encoder of each distinct architecture is probed the same way
(--random_seeds, each its own label seed). Records go to --results_file;
ladder.md, figure3.png and figure4.png to --out_dir. With
--second_seed_within, the two rungs of every step closer than that are then
pretrained and probed once more with the next pretraining seed. Resumable: a
killed ladder resumes the rung it was in from its checkpoint, and every
pretraining and probe already recorded with the same resolved settings is
skipped.
"""

import dataclasses
import os
import sys

import cpc_tf  # pylint: disable=unused-import  # TF's environment, first

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import tensorflow as tf

from cpc_tf.configs import command_line
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import ladder
from cpc_tf.evaluation import records
from cpc_tf.evaluation import registry
from cpc_tf.train import saved_config
from cpc_tf.train import trainer

flags.DEFINE_list("rungs", None, "Pretraining flagfiles, one per rung, in "
                  "ladder order (e.g. flags/ladder/1_v1.cfg,...).")
flags.DEFINE_string("out_dir", None, "Where each rung's model_dir, the "
                    "records, ladder.md and the figures go.")
flags.DEFINE_integer("train_steps", None, "Pretraining steps of every rung "
                     "(the same budget for all; overrides the flagfiles').")
flags.DEFINE_list("pretrain_seeds", ["0"], "Pretraining seeds of every rung "
                  "(a second seed where adjacent rungs are close).")
flags.DEFINE_float("second_seed_within", 0.0, "After the rungs: the two "
                   "rungs of every step whose all-label probes differ by "
                   "less than this many points are pretrained and probed "
                   "once more with the next pretraining seed (0: never).")
flags.DEFINE_float("few_labels", 0.01, "The few-label probe's fraction of "
                   "the labels (Figure 4's y axis).")
flags.DEFINE_list("label_seeds", ["0", "1", "2"], "Label seeds of the "
                  "few-label probe (the all-label probe uses seed 0).")
flags.DEFINE_list("random_seeds", ["0", "1", "2"], "Seeds of the random "
                  "encoders of each architecture (each probed with its seed's "
                  "labels, all and few).")
flags.DEFINE_float("validation_fraction", 0.1, "Held out of each class to "
                   "choose the probe's penalty on.")
flags.DEFINE_string("eval_flagfile", None, "Optional run_eval.py --mode=probe "
                    "flags for every probe (e.g. --train_split, "
                    "--probe_pool); not those the ladder sets.")
flags.DEFINE_string("results_file", None, "JSON-lines records (default: "
                    "<out_dir>/results.jsonl).")
flags.mark_flags_as_required(["rungs", "out_dir", "train_steps"])
FLAGS = flags.FLAGS

def probes(model_dir, extra_args, label_runs, results):
  """Probe configs of one encoder: (label fraction, seed) of each run."""
  return [command_line.eval_config_from_args([
      "--mode=probe", *extra_args, f"--model_dir={model_dir}",
      f"--label_fraction={fraction}", f"--seed={seed}",
      f"--validation_fraction={FLAGS.validation_fraction}",
      f"--results_file={results}"]) for fraction, seed in label_runs]


class LadderRun:
  """What the rungs of one command share: the records file, the identities
  of the runs it holds, the probes' settings and the architectures whose
  random encoders are probed."""

  def __init__(self, results, extra_args):
    self.results, self.extra = results, extra_args
    self.done = {records.identity(r) for r in records.read(results)}
    self.label_runs = [(1.0, 0)] + [(FLAGS.few_labels, int(s))
                                    for s in FLAGS.label_seeds]
    self.random_done = set()

  def run_probes(self, configs_to_run, pretrained, tags):
    """Runs the probes of one encoder not yet recorded."""
    cache = feature_cache.FeatureCache()
    for config in configs_to_run:
      if records.identity(records.record(config, pretrained)) in self.done:
        continue
      print(f"[ladder] {tags.get('rung') or 'random encoder'}: probe with "
            f"{config.label_fraction:.0%} of the labels, seed {config.seed}",
            flush=True)
      record = {**registry.get("probe").run(config, cache), **tags}
      records.append(FLAGS.out_dir, record, self.results)
      self.done.add(records.identity(record))

  def rung(self, name, order, config):
    """Pretrains one rung and probes it, unless recorded; then the random
    encoders of its architecture, once per command."""
    tags = {"rung": name, "pretrain_seed": config.seed, "ladder_order": order,
            "architecture": ladder.architecture(config)}
    pretrain_record = {"kind": "ladder_pretrain", "rung": name,
                       "pretrain_seed": config.seed, "ladder_order": order,
                       "pretrain_config": dataclasses.asdict(config)}
    rung_probes = probes(config.model_dir, self.extra, self.label_runs,
                         self.results)
    if records.identity(pretrain_record) in self.done and all(
        records.identity(records.record(c, config)) in self.done
        for c in rung_probes):
      print(f"[ladder] {name} seed {config.seed}: done already", flush=True)
    else:
      print(f"[ladder] {name} seed {config.seed}: pretraining "
            f"{config.train_steps} steps in {config.model_dir}", flush=True)
      trainer.pretrain(config)
      keras.backend.clear_session()
      if records.identity(pretrain_record) not in self.done:
        metrics = ladder.final_metrics(config.model_dir)
        rate = metrics.get("steps_per_second")
        pretrain_record.update(metrics, images_per_second=(
            rate * config.batch_size if rate else None))
        records.append(FLAGS.out_dir, pretrain_record, self.results)
        self.done.add(records.identity(pretrain_record))
      self.run_probes(rung_probes, config, tags)
    if tags["architecture"] not in self.random_done:
      self.random_done.add(tags["architecture"])
      # The random encoders read the rung's config.json (on a new machine
      # a finished rung's folder may not be there).
      saved_config.save_config(config)
      self.run_probes(
          [c for seed in map(int, FLAGS.random_seeds)
           for c in probes(config.model_dir, self.extra + ["--random_init"],
                           [(1.0, seed), (FLAGS.few_labels, seed)],
                           self.results)], config,
          {**tags, "rung": None, "pretrain_seed": None})
    keras.backend.clear_session()


def second_seeds(results, pretrain_seeds):
  """The rungs of the steps closer than --second_seed_within, pretrained
  once more with the next seed (what the records already hold)."""
  table = ladder.rows(records.read(results), FLAGS.few_labels)
  wanted = ladder.close_rungs(table, FLAGS.second_seed_within)
  if not wanted:
    return []
  print(f"[ladder] steps within {FLAGS.second_seed_within} points: "
        f"a second pretraining seed of {', '.join(wanted)}", flush=True)
  return ladder.rung_configs(
      [f for f in FLAGS.rungs if ladder.rung_name(f) in wanted],
      FLAGS.out_dir, FLAGS.train_steps, [max(pretrain_seeds) + 1])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.show_warnings_only()
  results = FLAGS.results_file or os.path.join(FLAGS.out_dir,
                                               records.RESULTS_FILE)
  pretrain_seeds = [int(s) for s in FLAGS.pretrain_seeds]
  try:
    runs = ladder.rung_configs(FLAGS.rungs, FLAGS.out_dir, FLAGS.train_steps,
                               pretrain_seeds)
    ladder_run = LadderRun(results, ladder.probe_args(FLAGS.eval_flagfile))
  except (config_lib.ConfigError, ValueError) as e:
    sys.exit(f"run_ladder.py: error: {e}")
  name = None
  try:
    for name, order, config in runs:
      ladder_run.rung(name, order, config)
    if FLAGS.second_seed_within > 0:
      for name, order, config in second_seeds(results, pretrain_seeds):
        ladder_run.rung(name, order, config)
  except (config_lib.ConfigError, sources.DataError, flags.Error) as e:
    sys.exit(f"run_ladder.py: error: rung {name}: {e}; finished runs are "
             f"kept in {results} and the same command continues from them")
  paths = ladder.write_report(FLAGS.out_dir, records.read(results),
                              FLAGS.few_labels)
  with tf.io.gfile.GFile(paths[0]) as f:      # ladder.md, on any filesystem
    print(f.read())
  print("Report: " + ", ".join(paths))


if __name__ == "__main__":
  app.run(main)
