"""The training engine end to end on small data: outputs, 1-vs-4 devices, exact resume, NaN."""
import json
import os
import signal

import jax
import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.errors import CheckpointError, ConfigError, Interrupted, NonFiniteLossError, UserError
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import JsonlWriter, read_jsonl
from conftest import QUIET  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

SPE = 1438 // 64  # digits, batch 64: 22 steps per epoch.


def _params(run_dir, devices=1):
  return jax.tree.map(np.asarray, jax.device_get(load_run(str(run_dir), devices=devices).state.params))


def _leaves(run_dir):
  return jax.tree.leaves(_params(run_dir))


def test_chunk_rates_are_their_periods_so_far(make_cfg, tmp_path):
  """A chunk's train/samples_per_s is its period's so far, so the period's last chunk logs (nearly) the period's
  own figure and no chunk is far from it; timed from each chunk's dispatch, chunks were logged at 0.5-35x
  their epoch's samples/s (the first chunk of an epoch of `make demo` at 4-7 M samples/s against 0.19 M)."""
  cfg = make_cfg(["trainer.epochs=3", "dataset.batch_size=32", "trainer.log_every_steps=8", *QUIET])
  train_and_evaluate(cfg, str(tmp_path))
  records = read_jsonl(tmp_path / "metrics.jsonl")
  previous = 0
  for epoch in [r for r in records if "time/epoch_s" in r]:
    chunks = [r["train/samples_per_s"] for r in records if "time/epoch_s" not in r and previous < r["step"] <= epoch["step"]]
    period = epoch["train/samples_per_s"]
    assert len(chunks) >= 5 and chunks[-1] == pytest.approx(period, rel=0.1), (chunks, period)
    assert all(period / 3 < c < 3 * period for c in chunks), (chunks, period)
    previous = epoch["step"]


def test_outputs_and_falling_loss(make_cfg, tmp_path):
  summary = train_and_evaluate(make_cfg(["trainer.epochs=4"]), str(tmp_path))
  records = read_jsonl(tmp_path / "metrics.jsonl")
  epochs = [r for r in records if "eval/loss" in r]
  steps = [r for r in records if "eval/loss" not in r]
  assert len(epochs) == 4 and steps
  for r in epochs:
    assert {"step", "epoch", "train/loss", "time/epoch_s", "train/samples_per_s", "eval/loss", "eval/mse"} <= set(r)
  for r in steps:
    assert {"step", "epoch", "train/loss", "train/mse", "train/samples_per_s", "train/learning_rate"} <= set(r)
  assert epochs[-1]["eval/loss"] < 0.8 * epochs[0]["eval/loss"]
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  for key in ("step", "epoch", "train/loss", "eval/loss", "n_devices", "train/samples_per_s", "time/compile_s",
              "time/total_s"):
    assert key in on_disk, key
  assert on_disk["n_devices"] == 4 and on_disk["step"] == 4 * (1438 // 64) and on_disk["epoch"] == 4
  # The final evaluation's time, by evaluator: each one that ran, within the phase's total.
  by_evaluator = {k: v for k, v in on_disk.items() if k.startswith("time/eval/")}
  assert {"time/eval/reconstruction_s", "time/eval/linear_probe_s"} <= set(by_evaluator)
  assert 0 < sum(by_evaluator.values()) <= on_disk["time/eval_s"]
  assert on_disk["eval/loss"] == pytest.approx(epochs[-1]["eval/loss"]) == pytest.approx(summary["eval/loss"])
  for name in ("codes.png", "reconstructions.png"):
    assert (tmp_path / "figures" / name).stat().st_size > 5_000
  assert (tmp_path / "config.yaml").exists() and (tmp_path / "checkpoints").is_dir()


def test_eval_loss_is_the_test_set_mse(make_cfg, tmp_path):
  """Independent check of the compiled, padded, sharded evaluation."""
  summary = train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=15", "trainer.eval_batch_size=256"]), str(tmp_path))
  run = load_run(str(tmp_path))
  x = run.setup.data.test["image"]
  recon = np.asarray(run.model(x)[0])
  assert summary["eval/loss"] == pytest.approx(float(np.mean((recon - x) ** 2)), rel=1e-5)


def test_one_and_four_devices_agree(make_cfg, tmp_path):
  runs = {}
  for n in (1, 4):
    train_and_evaluate(make_cfg(QUIET + [f"trainer.devices={n}", "trainer.max_steps=30"]), str(tmp_path / str(n)))
    runs[n] = read_jsonl(tmp_path / str(n) / "metrics.jsonl")
  assert json.loads((tmp_path / "4" / "summary.json").read_text())["n_devices"] == 4
  for a, b in zip(runs[1], runs[4], strict=True):
    assert a["step"] == b["step"]
    assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-4)
    if "eval/loss" in a:
      assert a["eval/loss"] == pytest.approx(b["eval/loss"], rel=1e-4)
  jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6),
               _params(tmp_path / "1"), _params(tmp_path / "4"))


def test_resume_after_interruption_is_exact(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=4"]), str(tmp_path / "full"))
  # "Interrupted" after epoch 2: a run that stopped there, then resumed with the full schedule.
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=2"]), str(tmp_path / "cut"))
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=4", "trainer.resume=true"]), str(tmp_path / "cut"))
  jax.tree.map(np.testing.assert_array_equal, _params(tmp_path / "full"), _params(tmp_path / "cut"))
  full, cut = read_jsonl(tmp_path / "full" / "metrics.jsonl"), read_jsonl(tmp_path / "cut" / "metrics.jsonl")
  assert [r["step"] for r in cut] == [r["step"] for r in full]  # No duplicated or missing records.
  assert [r["train/loss"] for r in cut] == [r["train/loss"] for r in full]


def test_existing_run_needs_resume_flag(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=5"]), str(tmp_path))
  before = (tmp_path / "metrics.jsonl").read_text()
  with pytest.raises(ConfigError, match="trainer.resume=true"):
    train_and_evaluate(make_cfg(["trainer.max_steps=10"]), str(tmp_path))
  assert (tmp_path / "metrics.jsonl").read_text() == before


def test_nan_loss_stops_with_step_and_keeps_checkpoint(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=1", "optimizer=sgd", "optimizer.learning_rate=0.5"]),
                     str(tmp_path))
  ckpts = sorted(os.listdir(tmp_path / "checkpoints"))
  with pytest.raises(NonFiniteLossError, match=r"at step (2[3-9]|[3-6]\d) .*the last finite checkpoint is step 22;"):
    train_and_evaluate(make_cfg(["trainer.epochs=3", "trainer.resume=true", "optimizer=sgd",
                                 "optimizer.learning_rate=1e12"]), str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ckpts
  assert np.isfinite(jax.tree.leaves(_params(tmp_path))[0]).all()


def test_resume_with_a_different_optimizer_is_refused(make_cfg, tmp_path, monkeypatch):
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=1"]), str(tmp_path))
  resume = make_cfg(["trainer.epochs=2", "trainer.resume=true", "optimizer=sgd"])
  with pytest.raises(ConfigError, match=r"trainer.resume=true with a changed config \(optimizer.name: adam → sgd"):
    train_and_evaluate(resume, str(tmp_path))
  # Let through on purpose, the checkpoint's optimiser state still cannot be read into SGD's.
  monkeypatch.setenv("AE_ALLOW_CONFIG_CHANGE", "1")
  with pytest.raises(CheckpointError, match="does not fit the current config"):
    train_and_evaluate(resume, str(tmp_path))


def test_batch_not_divisible_by_devices(make_cfg, tmp_path):
  with pytest.raises(ConfigError, match="not divisible by the 4 devices"):
    train_and_evaluate(make_cfg(["dataset.batch_size=30"]), str(tmp_path))


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adadelta", "adamw"])
def test_every_optimizer_trains(make_cfg, tmp_path, optimizer):
  lr = {"sgd": 0.5, "adadelta": 10.0}.get(optimizer, 3e-3)
  summary = train_and_evaluate(make_cfg(QUIET + [f"optimizer={optimizer}", f"optimizer.learning_rate={lr}"]),
                               str(tmp_path))
  first = read_jsonl(tmp_path / "metrics.jsonl")[0]["train/loss"]
  assert summary["train/loss"] < first


def test_eval_values_are_written_only_where_computed(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=4", "trainer.eval_every_epochs=2"]), str(tmp_path))
  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in records if "eval/loss" in r] == [2 * SPE, 4 * SPE]
  assert [r["step"] for r in records if "time/epoch_s" in r] == [SPE, 2 * SPE, 3 * SPE, 4 * SPE]


def test_a_later_run_in_the_process_times_its_own_start_up(make_cfg, tmp_path):
  """time/to_first_step_s counts from process start for a process's first run only (imports included);
  a sweep's or a study's later runs count from their own start, not their predecessors'."""
  for name in ("earlier", "later"):
    summary = train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=5"]), str(tmp_path / name))
  assert 0 < summary["time/to_first_step_s"] < summary["time/total_s"]


def test_batch_level_terms_ignore_eval_padding(make_cfg, tmp_path):
  """360 test digits: one eval batch of 360 (no padding) and one of 400 (40 padded rows) agree."""
  sparse = QUIET + ["loss=sparse_kl", "model.code_activation=sigmoid", "model.output_activation=sigmoid",
                    "dataset.scale=unit", "trainer.max_steps=10"]
  exact = train_and_evaluate(make_cfg(sparse + ["trainer.eval_batch_size=360"]), str(tmp_path / "exact"))
  padded = train_and_evaluate(make_cfg(sparse + ["trainer.eval_batch_size=400"]), str(tmp_path / "padded"))
  assert padded["eval/sparsity"] == pytest.approx(exact["eval/sparsity"], rel=1e-5)
  assert padded["eval/loss"] == pytest.approx(exact["eval/loss"], rel=1e-5)


def test_init_from_takes_parameters_only_from_any_optimizer(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=10"]), str(tmp_path / "adam"))
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=0", "optimizer=sgd", f"trainer.init_from={tmp_path / 'adam'}"]),
                     str(tmp_path / "sgd"))
  for a, b in zip(_leaves(tmp_path / "sgd"), _leaves(tmp_path / "adam")):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match=r"do not fit this model \(.*encoder"):
    train_and_evaluate(make_cfg(QUIET + ["model.hidden=[16]", f"trainer.init_from={tmp_path / 'adam'}"]),
                       str(tmp_path / "other"))


def test_sigterm_in_an_epochs_last_chunk_keeps_its_evaluation(make_cfg, tmp_path, monkeypatch):
  overrides = QUIET + ["trainer.epochs=2", "trainer.checkpoint_min_interval_s=0"]
  train_and_evaluate(make_cfg(overrides), str(tmp_path / "ref"))
  write = JsonlWriter.write_scalars

  def write_and_signal(self, step, scalars):
    write(self, step, scalars)
    if step == 20 and "time/epoch_s" not in scalars:  # The chunk before epoch 1's last (22 steps, chunks of 5).
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(JsonlWriter, "write_scalars", write_and_signal)
  with pytest.raises(Interrupted):
    train_and_evaluate(make_cfg(overrides), str(tmp_path / "run"))
  monkeypatch.setattr(JsonlWriter, "write_scalars", write)
  train_and_evaluate(make_cfg(overrides + ["trainer.resume=true"]), str(tmp_path / "run"))
  evals = lambda d: [(r["step"], r["eval/loss"]) for r in read_jsonl(d / "metrics.jsonl") if "eval/loss" in r]
  assert evals(tmp_path / "run") == evals(tmp_path / "ref") and len(evals(tmp_path / "ref")) == 2


def test_lbfgs_trains_full_batch_with_its_line_search(make_cfg, tmp_path):
  full = ["dataset.batch_size=1436", "trainer.epochs=25", "trainer.figures=false", "evaluation.enabled=false"]
  lbfgs = train_and_evaluate(make_cfg(full + ["optimizer=lbfgs"]), str(tmp_path / "lbfgs"))
  adam = train_and_evaluate(make_cfg(full + ["optimizer.learning_rate=3e-3"]), str(tmp_path / "adam"))
  first = read_jsonl(tmp_path / "lbfgs" / "metrics.jsonl")[0]["train/loss"]
  assert lbfgs["train/loss"] < 0.8 * first and lbfgs["eval/loss"] < adam["eval/loss"]  # 25 steps, full batch.


def test_compiler_options_reach_the_runs_own_programs(make_cfg, tmp_path):
  """trainer.compiler_options are XLA options of the training chunks and the evaluation (here xla_dump_to,
  which makes XLA write every program it compiles with them), not of the process's other programs."""
  dump = tmp_path / "hlo"
  cfg = make_cfg(["trainer.max_steps=10", "trainer.figures=false", "evaluation.evaluators=[reconstruction]",
                  "trainer.compilation_cache=false", f"++trainer.compiler_options.xla_dump_to={dump}"])
  summary = train_and_evaluate(cfg, str(tmp_path / "run"))
  assert summary["step"] == 10
  modules = {name.split(".")[1] for name in os.listdir(dump) if name.startswith("module_")}
  # The training chunk, the evaluation loss, and the reconstruction evaluator's batched program.
  assert {"jit_train_chunk", "jit__evaluate_member", "jit_apply_batches"} <= modules, sorted(modules)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads resident memory from Linux's /proc")
def test_memory_freed_between_live_blocks_goes_back_to_the_os():
  """What a trim after compiling relies on: glibc keeps freed heap pages that live blocks surround (the
  compiler's working memory) until `malloc_trim` hands them back."""
  from ae_research import process  # pylint: disable=g-import-not-at-top
  if process._malloc_trim() is None:  # pylint: disable=protected-access
    pytest.skip("not glibc: release_freed_memory is a no-op here")
  resident_mib = lambda: int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024
  blocks = [bytes(2048) for _ in range(50_000)]  # 100 MB in malloc'd blocks (larger than pymalloc's 512 B).
  kept = blocks[::100]  # Every 100th stays alive, so the heap cannot shrink from its top.
  del blocks
  before = resident_mib()
  process.release_freed_memory()
  assert before - resident_mib() > 50, "the freed 99 MB stayed resident"
  assert len(kept) == 500


def test_unrolled_convolutions_on_cpu_get_the_memory_minimising_scheduler_unless_the_config_names_one(make_cfg):
  from ae_research.training.setup import CONV_SCHEDULER, setup  # pylint: disable=g-import-not-at-top
  conv = ["model=conv", "dataset=digits", "model.channels=[4,8]"]
  assert CONV_SCHEDULER in setup(make_cfg(conv), devices=1).compiler_options
  assert CONV_SCHEDULER not in setup(make_cfg(["model.hidden=[16]"]), devices=1).compiler_options
  assert CONV_SCHEDULER not in setup(make_cfg(conv + ["trainer.scan_unroll=rolled"]), devices=1).compiler_options
  named = setup(make_cfg(conv + ["++trainer.compiler_options.xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_DEFAULT"]),
                devices=1).compiler_options
  assert dict(named)["xla_cpu_scheduler_type"] == "CPU_SCHEDULER_TYPE_DEFAULT"
