"""The data-efficiency curve: summary, table, plot, and run_curve.py."""

import os
import subprocess
import sys

from absl import flags
import pytest
import tensorflow as tf

from cpc_tf import curve
from helpers import REPO


def record(mode, fraction, seed, top1, **extra):
  return {"mode": mode, "label_fraction": fraction, "seed": seed,
          "test_top1": top1, **extra}


def test_summary_and_table_from_known_records():
  records = [
      record("efficient", 0.01, 0, 0.50), record("efficient", 0.01, 1, 0.60),
      record("efficient", 0.01, 0, 0.70, fine_tune=True),
      record("efficient", 0.01, 0, 0.10, random_init=True),
      record("supervised", 0.01, 0, 0.20), record("supervised", 1.0, 0, 0.90),
      record("probe", 0.01, 0, 0.40, probe_features="encoder", random_init=False),
      record("probe", 0.01, 0, 0.30, probe_features="encoder", random_init=True),
      record("probe", 0.01, 0, 0.25, probe_features="pixels", random_init=False),
  ]
  summary = curve.summarise(records)
  assert summary["cpc_fixed"][0.01] == pytest.approx((0.55, 0.05, 2))
  assert summary["cpc_fine_tuned"][0.01] == pytest.approx((0.70, 0.0, 1))
  assert summary["random_fixed"][0.01] == pytest.approx((0.10, 0.0, 1))
  assert curve.done(records) == {
      ("cpc_fixed", 0.01, 0), ("cpc_fixed", 0.01, 1),
      ("cpc_fine_tuned", 0.01, 0), ("random_fixed", 0.01, 0),
      ("supervised", 0.01, 0), ("supervised", 1.0, 0),
      ("cpc_probe", 0.01, 0), ("random_probe", 0.01, 0),
      ("pixels_probe", 0.01, 0)}
  table = curve.markdown_table(summary)
  assert "| 1% labels | 100% labels |" in table
  assert "| ResNet on CPC features (fixed) | 55.0 ± 5.0 (2) | – |" in table
  assert "| Supervised ResNet on pixels | 20.0 ± 0.0 (1) | 90.0 ± 0.0 (1) |" in table
  assert "| Linear probe on a random encoder | 30.0 ± 0.0 (1) | – |" in table
  assert "| Linear probe on pixels | 25.0 ± 0.0 (1) | – |" in table
  assert curve.plot(summary).startswith(b"\x89PNG")


def test_report_is_written_through_gfile():
  summary = curve.summarise([record("efficient", 0.1, 0, 0.25)])
  table_path, plot_path = curve.write_report("ram://curve_report/out", summary)
  with tf.io.gfile.GFile(table_path) as f:
    assert f.read() == curve.markdown_table(summary)
  with tf.io.gfile.GFile(plot_path, "rb") as f:
    assert f.read().startswith(b"\x89PNG")


def test_changed_settings_never_reuse_finished_runs():
  out_dir = "ram://curve_settings/out"
  settings = {"eval_flagfile": "--train_steps=300\n",
              "validation_fraction": 0.1, "encoder_checkpoint": "ckpt-600"}
  curve.check_settings(out_dir, settings)
  curve.check_settings(out_dir, dict(settings))        # the same: accepted
  for name, value in (("eval_flagfile", "--train_steps=500\n"),
                      ("encoder_checkpoint", "ckpt-1200")):
    with pytest.raises(ValueError, match=f"{name} differ"):
      curve.check_settings(out_dir, {**settings, name: value})


def test_run_curve_writes_table_and_plot_and_resumes(pretrained, tmp_path,
                                                     tfds_dir, monkeypatch,
                                                     capsys):
  model_dir = pretrained[0].model_dir
  out_dir = tmp_path / "curve"
  eval_flags = tmp_path / "eval.cfg"
  eval_flags.write_text(
      f"--flagfile={os.path.join(REPO, 'flags', 'smoke_curve.cfg')}\n"
      "--train_split=train[:200]\n")
  command = [sys.executable, os.path.join(REPO, "run_curve.py"),
             f"--model_dir={model_dir}", f"--out_dir={out_dir}",
             f"--eval_flagfile={eval_flags}", "--fractions=0.5", "--seeds=0",
             "--validation_fraction=0.2",
             "--methods=cpc_fixed,cpc_probe"]
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  first = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  table = (out_dir / "curve.md").read_text()
  for method in ("cpc_fixed", "cpc_probe"):
    assert f"| {curve.LABELS[method]} | " in table
  assert (out_dir / "curve.png").read_bytes().startswith(b"\x89PNG")
  assert f"Plot: {out_dir / 'curve.png'}" in first.stdout
  runs = (out_dir / "results.jsonl").read_text().splitlines()
  assert len(runs) == 2

  # The same command again, in-process: every run is skipped.
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
  monkeypatch.chdir(REPO)
  run_curve_main(command[1:], monkeypatch)
  assert capsys.readouterr().out.count("done already") == 2
  assert len((out_dir / "results.jsonl").read_text().splitlines()) == 2

  eval_flags.write_text(eval_flags.read_text() + "--train_steps=7\n")
  with pytest.raises(SystemExit,
                     match=r"other evaluation settings \(eval_flagfile differ"):
    run_curve_main(command[1:], monkeypatch)


def run_curve_main(argv, monkeypatch):
  """run_curve.py's main on argv, its flags parsed anew and reset after."""
  monkeypatch.syspath_prepend(REPO)
  import run_curve  # pylint: disable=g-import-not-at-top
  flags.FLAGS(argv)
  try:
    run_curve.main(argv[:1])
  finally:
    flags.FLAGS.unparse_flags()
