"""The results tables: generated from the records, the documents current,
the statistics computed as said."""

import json
import os

import numpy as np
import pytest

from cpc_tf.evaluation import ladder
from cpc_tf.evaluation import report
from helpers import REPO


def test_documents_hold_the_tables_of_the_records(monkeypatch, capsys):
  """README.md, docs/RESULTS.md and docs/flags.md are what the generator
  makes of docs/records/ (after a change: report --write)."""
  monkeypatch.chdir(REPO)
  assert report.main(["--check"]) == 0, capsys.readouterr().err


def test_a_stale_table_is_found(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)
  text = "<!-- report:flags -->\nstale line\n<!-- /report:flags -->\n"
  rendered = report.render(text, report.Records())
  assert "stale line" not in rendered and "`--probe_pool`" in rendered
  assert report.render(rendered, report.Records()) == rendered


def write_records(directory, records):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "probe_grid4_7000.jsonl"), "w") as f:
    for record in records:
      f.write(json.dumps(record) + "\n")


def probe(seed, top1, **settings):
  return {"mode": "probe", "random_init": False, "probe_stride": 6,
          "label_fraction": 0.01, "seed": seed, "test_top1": top1,
          "features": "encoder", "pretrain_config": {}, **settings}


def test_cells_are_means_and_sample_deviations_over_seeds(tmp_path):
  """Three seeds -> mean ± sd with ddof 1; a seed measured twice counts
  once (its first record); records written before fields were renamed
  ("features") read as today's."""
  write_records(tmp_path, [probe(0, 0.40), probe(1, 0.42), probe(2, 0.47),
                           probe(0, 0.99), probe(3, 0.5, probe_stride=None)])
  data = report.Records(str(tmp_path))
  values = data.grid4_probe(0.01)
  assert values == pytest.approx({0: 40.0, 1: 42.0, 2: 47.0})
  mean, sd = np.mean([40, 42, 47]), np.std([40, 42, 47], ddof=1)
  assert report.cell(values) == f"{mean:.1f} ± {sd:.1f} (3)"
  assert report.cell(values, best=True).endswith("; best 47.0")
  assert report.cell({5: 55.52}) == "55.5 (1)"
  assert report.lead(values, {0: 30.0, 1: 34.0}) == f"{mean - 32:+.1f}"
  assert report.lead(values, {0: 30.0, 1: 34.0}, over_best=True) == (
      f"{mean - 34:+.1f}")
  assert data.all()[0]["probe_features"] == "encoder"
  assert data.all()[0]["method"] == "cpc_probe"


def test_readme_is_short_and_results_open_with_the_summary():
  with open(os.path.join(REPO, "README.md")) as f:
    assert len(f.read().splitlines()) <= 200
  with open(os.path.join(REPO, "docs", "RESULTS.md")) as f:
    text = f.read()
  headings = [l for l in text.splitlines() if l.startswith("## ")]
  assert headings[0] == "## Summary"
  assert text.index("<!-- report:summary -->") < text.index(headings[1])
  cells = [cell for line in text.splitlines() if line.startswith("|")
           for cell in line.strip("|").split(" | ")]
  assert cells and max(len(cell) for cell in cells) <= 200


def test_ladder_block_summary_and_figures_from_two_rungs(tmp_path, monkeypatch):
  """Two rungs measured: their rows, the step beside the paper's, the
  correlations said to be undefined (not "nan"), the summary's row, and
  both figures drawn where the block links them."""
  rung = {"mode": "probe", "rung": "v1", "pretrain_seed": 0,
          "ladder_order": 1, "architecture": "a", "random_init": False,
          "pretrain_config": {"directions": 1}}
  records = [{"kind": "ladder_pretrain", "rung": "v1", "pretrain_seed": 0,
              "step": 2000, "loss": 7.1, "cpc_accuracy": 0.3,
              "images_per_second": 200.0}]
  records += [dict(rung, label_fraction=fraction, seed=seed, test_top1=top1)
              for fraction, seed, top1 in [(1.0, 0, 0.5), (0.01, 0, 0.3),
                                           (0.01, 1, 0.32)]]
  # +MC, 6 points up with all labels (the paper: +5).
  records += [dict(rung, rung="mc", ladder_order=2, label_fraction=fraction,
                   seed=0, test_top1=top1)
              for fraction, top1 in [(1.0, 0.56), (0.01, 0.33)]]
  records_dir = tmp_path / "docs" / "records"
  records_dir.mkdir(parents=True)
  (tmp_path / "docs" / "figures").mkdir()
  with open(records_dir / report.LADDER_RECORDS, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  monkeypatch.chdir(tmp_path)
  data = report.Records(str(records_dir))
  block = report.ladder_block(data)
  assert ("| CPC v1 | 1 | 2000 | 200 | 7.10 | 30.0% | 50.0 (1) | "
          "31.0 ± 1.4 (2)") in block
  # No random encoder recorded: its change between the rungs is unknown.
  assert ("| +MC | 1 | +6.0 | – | +2.0 | – | +5.0 | as the paper's |"
          in block)
  assert "nan" not in block and block.count("not defined yet") == 2
  assert "No rung has a second pretraining seed yet." in block
  # A second seed of +MC, 2 points above the first: sd = 2 / sqrt(2).
  two_seeds = records + [
      dict(rung, rung="mc", ladder_order=2, pretrain_seed=1,
           label_fraction=fraction, seed=0, test_top1=top1)
      for fraction, top1 in [(1.0, 0.58), (0.01, 0.33)]]
  assert report.seed_spread(ladder.rows(two_seeds, 0.01)) == (
      "Pretraining seeds move a rung's all-label probe with a pooled "
      "standard deviation of 1.41 points (1 rung with two seeds): a step "
      "between two rungs of two seeds each has a standard error of as much, "
      "and the 2-point rule is 1.4 of them.")
  # A third seed of +MC, level with the first: the step's standard error
  # between rungs of three seeds each is sd * sqrt(2 / 3).
  three_seeds = two_seeds + [
      dict(record, pretrain_seed=2, test_top1=top1)
      for record, top1 in zip(two_seeds[-2:], [0.56, 0.33])]
  sd = np.std([56.0, 58.0, 56.0], ddof=1)
  assert report.seed_spread(ladder.rows(three_seeds, 0.01)) == (
      f"Pretraining seeds move a rung's all-label probe with a pooled "
      f"standard deviation of {sd:.2f} points (1 rung with two seeds or "
      f"more): a step between two rungs of two seeds each has a standard "
      f"error of as much, and the 2-point rule is {2 / sd:.1f} of them; of "
      f"three seeds each, {sd * np.sqrt(2 / 3):.2f} points, and the rule is "
      f"{2 / (sd * np.sqrt(2 / 3)):.1f} of them.")
  summary = report.ladder_summary(ladder.rows(records, 0.01))
  assert summary[2] == "CPC v1 50.0; +MC 56.0"
  assert summary[6] == "1 of 7 steps measured: 1 as the paper's"
  # README's row: first and last rung; no random encoder recorded.
  readme_row = report.ladder_readme_row(ladder.rows(records, 0.01))
  assert readme_row[:4] == [
      "The ladder from CPC v1 to +MC (Figure 3), linear probe, all labels, "
      "2,000 steps a rung", "50.0 → 56.0", "– → –", "–"]
  report.write_ladder_figures(data)
  for path in report.LADDER_FIGURES:
    assert f"]({os.path.relpath(path, 'docs')})" in block
    with open(path, "rb") as f:
      assert f.read().startswith(b"\x89PNG")
