"""The paper's ladder from CPC v1 to v2 (Figures 3 and 4) at any scale.

A rung is a pretraining flagfile; each rung is pretrained for the same
number of steps and probed (the cached probe) with all labels and with few.
A random encoder of each distinct architecture (encoder and patch grid) is
probed the same way. From the records: the table, Figure 3 (a bar per rung,
coloured by prediction directions, random-encoder lines per architecture),
Figure 4 (few-label against all-label accuracy) and Figure 4's claim as
rank correlations.
"""

import collections
import dataclasses
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from cpc_tf.configs import command_line
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir

# The paper's colours for 1, 2 and 4 prediction directions (Figure 3).
DIRECTION_COLOURS = {1: "tab:orange", 2: "tab:green", 4: "tab:blue"}
# The paper's gain of each step in ImageNet linear top-1 points (Section
# 4.1 and Figure 3), to set beside the sign measured here.
PAPER_GAINS = {"mc": 5.0, "bu": 2.0, "ln": 2.0, "rc": 3.0, "hp": 2.5,
               "lp": 2.0, "pa": 4.5}
# Adjacent rungs closer than this (points, all labels) get a second
# pretraining seed before a step's sign is claimed.
CLOSE = 2.0


def rung_name(flagfile: str) -> str:
  """flags/ladder/3_bu.cfg -> "bu": the file's stem without its order."""
  stem = os.path.splitext(os.path.basename(flagfile))[0]
  return stem.split("_", 1)[-1]


def rung_order(flagfile: str, index: int) -> int:
  """flags/ladder/3_bu.cfg -> 3: a rung's place in the ladder, from its
  file's number (so that a later run of some rungs, e.g. a second seed,
  keeps their places); a file without one takes its place in the list."""
  stem = os.path.splitext(os.path.basename(flagfile))[0]
  number = stem.split("_", 1)[0]
  return int(number) if number.isdigit() and "_" in stem else index


def signed(points: float) -> str:
  """+1.2, -0.3; a difference that rounds to zero is "+0.0", never "-0.0"."""
  return f"{round(points, 1) + 0.0:+.1f}"


def rung_label(name: str) -> str:
  return "CPC v1" if name == "v1" else f"+{name.upper()}"


def architecture(config: config_lib.PretrainConfig) -> str:
  """What a random encoder's probe depends on: the encoder and its grid."""
  blocks = ",".join(map(str, config.encoder_blocks)) or "preset"
  return (f"{config.encoder} width {config.encoder_width} blocks {blocks} "
          f"{config.norm} norm, {config.grid.grid_size}x"
          f"{config.grid.grid_size} grid of {config.patch_size}px patches at "
          f"stride {config.patch_stride}")


def comparable(pretrain_config: dict) -> dict:
  """A pretraining config as a run's identity: where it was written aside."""
  return {k: v for k, v in pretrain_config.items() if k != "model_dir"}


# Probe settings that the ladder sets itself for every run.
LADDER_SETS = ("mode", "model_dir", "results_file", "label_fraction", "seed",
               "validation_fraction", "random_init", "probe_features",
               "pretrain_flagfile")


def rung_configs(flagfiles: Sequence[str], out_dir: str, train_steps: int,
                 seeds: Sequence[int]):
  """(name, order, PretrainConfig) of each rung and pretraining seed: the
  rung's flagfile with the ladder's steps, seed and model_dir
  (<out_dir>/<rung>_seed<seed>); every flagfile parsed and validated
  before any work."""
  runs, names = [], []
  for index, flagfile in enumerate(flagfiles):
    name, order = rung_name(flagfile), rung_order(flagfile, index)
    if name in names:
      raise config_lib.ConfigError(f"two rungs are named {name!r}")
    names.append(name)
    base = encoder_dir.from_flagfile(flagfile)
    for seed in seeds:
      config = dataclasses.replace(
          base, train_steps=train_steps, seed=seed,
          model_dir=os.path.join(out_dir, f"{name}_seed{seed}"))
      try:
        config.validate()
      except config_lib.ConfigError as e:
        raise config_lib.ConfigError(f"rung {flagfile}: {e}") from None
      runs.append((name, order, config))
  return runs


def probe_args(eval_flagfile: Optional[str]) -> List[str]:
  """The lines of an eval flagfile for --mode=probe, refusing those the
  ladder sets."""
  if not eval_flagfile:
    return []
  with tf.io.gfile.GFile(eval_flagfile) as f:
    args = command_line.mode_args("probe", f.read())
  try:
    command_line.refuse_lines(args, LADDER_SETS, "run_ladder.py",
                              "each probe")
  except ValueError as e:
    raise config_lib.ConfigError(
        f"--eval_flagfile={eval_flagfile}: {e}") from None
  return args


def final_metrics(model_dir: str) -> Dict[str, float]:
  """From the pretraining's TensorBoard scalars: each metric's value at the
  last logged step, that step, and the steps per second: the median over
  logging intervals (robust to the start-up and the pause of a resume)."""
  values, times = {}, {}
  for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, "train",
                                                   "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = float(tf.make_ndarray(value.tensor))
        values.setdefault(value.tag, {})[event.step] = number
        if value.tag == "loss":
          times[event.step] = event.wall_time
  if "loss" not in values:
    return {}
  last = max(values["loss"])
  steps = sorted(times)
  rates = [(b - a) / (times[b] - times[a]) for a, b in zip(steps, steps[1:])
           if times[b] > times[a]]
  return {"step": last,
          "steps_per_second": float(np.median(rates)) if rates else None,
          **{tag: by_step[last] for tag, by_step in values.items()
             if last in by_step and tag != "learning_rate"}}


@dataclasses.dataclass
class Row:
  """One rung (or a random encoder) summarised over its records."""
  name: str
  directions: int
  architecture: str
  all_labels: List[float]
  few_labels: List[float]
  pretrain: Optional[dict] = None

  @property
  def all_mean(self) -> float:
    return float(np.mean(self.all_labels))

  @property
  def few_mean(self) -> float:
    return float(np.mean(self.few_labels))


def mean_sd(values: Sequence[float]) -> str:
  """"mean ± sample sd (n)" in percent; a single value alone."""
  values = 100 * np.asarray(values)
  if len(values) == 1:
    return f"{values[0]:.1f} (1)"
  return f"{values.mean():.1f} ± {values.std(ddof=1):.1f} ({len(values)})"


def rows(records: Sequence[dict], few_fraction: float
         ) -> Dict[str, List[Row]]:
  """{"rungs": [Row per rung and pretraining seed, in ladder order],
  "random": [Row per architecture]} from a ladder's records."""
  probes = collections.defaultdict(lambda: ([], []))
  info, pretraining = {}, {}
  for record in records:
    if record.get("kind") == "ladder_pretrain":
      pretraining[(record["rung"], record["pretrain_seed"])] = record
      continue
    if record.get("mode") != "probe" or "ladder_order" not in record:
      continue
    if record["random_init"]:
      key = ("random", record["architecture"])
    else:
      key = (record["rung"], record["pretrain_seed"])
    fraction = record["label_fraction"]
    if fraction == 1.0:
      probes[key][0].append(record["test_top1"])
    elif fraction == few_fraction:
      probes[key][1].append(record["test_top1"])
    info[key] = record
  table = {"rungs": [], "random": []}
  for key, (all_labels, few_labels) in probes.items():
    record = info[key]
    row = Row(name=(record["architecture"] if key[0] == "random"
                    else key[0]),
              directions=record["pretrain_config"]["directions"],
              architecture=record["architecture"], all_labels=all_labels,
              few_labels=few_labels, pretrain=pretraining.get(key))
    table["random" if key[0] == "random" else "rungs"].append(
        (record["ladder_order"], key[-1], row))
  return {part: [row for _, _, row in sorted(entries, key=lambda e: e[:2])]
          for part, entries in table.items()}


def random_baseline(table: Dict[str, List[Row]], architecture_name: str
                    ) -> Optional[Row]:
  return next((r for r in table["random"]
               if r.architecture == architecture_name), None)


def markdown_table(table: Dict[str, List[Row]], few_fraction: float) -> str:
  """The ladder as a table: one line per rung and pretraining seed."""
  few = f"{few_fraction:.0%}"
  lines = [
      f"| rung | directions | steps | images/s in the run | InfoNCE "
      f"| contrastive top-1 | probe, 100% | probe, {few} | − random, 100% "
      f"| − random, {few} |",
      "| --- |" + " --- |" * 9]
  for row in table["rungs"]:
    pretrain = row.pretrain or {}
    random = random_baseline(table, row.architecture)
    leads = ["–", "–"]
    if random and random.all_labels and random.few_labels:
      leads = [signed(100 * (row.all_mean - random.all_mean)),
               signed(100 * (row.few_mean - random.few_mean))]
    rate = pretrain.get("images_per_second")
    lines.append(
        f"| {rung_label(row.name)}"
        + (f" (seed {pretrain['pretrain_seed']})"
           if pretrain.get("pretrain_seed") else "")
        + f" | {row.directions} | {pretrain.get('step', '–')} | "
        + (f"{rate:.0f}" if rate else "–") + " | "
        + (f"{pretrain['loss']:.2f}" if "loss" in pretrain else "–") + " | "
        + (f"{100 * pretrain['cpc_accuracy']:.1f}%"
           if "cpc_accuracy" in pretrain else "–")
        + f" | {mean_sd(row.all_labels) if row.all_labels else '–'}"
        + f" | {mean_sd(row.few_labels) if row.few_labels else '–'}"
        + f" | {leads[0]} | {leads[1]} |")
  lines += ["", f"| random encoder | probe, 100% | probe, {few} |",
            "| --- | --- | --- |"]
  for row in table["random"]:
    lines.append(f"| {row.architecture} | {mean_sd(row.all_labels)} | "
                 f"{mean_sd(row.few_labels)} |")
  return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Step:
  """One step of the ladder: a rung against the rung before it, over their
  pretraining seeds' means (points)."""
  name: str
  previous: str
  seeds: int
  all_gain: float
  few_gain: float
  paper_gain: Optional[float]
  # How much the random encoder moved between the two rungs' architectures
  # (all labels): the part of a step's gain that needs no pretraining.
  random_change: Optional[float] = None
  # The all-label gain of every pairing of the two rungs' pretraining
  # seeds, lowest and highest: whether the seeds agree on the sign.
  pair_range: Optional[Tuple[float, float]] = None

  @property
  def verdict(self) -> str:
    if abs(self.all_gain) < CLOSE:
      return ("within 2 points: a second pretraining seed first"
              if self.seeds < 2 else "within 2 points")
    if self.paper_gain is None:
      return "–"
    return ("as the paper's" if self.all_gain * self.paper_gain > 0
            else "the paper's opposite")


def steps(table: Dict[str, List[Row]]) -> List[Step]:
  """Each rung against the one before it (rungs with both probes only),
  gains in points rounded to 0.1."""
  by_name = collections.defaultdict(list)
  for row in table["rungs"]:
    if row.all_labels and row.few_labels:
      by_name[row.name].append(row)
  names = list(by_name)
  result = []
  for before, after in zip(names, names[1:]):
    # Rounded as shown (0.1 points), so that a verdict reads off its row.
    gains = [round(100 * (np.mean([getattr(r, part) for r in by_name[after]])
                          - np.mean([getattr(r, part)
                                     for r in by_name[before]])), 1)
             for part in ("all_mean", "few_mean")]
    randoms = [random_baseline(table, by_name[name][0].architecture)
               for name in (before, after)]
    random_change = (100 * (randoms[1].all_mean - randoms[0].all_mean)
                     if all(r and r.all_labels for r in randoms) else None)
    pairs = [round(100 * (b.all_mean - a.all_mean), 1)
             for a in by_name[before] for b in by_name[after]]
    result.append(Step(after, before,
                       min(len(by_name[before]), len(by_name[after])),
                       *gains, PAPER_GAINS.get(after), random_change,
                       (min(pairs), max(pairs)) if len(pairs) > 1 else None))
  return result


def close_rungs(table: Dict[str, List[Row]], within: float) -> List[str]:
  """The rungs, in ladder order, of each step whose all-label gain is under
  `within` points measured with one pretraining seed: those that want a
  second one (both rungs of such a step)."""
  names = []
  for step in steps(table):
    if abs(step.all_gain) < within and step.seeds < 2:
      names += [n for n in (step.previous, step.name) if n not in names]
  return names


def steps_table(table: Dict[str, List[Row]], few_fraction: float) -> str:
  """Each step's gains with all labels and with few, beside the paper's."""
  lines = [f"| step | pretraining seeds | gain, 100% | seed pairs' gains, "
           f"100% | gain, {few_fraction:.0%} | random encoder's change, 100% "
           "| the paper's gain (ImageNet, 100%) | sign |",
           "| --- |" + " --- |" * 7]
  for step in steps(table):
    paper, random_change = step.paper_gain, step.random_change
    pairs = (f"{signed(step.pair_range[0])} to {signed(step.pair_range[1])}"
             if step.pair_range else "–")
    lines.append(f"| {rung_label(step.name)} | {step.seeds} | "
                 f"{signed(step.all_gain)} | {pairs} | "
                 f"{signed(step.few_gain)} | "
                 + (signed(random_change) if random_change is not None
                    else "–") + " | "
                 + (signed(paper) if paper is not None else "–")
                 + f" | {step.verdict} |")
  return "\n".join(lines) + "\n"


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman's rank correlation (ties get their mean rank)."""
  def ranks(values):
    values = np.asarray(values, float)
    order = values.argsort()
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values))
    for value in np.unique(values):         # ties: their mean rank
      ranked[values == value] = ranked[values == value].mean()
    return ranked
  rx, ry = ranks(x), ranks(y)
  if rx.std() == 0 or ry.std() == 0:
    return float("nan")
  return float(np.corrcoef(rx, ry)[0, 1])


def figure4_claim(table: Dict[str, List[Row]]) -> Dict[str, object]:
  """Figure 4's two statements on our rungs (pooled over their pretraining
  seeds): (1) more directions go with better few-label accuracy: the rank
  correlation of directions with few-label accuracy; (2) the other changes'
  all-label gains do not predict their few-label gains: the rank
  correlation of the two gains over the steps that keep the directions."""
  rungs = pooled(table["rungs"])
  steps = [(b.all_mean - a.all_mean, b.few_mean - a.few_mean,
            rung_label(b.name)) for a, b in zip(rungs, rungs[1:])
           if a.directions == b.directions]
  return {
      "directions_vs_few": spearman([r.directions for r in rungs],
                                    [r.few_mean for r in rungs]),
      "rungs": len(rungs),
      "other_steps": [name for _, _, name in steps],
      "all_gain_vs_few_gain": spearman([s[0] for s in steps],
                                       [s[1] for s in steps])
                              if len(steps) > 2 else float("nan"),
  }


def seed_sd(rungs: Sequence[Row]) -> Tuple[float, int]:
  """How far pretraining seeds move a rung's all-label probe: the pooled
  sample standard deviation (points) over the rungs with two seeds or more,
  and how many such rungs. A step between two rungs of n seeds each then
  has a standard error of sd * sqrt(2 / n)."""
  by_name = collections.defaultdict(list)
  for row in rungs:
    if row.all_labels:
      by_name[row.name].append(100 * row.all_mean)
  groups = [values for values in by_name.values() if len(values) > 1]
  if not groups:
    return float("nan"), 0
  squares = sum(np.sum((np.asarray(v) - np.mean(v)) ** 2) for v in groups)
  freedom = sum(len(v) - 1 for v in groups)
  return float(np.sqrt(squares / freedom)), len(groups)


def pooled(rungs: Sequence[Row]) -> List[Row]:
  """One Row per rung, in ladder order, holding the probes of all its
  pretraining seeds (each seed has as many probes, so a mean is the mean of
  the seeds' means); rungs without both probes are left out."""
  kept = {}
  for row in rungs:
    if not (row.all_labels and row.few_labels):
      continue
    if row.name not in kept:
      kept[row.name] = dataclasses.replace(
          row, all_labels=list(row.all_labels),
          few_labels=list(row.few_labels))
    else:
      kept[row.name].all_labels += row.all_labels
      kept[row.name].few_labels += row.few_labels
  return list(kept.values())


def direction_label(directions: int) -> str:
  return f"{directions} direction" + ("s" if directions > 1 else "")


def _png(figure) -> bytes:
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  pyplot.close(figure)
  return buffer.getvalue()


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  return pyplot


def figure3(table: Dict[str, List[Row]]) -> bytes:
  """PNG: a bar per rung (all-label probe, mean over pretraining seeds with
  their values as dots), coloured by directions; a dashed line over the
  rungs of each architecture at its random encoder's mean."""
  pyplot = _pyplot()
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(7, 4))
  names = list(dict.fromkeys(r.name for r in table["rungs"]))
  for i, name in enumerate(names):
    seeds = [r for r in table["rungs"] if r.name == name and r.all_labels]
    if not seeds:
      continue
    values = [100 * r.all_mean for r in seeds]
    axes.bar(i, np.mean(values), color=DIRECTION_COLOURS[seeds[0].directions],
             width=0.7)
    axes.plot([i] * len(values), values, "k.", markersize=4)
  labelled = set()
  for random in table["random"]:
    where = [i for i, name in enumerate(names) if any(
        r.architecture == random.architecture for r in table["rungs"]
        if r.name == name)]
    if where and random.all_labels:
      axes.hlines(100 * random.all_mean, min(where) - 0.4, max(where) + 0.4,
                  colors="k", linestyles="dashed",
                  label=None if labelled else "random encoder")
      labelled.add(True)
  handles, _ = axes.get_legend_handles_labels()
  # Legend patches drawn, not empty bars (whose legend colour is the cycle's).
  handles += [patches.Patch(color=colour, label=direction_label(directions))
              for directions, colour in DIRECTION_COLOURS.items()]
  axes.set_xticks(range(len(names)), [rung_label(n) for n in names])
  axes.set_ylabel("linear probe, all labels (top-1 %)")
  low = min([100 * r.all_mean for r in table["rungs"] + table["random"]
             if r.all_labels] or [0])
  axes.set_ylim(max(0, low - 5), None)
  axes.legend(handles=handles, fontsize="small", loc="upper left")
  axes.grid(True, axis="y", alpha=0.3)
  return _png(figure)


def figure4(table: Dict[str, List[Row]], few_fraction: float) -> bytes:
  """PNG: few-label against all-label probe accuracy, a dot per rung
  (error bars: sd over label and pretraining seeds), coloured by
  directions."""
  pyplot = _pyplot()
  figure, axes = pyplot.subplots(figsize=(5.5, 4.5))
  for row in pooled(table["rungs"]):
    axes.errorbar(100 * row.all_mean, 100 * row.few_mean,
                  yerr=(100 * np.std(row.few_labels, ddof=1)
                        if len(row.few_labels) > 1 else None),
                  fmt="o", color=DIRECTION_COLOURS[row.directions], capsize=3)
    axes.annotate(rung_label(row.name), (100 * row.all_mean,
                                         100 * row.few_mean),
                  textcoords="offset points", xytext=(4, 4), fontsize=8)
  for directions, colour in DIRECTION_COLOURS.items():
    axes.plot([], [], "o", color=colour, label=direction_label(directions))
  axes.set_xlabel("linear probe, all labels (top-1 %)")
  axes.set_ylabel(f"linear probe, {few_fraction:.0%} of the labels (top-1 %)")
  axes.legend(fontsize="small")
  axes.grid(True, alpha=0.3)
  return _png(figure)


def write_report(out_dir: str, records: Sequence[dict],
                 few_fraction: float) -> List[str]:
  """ladder.md (the table and Figure 4's correlations), figure3.png and
  figure4.png in out_dir; returns their paths."""
  table = rows(records, few_fraction)
  claim = figure4_claim(table)
  text = (markdown_table(table, few_fraction) + "\n"
          + steps_table(table, few_fraction) + "\n"
          + json.dumps(claim, indent=2) + "\n")
  outputs = {"ladder.md": text, "figure3.png": figure3(table),
             "figure4.png": figure4(table, few_fraction)}
  paths = []
  for name, content in outputs.items():
    path = os.path.join(out_dir, name)
    with tf.io.gfile.GFile(path, "wb" if name.endswith(".png") else "w") as f:
      f.write(content)
    paths.append(path)
  return paths
