"""The data-efficiency curve: summary, table, plot, and run_curve.py."""

import os
import subprocess
import sys

from absl import flags
import pytest
import tensorflow as tf

from cpc_tf.evaluation import curve
from cpc_tf.evaluation import records
from cpc_tf.evaluation import registry
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
      record("probe", 0.01, 0, 0.40, probe_features="encoder",
             random_init=False),
      record("probe", 0.01, 0, 0.30, probe_features="encoder",
             random_init=True),
      record("probe", 0.01, 0, 0.25, probe_features="pixels",
             random_init=False),
  ]
  summary = curve.summarise(records)
  # Sample standard deviation: (0.50, 0.60) -> 0.0707.
  assert summary["cpc_fixed"][0.01] == pytest.approx((0.55, 0.1 / 2 ** 0.5,
                                                      2))
  assert summary["cpc_fine_tuned"][0.01] == pytest.approx((0.70, 0.0, 1))
  assert summary["random_fixed"][0.01] == pytest.approx((0.10, 0.0, 1))
  # These records predate "method": their task names it from the settings.
  assert [curve.method_of(r) for r in records] == [
      "cpc_fixed", "cpc_fixed", "cpc_fine_tuned", "random_fixed",
      "supervised", "supervised", "cpc_probe", "random_probe",
      "pixels_probe"]
  assert curve.method_of({**records[0], "method": "random_fixed"}) == (
      "random_fixed")
  table = curve.markdown_table(summary)
  assert "| 1% labels | 100% labels |" in table
  assert "| ResNet on CPC features (fixed) | 55.0 ± 7.1 (2) | – |" in table
  assert ("| Supervised ResNet on pixels | 20.0 ± 0.0 (1) | 90.0 ± 0.0 (1) |"
          in table)
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


def test_another_encoder_checkpoint_is_refused():
  """settings.json keeps what a run's record does not say (the encoder's
  checkpoint); one written before the change, with the eval flagfile's
  text, still reads."""
  out_dir = "ram://curve_settings/out"
  with tf.io.gfile.GFile(out_dir + "/settings.json", "w") as f:
    f.write('{"encoder_checkpoint": "ckpt-600", "eval_flagfile": "x"}')
  settings = {"encoder_checkpoint": "ckpt-600"}
  curve.check_settings(out_dir, settings)
  curve.check_settings(out_dir, dict(settings))        # the same: accepted
  with pytest.raises(ValueError, match="encoder_checkpoint differ"):
    curve.check_settings(out_dir, {"encoder_checkpoint": "ckpt-1200"})


@pytest.mark.slow
def test_run_curve_writes_table_and_plot_and_resumes(pretrained, tmp_path,
                                                     tfds_dir, monkeypatch,
                                                     capsys):
  model_dir = pretrained[0].model_dir
  out_dir = tmp_path / "curve"
  nested = tmp_path / "nested.cfg"
  nested.write_text(
      f"--flagfile={os.path.join(REPO, 'flags', 'smoke_curve.cfg')}\n"
      "--probe_steps=20\n")
  eval_flags = tmp_path / "eval.cfg"
  eval_flags.write_text(f"--flagfile={nested}\n--train_split=train[:200]\n")
  command = [sys.executable, os.path.join(REPO, "run_curve.py"),
             f"--model_dir={model_dir}", f"--out_dir={out_dir}",
             f"--eval_flagfile={eval_flags}", "--fractions=0.5", "--seeds=0",
             "--validation_fraction=0.2",
             "--methods=cpc_fixed,cpc_probe"]
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  first = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "cpc_fixed with 50% of the labels, seed 0" in first.stdout
  table = (out_dir / "curve.md").read_text()
  for method in ("cpc_fixed", "cpc_probe"):
    label = registry.curve_methods()[method][1].label
    assert f"| {label} | " in table
  assert (out_dir / "curve.png").read_bytes().startswith(b"\x89PNG")
  assert f"Plot: {out_dir / 'curve.png'}" in first.stdout
  runs = records.read(str(out_dir / "results.jsonl"))
  assert [r["method"] for r in runs] == ["cpc_fixed", "cpc_probe"]

  # The same command again, in-process: every run is skipped.
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
  monkeypatch.chdir(REPO)
  run_curve_main(command[1:], monkeypatch)
  assert capsys.readouterr().out.count("done already") == 2
  assert len(records.read(str(out_dir / "results.jsonl"))) == 2

  # A setting changed inside the nested flagfile: the probe runs again, the
  # ResNet head, whose settings did not change, does not.
  nested.write_text(nested.read_text().replace("--probe_steps=20",
                                               "--probe_steps=30"))
  run_curve_main(command[1:], monkeypatch)
  assert capsys.readouterr().out.count("done already") == 1
  runs = records.read(str(out_dir / "results.jsonl"))
  assert [r["probe_steps"] for r in runs[1:]] == [20, 30]

  # A line that run_curve.py sets for each run is refused, naming it.
  eval_flags.write_text(eval_flags.read_text() + "--seed=3\n")
  with pytest.raises(SystemExit, match=r"--seed=3 is set by run_curve.py "
                     "for the cpc_fixed runs"):
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
