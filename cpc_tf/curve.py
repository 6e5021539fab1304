"""The data-efficiency curve (the paper's Figure 1): accuracy against the
fraction of labels, one line per method, from run_eval.py result records."""

import collections
import io
import json
import os
from typing import Dict, Iterable, Tuple

import numpy as np
import tensorflow as tf

# Each method is a set of run_eval.py flags.
METHODS = {
    "cpc_fixed": ["--mode=efficient"],
    "cpc_fine_tuned": ["--mode=efficient", "--fine_tune"],
    "random_fixed": ["--mode=efficient", "--random_init"],
    "supervised": ["--mode=supervised"],
    # The cached linear probe (A.3's head on the mean latent) of the same
    # subsets: the linear rows beside the ResNet heads.
    "cpc_probe": ["--mode=probe"],
    "random_probe": ["--mode=probe", "--random_init"],
    "pixels_probe": ["--mode=probe", "--probe_features=pixels"],
}
LABELS = {
    "cpc_fixed": "ResNet on CPC features (fixed)",
    "cpc_fine_tuned": "ResNet on CPC features (fine-tuned)",
    "random_fixed": "ResNet on a random encoder (fixed)",
    "supervised": "Supervised ResNet on pixels",
    "cpc_probe": "Linear probe on CPC features",
    "random_probe": "Linear probe on a random encoder",
    "pixels_probe": "Linear probe on pixels",
}
# Plot style: a colour per input (CPC features, random encoder, pixels); the
# ResNet heads solid with circles, the linear probes dashed with squares.
STYLES = {
    "cpc_fixed": ("tab:blue", "-", "o"),
    "cpc_fine_tuned": ("tab:purple", "-", "o"),
    "random_fixed": ("tab:orange", "-", "o"),
    "supervised": ("tab:green", "-", "o"),
    "cpc_probe": ("tab:blue", "--", "s"),
    "random_probe": ("tab:orange", "--", "s"),
    "pixels_probe": ("tab:green", "--", "s"),
}


def mode_of(method: str) -> str:
  """The run_eval.py mode of a METHODS entry."""
  return next(arg.split("=", 1)[1] for arg in METHODS[method]
              if arg.startswith("--mode="))


def method_of(record: dict) -> str:
  """Which METHODS entry produced a run_eval.py record."""
  if record["mode"] == "supervised":
    return "supervised"
  if record["mode"] == "probe":
    if record.get("probe_features") == "pixels":
      return "pixels_probe"
    return "random_probe" if record.get("random_init") else "cpc_probe"
  if record.get("random_init"):
    return "random_fixed"
  return "cpc_fine_tuned" if record.get("fine_tune") else "cpc_fixed"


SETTINGS_FILE = "settings.json"


def check_settings(out_dir: str, settings: Dict[str, object]):
  """Records the evaluation settings of out_dir's runs in settings.json, or
  raises ValueError naming those that differ from the recorded ones: runs
  made under other settings are never reused as if finished."""
  path = os.path.join(out_dir, SETTINGS_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    changed = sorted(k for k in set(saved) | set(settings)
                     if saved.get(k) != settings.get(k))
    if changed:
      raise ValueError(
          f"{out_dir} holds runs made with other evaluation settings "
          f"({', '.join(changed)} differ from {path}); use another --out_dir")
    return
  tf.io.gfile.makedirs(out_dir)
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(settings, f, indent=2, sort_keys=True)


def done(records: Iterable[dict]) -> set:
  """(method, fraction, seed) of the runs already recorded."""
  return {(method_of(r), r["label_fraction"], r["seed"]) for r in records}


Summary = Dict[str, Dict[float, Tuple[float, float, int]]]


def summarise(records: Iterable[dict], metric: str = "test_top1") -> Summary:
  """method -> fraction -> (mean, standard deviation over seeds, seeds)."""
  values = collections.defaultdict(lambda: collections.defaultdict(list))
  for record in records:
    values[method_of(record)][record["label_fraction"]].append(record[metric])
  return {method: {fraction: (float(np.mean(v)), float(np.std(v)), len(v))
                   for fraction, v in sorted(by_fraction.items())}
          for method, by_fraction in values.items()}


def markdown_table(summary: Summary, metric: str = "test_top1") -> str:
  fractions = sorted({f for by_fraction in summary.values() for f in by_fraction})
  lines = [f"{metric} (%), mean ± std over seeds (number of seeds)", "",
           "| method | " + " | ".join(f"{f:.0%} labels" for f in fractions) + " |",
           "| --- |" + " --- |" * len(fractions)]
  for method in METHODS:
    if method not in summary:
      continue
    cells = []
    for fraction in fractions:
      if fraction in summary[method]:
        mean, std, seeds = summary[method][fraction]
        cells.append(f"{100 * mean:.1f} ± {100 * std:.1f} ({seeds})")
      else:
        cells.append("–")
    lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(summary: Summary, metric: str = "test_top1") -> bytes:
  """PNG bytes: accuracy against % of labels, error bars over seeds."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(6, 4.5))
  for method in METHODS:
    if method not in summary:
      continue
    fractions = sorted(summary[method])
    means = [100 * summary[method][f][0] for f in fractions]
    stds = [100 * summary[method][f][1] for f in fractions]
    colour, line, marker = STYLES[method]
    axes.errorbar([100 * f for f in fractions], means, yerr=stds,
                  color=colour, linestyle=line, marker=marker, capsize=3,
                  label=LABELS[method])
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
  paths = (os.path.join(out_dir, "curve.md"), os.path.join(out_dir, "curve.png"))
  for path, mode, content in zip(paths, ("w", "wb"),
                                 (markdown_table(summary), plot(summary))):
    with tf.io.gfile.GFile(path, mode) as f:
      f.write(content)
  return paths
