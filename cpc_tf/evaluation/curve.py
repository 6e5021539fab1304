"""The data-efficiency curve (the paper's Figure 1): accuracy against the
fraction of labels, one line per method, from run_eval.py result records."""

import collections
import dataclasses
import io
import json
import os
from typing import Dict, Iterable, List, Tuple

import numpy as np
import tensorflow as tf

from cpc_tf.configs import modes
from cpc_tf.evaluation import registry
from cpc_tf.evaluation import task

def methods() -> Dict[str, task.Task]:
  """Every curve method's task, by name, in the legend's order."""
  return {name: method_task
          for name, (method_task, _) in registry.curve_methods().items()}


def method_args(name: str) -> List[str]:
  """The run_eval.py flags of a curve method: its mode's and its own."""
  method_task, method = registry.curve_methods()[name]
  return [f"--mode={method_task.mode}", *method.args]


def method_of(record: dict) -> str:
  """The curve method a record measured: as it names it, or, for a record
  written before records named their method, as its task names the
  method of the record's settings."""
  if record.get("method"):
    return record["method"]
  config_class = modes.CONFIGS[record["mode"]]
  config = config_class(**{f.name: record.get(f.name, f.default)
                           for f in dataclasses.fields(config_class)})
  return registry.get(record["mode"]).method(config)


SETTINGS_FILE = "settings.json"


def check_settings(out_dir: str, settings: Dict[str, object]):
  """Records in settings.json what out_dir's runs share beyond their own
  settings (the encoder's checkpoint), or raises ValueError naming what
  differs from the recorded values: runs of another encoder are never
  reused as if finished."""
  path = os.path.join(out_dir, SETTINGS_FILE)
  saved = {}
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    changed = sorted(k for k in settings if k in saved
                     and saved[k] != settings[k])
    if changed:
      raise ValueError(
          f"{out_dir} holds runs made with other evaluation settings "
          f"({', '.join(changed)} differ from {path}); use another --out_dir")
  if {**saved, **settings} != saved:
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump({**saved, **settings}, f, indent=2, sort_keys=True)


Summary = Dict[str, Dict[float, Tuple[float, float, int]]]


def sample_sd(values) -> float:
  """The sample standard deviation (ddof 1); 0 for a single value."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarise(records: Iterable[dict], metric: str = "test_top1") -> Summary:
  """method -> fraction -> (mean, sample sd over seeds, seeds)."""
  values = collections.defaultdict(lambda: collections.defaultdict(list))
  for record in records:
    values[method_of(record)][record["label_fraction"]].append(record[metric])
  return {method: {fraction: (float(np.mean(v)), sample_sd(v), len(v))
                   for fraction, v in sorted(by_fraction.items())}
          for method, by_fraction in values.items()}


def markdown_table(summary: Summary, metric: str = "test_top1") -> str:
  fractions = sorted({f for by_fraction in summary.values()
                      for f in by_fraction})
  lines = [f"{metric} (%), mean ± sample sd over seeds (number of seeds)", "",
           "| method | "
           + " | ".join(f"{f:.0%} labels" for f in fractions) + " |",
           "| --- |" + " --- |" * len(fractions)]
  for method, (_, curve_method) in registry.curve_methods().items():
    if method not in summary:
      continue
    cells = []
    for fraction in fractions:
      if fraction in summary[method]:
        mean, std, seeds = summary[method][fraction]
        cells.append(f"{100 * mean:.1f} ± {100 * std:.1f} ({seeds})")
      else:
        cells.append("–")
    lines.append(f"| {curve_method.label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(summary: Summary, metric: str = "test_top1") -> bytes:
  """PNG bytes: accuracy against % of labels, error bars over seeds."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(6, 4.5))
  for method, (_, curve_method) in registry.curve_methods().items():
    if method not in summary:
      continue
    fractions = sorted(summary[method])
    means = [100 * summary[method][f][0] for f in fractions]
    stds = [100 * summary[method][f][1] for f in fractions]
    colour, line, marker = curve_method.style
    axes.errorbar([100 * f for f in fractions], means, yerr=stds,
                  color=colour, linestyle=line, marker=marker, capsize=3,
                  label=curve_method.label)
  axes.set_xscale("log")
  axes.set_xlabel("% of labelled training images")
  axes.set_ylabel(f"{metric} (%)")
  axes.grid(True, which="both", alpha=0.3)
  axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  pyplot.close(figure)
  return buffer.getvalue()


def write_report(out_dir: str, summary: Summary) -> Tuple[str, str]:
  """Writes curve.md and curve.png to out_dir (any tf.io.gfile path)."""
  tf.io.gfile.makedirs(out_dir)
  paths = (os.path.join(out_dir, "curve.md"),
           os.path.join(out_dir, "curve.png"))
  for path, mode, content in zip(paths, ("w", "wb"),
                                 (markdown_table(summary), plot(summary))):
    with tf.io.gfile.GFile(path, mode) as f:
      f.write(content)
  return paths
