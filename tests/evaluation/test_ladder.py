"""The CPC v1 -> v2 ladder: its rungs, its records' table, figures and
rank correlations, and run_ladder.py killed and resumed."""

import dataclasses
import glob
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.evaluation import ladder
from cpc_tf.evaluation import records as results_lib
from helpers import REPO, run_script, start_script

LADDER = sorted(glob.glob(os.path.join(REPO, "flags", "ladder", "[0-9]_*.cfg")))
# What each rung changes from the one before (the first: from the recipe).
CHANGES = {
    "v1": {"directions", "norm", "color_drop", "flip", "encoder_width"},
    "mc": {"encoder_width"},
    "bu": {"directions"},
    "ln": {"norm"},
    "rc": {"color_drop"},
    "hp": {"directions"},
    "lp": {"patch_size", "patch_stride", "steps_to_ignore",
           "steps_to_predict"},
    "pa": {"flip", "pa_geometric", "pa_elastic", "pa_color"},
}


def test_each_rung_changes_only_what_its_name_says(monkeypatch):
  monkeypatch.chdir(REPO)
  assert [ladder.rung_name(f) for f in LADDER] == list(CHANGES)
  previous = encoder_dir.from_flagfile("flags/cifar10_cpu_grid4.cfg")
  for flagfile in LADDER:
    config = encoder_dir.from_flagfile(flagfile)      # parses and validates
    changed = {f.name for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(previous, f.name)}
    assert changed == CHANGES[ladder.rung_name(flagfile)], flagfile
    previous = config
  # The ladder ends at the paper's v2 choices: 4 directions, layer norm, PA.
  assert (previous.directions, previous.norm, previous.pa_elastic) == (
      4, "layer", True)
  with open(os.path.join(REPO, "flags", "ladder", "cifar10.cfg")) as f:
    rungs = [line for line in f if line.startswith("--rungs=")]
  assert rungs == ["--rungs=" + ",".join(
      os.path.relpath(f, REPO) for f in LADDER) + "\n"]


def test_signed_points_never_show_minus_zero():
  assert [ladder.signed(p) for p in (1.24, -0.26, -0.03, 0.0, 2)] == [
      "+1.2", "-0.3", "+0.0", "+0.0", "+2.0"]


def test_spearman_against_numpy_ranks():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=20), rng.normal(size=20)
  ranks_x, ranks_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
  assert ladder.spearman(x, y) == pytest.approx(
      np.corrcoef(ranks_x, ranks_y)[0, 1])
  assert ladder.spearman([1, 2, 3, 4], [10, 20, 30, 5]) == pytest.approx(-0.2)
  # Ties take their mean rank: directions 1, 2, 2, 4 rank 0, 1.5, 1.5, 3.
  assert ladder.spearman([1, 2, 2, 4], [0.1, 0.3, 0.2, 0.4]) == pytest.approx(
      np.corrcoef([0, 1.5, 1.5, 3], [0, 2, 1, 3])[0, 1])
  assert np.isnan(ladder.spearman([1, 1, 1], [1, 2, 3]))


def probe_record(rung, order, directions, fraction, seed, top1, random=False,
                 architecture="a"):
  return {"mode": "probe", "rung": None if random else rung,
          "pretrain_seed": None if random else 0, "ladder_order": order,
          "architecture": architecture, "random_init": random,
          "label_fraction": fraction, "seed": seed, "test_top1": top1,
          "pretrain_config": {"directions": directions}}


def test_table_figures_and_figure4_claim_from_records():
  records = [
      {"kind": "ladder_pretrain", "rung": "v1", "pretrain_seed": 0,
       "step": 100, "loss": 3.5, "cpc_accuracy": 0.2,
       "images_per_second": 80.0},
      probe_record("v1", 0, 1, 1.0, 0, 0.40),
      probe_record("v1", 0, 1, 0.01, 0, 0.20),
      probe_record("v1", 0, 1, 0.01, 1, 0.22),
      probe_record("bu", 1, 2, 1.0, 0, 0.45),
      probe_record("bu", 1, 2, 0.01, 0, 0.30),
      probe_record("ln", 2, 2, 1.0, 0, 0.50, architecture="b"),
      probe_record("ln", 2, 2, 0.01, 0, 0.28, architecture="b"),
      probe_record("hp", 3, 4, 1.0, 0, 0.52, architecture="b"),
      probe_record("hp", 3, 4, 0.01, 0, 0.35, architecture="b"),
      probe_record(None, 0, 1, 1.0, 0, 0.30, random=True),
      probe_record(None, 0, 1, 1.0, 1, 0.32, random=True),
      probe_record(None, 0, 1, 0.01, 0, 0.10, random=True),
      probe_record(None, 0, 1, 0.01, 1, 0.14, random=True),
      {"mode": "probe", "test_top1": 0.9},        # not a ladder record
  ]
  table = ladder.rows(records, 0.01)
  assert [r.name for r in table["rungs"]] == ["v1", "bu", "ln", "hp"]
  text = ladder.markdown_table(table, 0.01)
  # v1: 40.0 with all labels, 21.0 ± 1.4 with 1%; random 31.0 and 12.0.
  assert ("| CPC v1 | 1 | 100 | 80 | 3.50 | 20.0% | 40.0 (1) | "
          "21.0 ± 1.4 (2) | +9.0 | +9.0 |") in text
  assert ("| +LN | 2 | – | – | – | – | 50.0 (1) | 28.0 (1) | – | – |"
          in text)
  assert "| a | 31.0 ± 1.4 (2) | 12.0 ± 2.8 (2) |" in text
  claim = ladder.figure4_claim(table)
  # Directions 1, 2, 2, 4 against few-label 0.21, 0.30, 0.28, 0.35.
  assert claim["directions_vs_few"] == pytest.approx(
      ladder.spearman([1, 2, 2, 4], [0.21, 0.30, 0.28, 0.35]))
  assert claim["other_steps"] == ["+LN"]       # the only step at 2 -> 2
  assert np.isnan(claim["all_gain_vs_few_gain"])   # one step: undefined
  for png in (ladder.figure3(table), ladder.figure4(table, 0.01)):
    assert png.startswith(b"\x89PNG")


def test_second_pretraining_seeds_pool_into_their_rung():
  def row(name, all_labels, few_labels, directions):
    return ladder.Row(name=name, directions=directions, architecture="a",
                      all_labels=all_labels, few_labels=few_labels)
  seeds = [row("v1", [0.40], [0.20, 0.22], 1),
           row("bu", [0.44], [0.30, 0.32], 2),
           row("bu", [0.50], [0.24, 0.26], 2),
           row("ln", [0.45], [], 2),
           row("hp", [0.52], [0.35, 0.33], 4)]
  pooled = ladder.pooled(seeds)
  # ln has no few-label probe yet; bu's two seeds in one row; the seeds'
  # rows themselves untouched.
  assert [r.name for r in pooled] == ["v1", "bu", "hp"]
  assert pooled[1].all_labels == [0.44, 0.50]
  assert pooled[1].few_mean == pytest.approx(0.28)
  assert seeds[1].all_labels == [0.44]
  claim = ladder.figure4_claim({"rungs": seeds, "random": []})
  assert claim["rungs"] == 3
  assert claim["directions_vs_few"] == pytest.approx(
      ladder.spearman([1, 2, 4], [0.21, 0.28, 0.34]))


def test_pretraining_seed_spread_pooled_over_rungs():
  def row(name, all_labels):
    return ladder.Row(name=name, directions=1, architecture="a",
                      all_labels=all_labels, few_labels=[0.1])
  rungs = [row("v1", [0.40]), row("mc", [0.44]), row("mc", [0.46]),
           row("bu", [0.50]), row("bu", [0.47]), row("bu", [0.47])]
  sd, rungs_with_seeds = ladder.seed_sd(rungs)
  # Pooled variance: squared deviations over (n - 1) summed over rungs.
  mc, bu = np.array([44.0, 46.0]), np.array([50.0, 47.0, 47.0])
  expected = np.sqrt((np.var(mc, ddof=1) * 1 + np.var(bu, ddof=1) * 2) / 3)
  assert (sd, rungs_with_seeds) == (pytest.approx(expected), 2)
  assert np.isnan(ladder.seed_sd(rungs[:2])[0])      # one seed each


def test_steps_beside_the_papers_gains():
  def row(name, all_labels, few_labels, architecture="a"):
    return ladder.Row(name=name, directions=1, architecture=architecture,
                      all_labels=all_labels, few_labels=few_labels)
  table = {"rungs": [row("v1", [0.40], [0.20]), row("mc", [0.35], [0.22]),
                     row("bu", [0.36], [0.25]), row("bu", [0.37], [0.26]),
                     row("ln", [0.37], [0.27]), row("ln", [0.36], [0.28]),
                     row("rc", [0.45], [0.30], architecture="b")],
           "random": [row("a", [0.30, 0.32], [0.1]),
                      row("b", [0.335], [0.1], architecture="b")]}
  lines = ladder.steps_table(table, 0.01).splitlines()
  # +MC: 5 points down where the paper gained 5; one architecture, so the
  # random encoder did not move.
  assert lines[2] == ("| +MC | 1 | -5.0 | – | +2.0 | +0.0 | +5.0 | the "
                      "paper's opposite |")
  # +BU against one seed of +MC: 36.5 - 35.0, too close for one seed.
  assert lines[3] == ("| +BU | 1 | +1.5 | +1.0 to +2.0 | +3.5 | +0.0 | +2.0 "
                      "| within 2 points: a second pretraining seed first |")
  # +LN: two seeds each, level: a result, no further seed asked; its four
  # seed pairs disagree on the sign.
  assert lines[4] == ("| +LN | 2 | +0.0 | -1.0 to +1.0 | +2.0 | +0.0 | +2.0 "
                      "| within 2 points |")
  # +RC changes the architecture: its random encoder rose 33.5 - 31.0.
  assert lines[5] == ("| +RC | 1 | +8.5 | +8.0 to +9.0 | +2.5 | +2.5 | +3.0 "
                      "| as the paper's |")
  # Without a random encoder of an architecture the change is not known.
  table["random"] = table["random"][:1]
  assert ladder.steps(table)[-1].random_change is None
  assert ladder.steps_table(table, 0.01).splitlines()[5].startswith(
      "| +RC | 1 | +8.5 | +8.0 to +9.0 | +2.5 | – |")
  # A gain is judged as it is shown: 48.6 -> 46.61 is -1.99, shown -2.0,
  # so not "within 2 points".
  close = {"rungs": [row("bu", [0.4838], [0.2]), row("bu", [0.4882], [0.2]),
                     row("ln", [0.4661], [0.2])], "random": []}
  assert ladder.steps_table(close, 0.01).splitlines()[2] == (
      "| +LN | 1 | -2.0 | -2.2 to -1.8 | +0.0 | – | +2.0 | the paper's "
      "opposite |")
  # A second seed for both rungs of a close step measured once: +BU's.
  assert ladder.close_rungs(table, 2.0) == ["mc", "bu"]
  assert ladder.close_rungs(table, 10.0) == ["v1", "mc", "bu", "ln", "rc"]


def test_final_metrics_from_tensorboard(pretrained):
  config, _ = pretrained
  metrics = ladder.final_metrics(config.model_dir)
  assert metrics["step"] == config.train_steps
  assert metrics["loss"] > 0 and 0 <= metrics["cpc_accuracy"] <= 1
  assert ladder.final_metrics(os.path.join(config.model_dir, "nothing")) == {}
  # The same from another filesystem (gs:// on Cloud TPU; ram:// here).
  remote = "ram://final_metrics"
  for path in glob.glob(os.path.join(config.model_dir, "train", "*")):
    tf.io.gfile.makedirs(remote + "/train")
    tf.io.gfile.copy(path, f"{remote}/train/{os.path.basename(path)}")
  assert ladder.final_metrics(remote) == metrics


def write_rungs(tmp_path):
  """Two smoke rungs: top-down, then both vertical directions (saving every
  3 steps, so that it can be killed between two checkpoints); a probe
  flagfile on small splits."""
  first, second = tmp_path / "1_v1.cfg", tmp_path / "2_bu.cfg"
  first.write_text("--flagfile=flags/smoke.cfg\n--directions=1\n"
                   "--checkpoint_every=40\n--log_every=10\n")
  second.write_text(f"--flagfile={first}\n--directions=2\n"
                    "--checkpoint_every=3\n")
  probe_flags = tmp_path / "probe.cfg"
  probe_flags.write_text("--train_split=train[:100]\n--test_split=test[:50]\n"
                         "--probe_steps=10\n--probe_penalties=0.1,0\n")
  return [str(first), str(second)], str(probe_flags)


@pytest.mark.slow
def test_run_ladder_killed_in_the_second_rung_resumes_it(tmp_path, tfds_dir):
  rungs, probe_flags = write_rungs(tmp_path)
  out_dir = tmp_path / "ladder"
  args = [f"--rungs={','.join(rungs)}", f"--out_dir={out_dir}",
          "--train_steps=40", "--few_labels=0.5", "--label_seeds=0,1",
          "--random_seeds=0", f"--eval_flagfile={probe_flags}"]
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  first = start_script("run_ladder.py", *args, env=env)
  second_rung = out_dir / "bu_seed0" / "checkpoints" / "checkpoint"
  try:
    deadline = time.time() + 300
    while not second_rung.exists() and first.poll() is None:
      assert time.time() < deadline, "the second rung never checkpointed"
      time.sleep(0.05)
  finally:
    first.send_signal(signal.SIGKILL)
    first.communicate()
  records = results_lib.read(str(out_dir / "results.jsonl"))
  # The first rung finished: pretraining, 3 probes, the random encoder's 2.
  assert [r.get("rung") for r in records] == ["v1"] * 4 + [None] * 2
  killed_at = int(open(second_rung).read().split("ckpt-")[1].split('"')[0])
  assert killed_at < 40

  again = run_script("run_ladder.py", *args, env=env)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "[ladder] v1 seed 0: done already" in again.stdout
  assert f"Resumed from step {killed_at}" in again.stdout
  records = results_lib.read(str(out_dir / "results.jsonl"))
  assert [r.get("rung") for r in records] == (
      ["v1"] * 4 + [None] * 2 + ["bu"] * 4)
  pretraining = [r for r in records if r.get("kind") == "ladder_pretrain"]
  assert [r["step"] for r in pretraining] == [40, 40]
  assert (out_dir / "figure3.png").read_bytes().startswith(b"\x89PNG")
  assert "| +BU | 2 | 40 |" in (out_dir / "ladder.md").read_text()

  # Every step "close": both rungs once more with pretraining seed 1.
  third = run_script("run_ladder.py", *args, "--second_seed_within=100",
                     env=env)
  assert third.returncode == 0, third.stderr[-3000:]
  assert ("[ladder] steps within 100.0 points: a second pretraining seed of "
          "v1, bu") in third.stdout
  records = results_lib.read(str(out_dir / "results.jsonl"))[10:]
  assert [(r.get("rung"), r.get("pretrain_seed")) for r in records] == (
      [("v1", 1)] * 4 + [("bu", 1)] * 4)
  assert "| +BU | 2 |" in (out_dir / "ladder.md").read_text().split(
      "| step |")[1]


def test_the_ladder_refuses_what_it_sets(tmp_path, monkeypatch):
  """Before any work: a probe line the ladder sets itself, two rungs of
  one name."""
  rungs, probe_flags = write_rungs(tmp_path)
  with open(probe_flags, "a") as f:
    f.write("--label_fraction=0.1\n")
  monkeypatch.chdir(REPO)
  with pytest.raises(config_lib.ConfigError, match="--label_fraction=0.1 is "
                     "set by run_ladder.py for each probe"):
    ladder.probe_args(probe_flags)
  with pytest.raises(config_lib.ConfigError, match="two rungs are named 'v1'"):
    ladder.rung_configs([rungs[0], rungs[0]], str(tmp_path / "out"), 5, [0])
  runs = ladder.rung_configs(rungs, str(tmp_path / "out"), 5, [0, 1])
  assert [(name, config.seed, config.train_steps) for name, _, config
          in runs] == [("v1", 0, 5), ("v1", 1, 5), ("bu", 0, 5), ("bu", 1, 5)]
  assert runs[3][2].model_dir == str(tmp_path / "out" / "bu_seed1")
  # A rung keeps its place when run alone (a second seed later).
  assert [order for _, order, _ in runs] == [1, 1, 2, 2]
  assert ladder.rung_configs(rungs[1:], str(tmp_path / "out"), 5, [1])[0][
      1] == 2
  assert not os.path.exists(tmp_path / "out")
