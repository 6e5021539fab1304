r"""docs/RESULTS.md's tables, generated from the records in docs/records/.

  python -m cpc_tf.evaluation.report            # print every table
  python -m cpc_tf.evaluation.report --write    # rewrite them in the docs
  python -m cpc_tf.evaluation.report --check    # exit 1 if a doc differs

README.md, docs/RESULTS.md and docs/flags.md are prose around generated
blocks, each between "<!-- report:NAME -->" and "<!-- /report:NAME -->";
--write replaces the blocks and leaves the prose. A cell holds "mean ±
sample sd (n)" over seeds (ddof 1); one seed, its value and "(1)".
Accuracies are top-1 on the test split, in percent.
"""

import argparse
import collections
import json
import os
import re
import sys
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from cpc_tf.configs import command_line
from cpc_tf.evaluation import curve
from cpc_tf.evaluation import ladder
from cpc_tf.evaluation import registry

RECORDS = "docs/records"
FRACTIONS = (0.01, 0.1, 1.0)
# The architecture of the session recipes' encoder and of its 5x5
# evaluation grid, where the random encoder and pixels were probed.
SESSION_ARCHITECTURE = {"encoder_width": 32, "encoder_blocks": [1, 1, 1],
                        "norm": "layer", "patch_size": 8, "patch_stride": 6}
GRID4 = "docs/encoders/cifar10_grid4_7000"


def read(name: str, records_dir: str = RECORDS) -> List[dict]:
  """A records file, each record normalised: fields that older records
  named otherwise or lacked take their current name and default."""
  path = os.path.join(records_dir, name)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  for record in records:
    if record.get("mode") == "probe":
      record["probe_features"] = (record.get("probe_features")
                                  or record.get("features") or "encoder")
      record.setdefault("probe_pool", "mean")
    if record.get("mode") in ("probe", "efficient", "supervised"):
      record["method"] = curve.method_of(record)
  return records


def where(**criteria) -> Callable[[dict], bool]:
  """A record filter: each criterion a value the field must equal; a
  "pretrain" dict checks fields of the pretraining config."""
  pretrain = criteria.pop("pretrain", {})

  def keep(record):
    config = record.get("pretrain_config") or {}
    return (all(record.get(k) == v for k, v in criteria.items())
            and all(config.get(k) == v for k, v in pretrain.items()))
  return keep


def by_seed(records: Sequence[dict], keep: Callable[[dict], bool],
            fraction: float) -> Dict[int, float]:
  """{seed: test top-1 %} of the kept records at this label fraction (a
  seed's first record where it was measured twice)."""
  values = {}
  for record in records:
    if keep(record) and record.get("label_fraction") == fraction:
      values.setdefault(record["seed"], 100 * record["test_top1"])
  return values


def cell(values: Dict[int, float], best: bool = False) -> str:
  if not values:
    return "–"
  numbers = np.array(list(values.values()))
  text = (f"{numbers[0]:.1f} (1)" if len(numbers) == 1 else
          f"{numbers.mean():.1f} ± {numbers.std(ddof=1):.1f} ({len(numbers)})")
  return text + (f"; best {numbers.max():.1f}" if best and len(numbers) > 1
                 else "")


def mean(values: Dict[int, float]) -> float:
  return float(np.mean(list(values.values())))


def lead(cpc: Dict[int, float], baseline: Dict[int, float],
         over_best: bool = False) -> str:
  """CPC's mean minus the baseline's mean (or best seed)."""
  if not cpc or not baseline:
    return "–"
  base = max(baseline.values()) if over_best else mean(baseline)
  return f"{mean(cpc) - base:+.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |",
           "|" + " --- |" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


class Records:
  """Every records file the tables read, loaded once."""

  def __init__(self, records_dir: str = RECORDS):
    self.dir = records_dir
    self.files = {name: read(name, records_dir)
                  for name in sorted(os.listdir(records_dir))
                  if name.endswith(".jsonl")}

  def all(self, *names: str) -> List[dict]:
    names = names or tuple(self.files)
    return [r for name in names for r in self.files.get(name, [])]

  def random_session(self, fraction):
    """The session architecture's random encoder (A.3 probe, 500 steps)."""
    return by_seed(self.all(), where(
        mode="probe", random_init=True, probe_steps=500, probe_stride=None,
        probe_pool="mean", pretrain=SESSION_ARCHITECTURE), fraction)

  def pixels(self, fraction, pool="mean"):
    return by_seed(self.all(), where(
        mode="probe", probe_features="pixels", probe_steps=500,
        probe_pool=pool, pretrain={"image_size": 32}), fraction)

  def grid4_probe(self, fraction):
    """The released 4x4-grid encoder probed on the 5x5 grid (stride 6)."""
    return by_seed(self.all("probe_grid4_7000.jsonl"), where(
        mode="probe", random_init=False, probe_stride=6), fraction)

  def grid4_head(self, method, fraction):
    files = [n for n in self.files if n.startswith("curve_grid4_")
             and "head1500" not in n]
    values = by_seed(self.all(*files), where(
        method=method, pretrain={"model_dir": GRID4}), fraction)
    if method == "supervised" and not values:   # the same data and head
      values = by_seed(self.all("curve_session_3600_10pct.jsonl"),
                       where(method="supervised"), fraction)
    return values

  def readout(self, method, pool, fraction):
    if method == "pixels_probe" and pool == "mean":
      return self.pixels(fraction)
    return by_seed(self.all("readouts_grid4.jsonl"),
                   where(method=method, probe_pool=pool), fraction)


def features_block(data: Records) -> str:
  """Does CPC learn useful features: the linear probe with all labels."""
  rows = []
  for label, cpc, minutes, machine in (
      ("4x4 recipe, 7,000 steps (`docs/encoders/cifar10_grid4_7000`), "
       "5x5 evaluation grid", data.grid4_probe(1.0),
       data.all("pretrain_grid4_7000.jsonl")[0]["wall_minutes"],
       "Intel Xeon"),
      ("session recipe, 5,600 steps (`docs/encoders/cifar10_session_5600`)",
       by_seed(data.all("probe_session_5600.jsonl"), where(
           mode="probe", random_init=False), 1.0),
       data.all("pretrain_session_5600.jsonl")[0][
           "pretrain_wall_seconds"] / 60, "Intel Xeon"),
      ("session recipe, 3,600 steps (`docs/encoders/cifar10_session_3600`)",
       by_seed(data.all("probe_session_3600_and_levers.jsonl"), where(
           mode="probe", random_init=False,
           encoder_checkpoint="/work/runs/headline/checkpoints/ckpt-3600"),
           1.0),
       data.all("pretrain_session_3600_and_levers.jsonl")[0][
           "pretrain_wall_seconds"] / 60, "AMD Zen 5")):
    random, pixels = data.random_session(1.0), data.pixels(1.0)
    rows.append([label, f"{minutes:.0f} ({machine})", cell(cpc),
                 cell(random, best=True), cell(pixels),
                 lead(cpc, random, over_best=True), lead(cpc, pixels)])
  return table(["encoder", "pretraining minutes", "CPC", "random encoder",
                "pixels", "− best random seed", "− pixels"], rows)


def few_labels_block(data: Records) -> str:
  """Figure 1 for the released 4x4-grid encoder: linear and ResNet heads."""
  rows = [
      ("Linear probe on CPC features", data.grid4_probe),
      ("Linear probe on a random encoder", data.random_session),
      ("Linear probe on pixels", data.pixels),
  ] + [(task_method.label, lambda f, m=name: data.grid4_head(m, f))
       for name, (_, task_method) in registry.curve_methods().items()
       if name in ("cpc_fixed", "cpc_fine_tuned", "random_fixed",
                   "supervised")]
  return table(["method"] + [f"{f:.0%} of the labels" for f in FRACTIONS],
               [[label] + [cell(values(f)) for f in FRACTIONS]
                for label, values in rows])


READOUT_NAMES = {"mean": "mean (A.3)", "quadrants": "quadrants",
                 "grid": "grid"}


def readouts_block(data: Records) -> str:
  """Issue 31's spatial readouts of the released 4x4-grid encoder."""
  if not data.files.get("readouts_grid4.jsonl"):
    return "No readout records yet."
  rows = []
  for pool, name in READOUT_NAMES.items():
    for fraction in FRACTIONS:
      cpc = data.readout("cpc_probe", pool, fraction)
      random = data.readout("random_probe", pool, fraction)
      pixels = data.readout("pixels_probe", pool, fraction)
      rows.append([name, f"{fraction:.0%}", cell(cpc), cell(random, True),
                   cell(pixels), lead(cpc, random, over_best=True),
                   lead(cpc, pixels)])
  lines = [table(["readout", "labels", "CPC", "random encoder", "pixels",
                  "− best random seed", "− pixels"], rows)]
  timings = data.all("readouts_grid4_timing.jsonl")
  if timings:
    lines += ["", "The grid readout's all-label probe of the CPC encoder, "
              "feature extraction included, alone on 2 cores "
              f"({timings[0]['feature_dim']:,} features an image, "
              f"{len(timings[0]['probe_penalties'])} penalties, "
              f"{timings[0]['probe_steps']} steps; "
              "`readouts_grid4_timing.jsonl`): " + "; ".join(
                  f"{t['process_wall_seconds']:.0f} s for the process, "
                  f"{t['encode_seconds']:.0f} s of it encoding, with "
                  f"{t['solver']}" for t in timings) + "."]
  check = data.all("readouts_grid4_penalty_check.jsonl")
  if check:
    pairs = []
    for record in check:
      before = data.readout(record["method"], record["probe_pool"],
                            record["label_fraction"]).get(record["seed"])
      pairs.append(f"{record['method'].split('_')[0]} {before:.1f} -> "
                   f"{100 * record['test_top1']:.1f} (penalty "
                   f"{record['penalty']:g})")
    at_edge = [r for r in data.all("readouts_grid4.jsonl")
               if r["label_fraction"] == 0.01 and r["probe_pool"] == "grid"]
    strongest = sum(r["penalty"] == max(r["probe_penalties"])
                    for r in at_edge)
    lines += ["", f"At 1% the list's strongest penalty won in {strongest} of "
              f"the {len(at_edge)} grid-readout probes; with penalties up to "
              "10 (label seed 0, `readouts_grid4_penalty_check.jsonl`): "
              + "; ".join(pairs) + "."]
  return "\n".join(lines)


def readout_timing(data: Records) -> Optional[dict]:
  """The grid readout's first all-label probe of the CPC encoder: it
  encoded every image, so its wall time includes the extraction."""
  for record in data.all("readouts_grid4.jsonl"):
    if where(method="cpc_probe", probe_pool="grid", label_fraction=1.0,
             seed=0)(record):
      return record
  return None


LADDER_RECORDS = "ladder_cifar10.jsonl"
LADDER_FEW_LABELS = 0.01          # flags/ladder/cifar10.cfg's --few_labels
LADDER_FIGURES = {"docs/figures/ladder_cifar10_figure3.png": ladder.figure3,
                  "docs/figures/ladder_cifar10_figure4.png":
                  lambda rows: ladder.figure4(rows, LADDER_FEW_LABELS)}


def ladder_rows(data: Records) -> Optional[Dict[str, list]]:
  """The ladder's table from its records; None before it has any."""
  records = data.all(LADDER_RECORDS)
  return ladder.rows(records, LADDER_FEW_LABELS) if records else None


def correlation(value: float) -> str:
  return "not defined yet (too few rungs)" if np.isnan(value) else (
      f"{value:+.2f}")


def seed_spread(rows: Dict[str, list]) -> str:
  """How much a pretraining seed moves a rung, and so what a step between
  rungs of two (and, once measured, three) seeds each can tell."""
  sd, rungs = ladder.seed_sd(rows["rungs"])
  if not rungs:
    return "No rung has a second pretraining seed yet."
  most = max(collections.Counter(r.name for r in rows["rungs"]
                                 if r.all_labels).values())
  sentence = (f"Pretraining seeds move a rung's all-label probe with a pooled "
              f"standard deviation of {sd:.2f} points ({rungs} "
              f"rung{'s' if rungs > 1 else ''} with two seeds"
              f"{' or more' if most > 2 else ''}): a step between two rungs "
              f"of two seeds each has a standard error of as much, and the "
              f"{ladder.CLOSE:.0f}-point rule is {ladder.CLOSE / sd:.1f} of "
              f"them")
  if most < 3:
    return sentence + "."
  # A step's standard error between rungs of n seeds each: sd * sqrt(2 / n).
  three = sd * np.sqrt(2 / 3)
  return (sentence + f"; of three seeds each, {three:.2f} points, and the "
          f"rule is {ladder.CLOSE / three:.1f} of them.")


def ladder_block(data: Records) -> str:
  lines = []
  rows = ladder_rows(data)
  if rows:
    claim = ladder.figure4_claim(rows)
    lines += [
        ladder.markdown_table(rows, LADDER_FEW_LABELS),
        ladder.steps_table(rows, LADDER_FEW_LABELS),
        f"Figure 4 on our rungs ({claim['rungs']} measured): Spearman's rank "
        f"correlation of prediction directions with the 1% probe "
        f"{correlation(claim['directions_vs_few'])}; of the other steps' "
        f"gains with all labels and with 1% "
        f"({', '.join(claim['other_steps']) or 'none yet'}) "
        f"{correlation(claim['all_gain_vs_few_gain'])}.", "",
        seed_spread(rows), "",
        " ".join(f"![{os.path.basename(path)}]({os.path.relpath(path, 'docs')})"
                 for path in LADDER_FIGURES), ""]
  else:
    lines += ["No ladder records yet.", ""]
  times = data.all("ladder_step_times.jsonl")
  lines.append(table(["rung", "seconds a step, alone", "images/s, alone"],
                     [[ladder.rung_label(r["rung"]),
                       f"{r['seconds_per_step']:.3f}",
                       f"{r['images_per_second']:.0f}"] for r in times]))
  return "\n".join(lines)


def write_ladder_figures(data: Records) -> None:
  """Figures 3 and 4 from the ladder's records (PNG, not checked)."""
  rows = ladder_rows(data)
  if rows:
    for path, draw in LADDER_FIGURES.items():
      with open(path, "wb") as f:
        f.write(draw(rows))


def detection_block(data: Records) -> str:
  rows = []
  for record in data.all("detection_fruit.jsonl"):
    if record.get("mode") != "detection":
      continue
    # These records predate trained_by.json: the model_dir names the
    # supervised backbone.
    model_dir = record["pretrain_config"]["model_dir"] or ""
    backbone = ("random encoder" if record["random_init"] else
                "supervised on Imagenette's labels"
                if "supervised" in model_dir else "CPC encoder")
    rows.append([backbone, str(record["seed"]),
                 f"{record.get('fixed_test_map_all_points', float('nan')):.3f}",
                 f"{record['test_map_all_points']:.3f}"])
  return table(["backbone", "seed", "mAP@0.5 fixed", "mAP@0.5 fine-tuned"],
               rows)


def summary_block(data: Records) -> str:
  random, pixels, cpc = (data.random_session(1.0), data.pixels(1.0),
                         data.grid4_probe(1.0))
  few = {name: values(0.01) for name, values in (
      ("cpc", data.grid4_probe), ("random", data.random_session),
      ("pixels", data.pixels))}
  head = {m: data.grid4_head(m, 0.01)
          for m in ("cpc_fixed", "random_fixed", "supervised")}
  minutes = data.all("pretrain_grid4_7000.jsonl")[0]["wall_minutes"]
  rows = [[
      "CPC features beat a random network's under a linear probe (Table 1)",
      f"CIFAR-10, 4x4 recipe, 7,000 steps ({minutes:.0f} min, 2 cores), A.3 "
      "probe, all labels", cell(cpc), cell(random, True), cell(pixels),
      "71.5% (ImageNet, ResNet-161)",
      f"holds at this scale: {lead(cpc, random, True)} points over the best "
      f"random seed, {lead(cpc, pixels)} over pixels; the paper's accuracy "
      "needs ImageNet and a ResNet-161", "[1](#1-does-cpc-learn-useful-"
      "features)"]]
  timing = readout_timing(data)
  grid = {pool: (data.readout("cpc_probe", pool, 1.0),
                 data.readout("random_probe", pool, 1.0)) for pool in
          ("grid",)}
  if timing:
    cpc_grid, random_grid = grid["grid"]
    met = (mean(cpc_grid) >= 60 and random_grid
           and mean(cpc_grid) - max(random_grid.values()) >= 15)
    rows.append([
        "(issue 31) a spatial readout shows more than the mean",
        "the same encoder, every cell's latent (grid readout), all labels",
        cell(cpc_grid), cell(random_grid, True),
        cell(data.readout("pixels_probe", "grid", 1.0)), "–",
        ("target met" if met else "target not met") +
        f": {mean(cpc_grid):.1f}% and {lead(cpc_grid, random_grid, True)} "
        f"over the best random seed (target: 60% and +15)",
        "[3](#3-spatial-readouts)"])
  ladder_table = ladder_rows(data)
  if ladder_table:
    rows.append(ladder_summary(ladder_table))
  rows.append([
      "CPC helps most with few labels (Figure 1)",
      "1% of the labels (450 images): A.3 probe; ResNet head (fixed)",
      f"{cell(few['cpc'])}; {cell(head['cpc_fixed'])}",
      f"{cell(few['random'])}; {cell(head['random_fixed'])}",
      f"{cell(few['pixels'])}; {cell(head['supervised'])} (pixel ResNet)",
      "77.9% top-5 with 1% of ImageNet vs 44.1% supervised",
      f"holds for the linear probe ({lead(few['cpc'], few['random'])} over "
      f"the random encoder, {lead(few['cpc'], few['pixels'])} over pixels); "
      f"the ResNet head leads the random encoder by "
      f"{lead(head['cpc_fixed'], head['random_fixed'])} and the pixel ResNet "
      f"by {lead(head['cpc_fixed'], head['supervised'])}",
      "[2](#2-few-labels-figure-1)"])
  return table(["claim (paper)", "our setting", "CPC", "random encoder",
                "pixels", "the paper's", "verdict", "section"], rows)


def ladder_summary(rows: Dict[str, list]) -> List[str]:
  """The summary's Figure 3 row: the first and last rung measured (means
  over their pretraining seeds), the last one's random encoder, and how
  many steps went the paper's way."""
  rungs = ladder.pooled(rows["rungs"])
  first, last = rungs[0], rungs[-1]
  random = ladder.random_baseline(rows, last.architecture)
  verdicts = collections.Counter(step.verdict for step in ladder.steps(rows))
  return [
      "Each step from CPC v1 to v2 raises linear accuracy (Figure 3)",
      "CIFAR-10, the ladder on the 4x4 recipe, "
      + (f"{first.pretrain['step']:,} steps a rung, " if first.pretrain
         else "") + "A.3 probe, all labels",
      "; ".join(f"{ladder.rung_label(r.name)} {100 * r.all_mean:.1f}"
                for r in ([first] if first is last else [first, last])),
      cell({i: 100 * v for i, v in enumerate(random.all_labels)}, True)
      if random else "–", "–", "48.7% (v1) to 71.5% (v2), ImageNet",
      f"{sum(verdicts.values())} of {len(ladder.PAPER_GAINS)} steps "
      "measured" + (": " + ", ".join(f"{n} {verdict}" for verdict, n
                                     in verdicts.items()) if verdicts else ""),
      "[4](#4-the-ladder-from-cpc-v1-to-v2-figures-3-and-4)"]


def readme_block(data: Records) -> str:
  """README's results: one number a cell (mean over seeds), the section
  of docs/RESULTS.md behind each row."""
  def number(values):
    return f"{mean(values):.1f}" if values else "–"

  rows = [
      ("Linear probe (A.3), all 45,000 labels", data.grid4_probe(1.0),
       data.random_session(1.0), data.pixels(1.0), "71.5 (ImageNet)",
       "1-does-cpc-learn-useful-features"),
      ("Linear probe, 1% of the labels (450 images)", data.grid4_probe(0.01),
       data.random_session(0.01), data.pixels(0.01), "–",
       "2-few-labels-figure-1"),
      ("ResNet head on fixed features, 1% (pixels: a ResNet trained on "
       "them)", data.grid4_head("cpc_fixed", 0.01),
       data.grid4_head("random_fixed", 0.01),
       data.grid4_head("supervised", 0.01),
       "77.9 top-5 vs 44.1 (ImageNet)", "2-few-labels-figure-1"),
  ]
  if data.files.get("readouts_grid4.jsonl"):
    rows.append(("Linear probe on every cell (grid readout), all labels",
                 data.readout("cpc_probe", "grid", 1.0),
                 data.readout("random_probe", "grid", 1.0),
                 data.readout("pixels_probe", "grid", 1.0), "–",
                 "3-spatial-readouts"))
  cells = [[name, number(cpc), number(random), number(pixels), paper,
            f"[RESULTS](docs/RESULTS.md#{anchor})"]
           for name, cpc, random, pixels, paper, anchor in rows]
  ladder_table = ladder_rows(data)
  if ladder_table:
    cells.append(ladder_readme_row(ladder_table))
  return table(["CIFAR-10 top-1 %", "CPC", "random encoder", "pixels",
                "the paper's", "details"], cells)


def ladder_readme_row(rows: Dict[str, list]) -> List[str]:
  """README's Figure 3 row: the first and the last rung (means over their
  pretraining seeds) and their architectures' random encoders."""
  rungs = ladder.pooled(rows["rungs"])
  ends = [rungs[0], rungs[-1]]
  randoms = [ladder.random_baseline(rows, r.architecture) for r in ends]
  steps = (f", {ends[0].pretrain['step']:,} steps a rung"
           if ends[0].pretrain else "")
  return [f"The ladder from CPC v1 to {ladder.rung_label(ends[1].name)} "
          f"(Figure 3), linear probe, all labels{steps}",
          " → ".join(f"{100 * r.all_mean:.1f}" for r in ends),
          " → ".join(f"{100 * r.all_mean:.1f}" if r else "–"
                     for r in randoms),
          "–", "48.7 → 71.5 (ImageNet)",
          "[RESULTS](docs/RESULTS.md"
          "#4-the-ladder-from-cpc-v1-to-v2-figures-3-and-4)"]


BLOCKS = {"summary": summary_block, "features": features_block,
          "few_labels": few_labels_block, "readouts": readouts_block,
          "ladder": ladder_block, "detection": detection_block,
          "readme": readme_block,
          "flags": lambda data: command_line.markdown_reference()}
# The files whose generated blocks --write and --check cover.
DOCUMENTS = ("README.md", "docs/RESULTS.md", "docs/flags.md")


def render(text: str, data: Records) -> str:
  """text with every generated block replaced by its current table."""
  def replace(match):
    name = match.group(1)
    return (f"<!-- report:{name} -->\n{BLOCKS[name](data)}\n"
            f"<!-- /report:{name} -->")
  return re.sub(r"<!-- report:(\w+) -->.*?<!-- /report:\1 -->", replace,
                text, flags=re.S)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--records_dir", default=RECORDS)
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--write", action="store_true",
                     help=f"Rewrite the generated blocks of {DOCUMENTS}.")
  group.add_argument("--check", action="store_true",
                     help="Exit 1 if a document differs from the records.")
  args = parser.parse_args(argv)
  data = Records(args.records_dir)
  if not (args.write or args.check):
    for name, block in BLOCKS.items():
      print(f"<!-- report:{name} -->\n{block(data)}\n")
    return 0
  stale = []
  for path in DOCUMENTS:
    with open(path) as f:
      text = f.read()
    rendered = render(text, data)
    if rendered != text:
      stale.append(path)
      if args.write:
        with open(path, "w") as f:
          f.write(rendered)
  if args.write:
    write_ladder_figures(data)
  if args.check and stale:
    print(f"{', '.join(stale)} differ from the tables of {args.records_dir}: "
          "run python -m cpc_tf.evaluation.report --write", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
