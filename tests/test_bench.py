"""ae-bench --quick and ae-compare's command line (no timed assertions: numbers are reported, not judged)."""
import json
import math

import numpy as np
import pytest

from ae_research.bench.cli import run_bench
from ae_research.compare import main as compare_main

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.


def test_bench_quick_writes_every_measurement(tmp_path):
  result = run_bench(quick=True, out=str(tmp_path), population_sizes=(1, 2))
  saved = json.load(open(tmp_path / "bench.json"))
  assert saved["models"] == result["models"]
  assert {r["model"] for r in saved["models"]} == {"mlp_2d", "mlp_2d_streamed", "vae", "conv"}
  for row in saved["models"]:
    assert row["samples_per_s"] > 0 and row["compile_s"] > 0 and row["step_flops"] > 0
    assert 0 < row["fraction_of_peak"]
  assert saved["peak_flop_per_s"] > 0
  mlp = saved["mlp"]  # The loop, the trainer in process, ae-train as a subprocess; PyTorch where torch imports.
  assert all(mlp[f"{k}_samples_per_s"] > 0 for k in ("reference", "framework", "cli"))
  assert mlp["cli_over_reference"]["median"] > 0 and mlp["framework_over_reference"]["median"] > 0
  assert (mlp["torch"] is None) != (mlp["torch_skipped"] is None)
  assert mlp["peak_rss_mib"]["cli"] > 100  # ae-train's own process: JAX alone is more.
  assert [r["members"] for r in saved["population"]] == [1, 2]
  assert [r["run"] for r in saved["end_to_end"]] == ["cold", "warm"]
  for row in saved["end_to_end"]:  # A fresh process each: wall time covers start-up, which the phases do not.
    assert row["wall_s"] > row["compile"] + row["train"] > 0 and row["to_first_step"] > 0 and row["eval"] > 0
  conv = saved["conv_impl"]  # PyTorch rows where torch is importable, else the reason they are not there.
  assert conv["auto"]["samples_per_s"] > 0 and conv["xla"]["samples_per_s"] > 0 and conv["auto_over_xla"] > 0
  assert all(conv[impl]["peak_rss_mib"] > 100 for impl in ("auto", "xla"))  # Each run's own process: JAX alone is more.
  assert (conv["torch"] is None) != (conv["torch_skipped"] is None)
  gen = saved["generative"]  # Both sides' parameter counts where torch is importable: the networks must match.
  assert [r["model"] for r in gen["models"]] == ["vae", "vq_vae", "factor_vae"] and gen["image_shape"] == [16, 16, 1]
  assert (gen["torch_skipped"] is None) == all(r["torch"] is not None for r in gen["models"])
  for row in gen["models"]:
    assert row["params"] > 0 and row["samples_per_s"] > 0 and row["compile_s"] > 0 and row["peak_rss_mib"] > 100
    assert math.isfinite(row["samples_per_s"]) and row["all_samples_per_s"] == [row["samples_per_s"]]
    if row["torch"] is not None:
      assert row["torch_params"] == row["params"] and row["ours_over_torch_flush"] > 0
      assert all(row["torch"][k]["samples_per_s"] > 0 for k in ("default", "flush_denormal"))
  grid = saved["beta_grid"]
  assert grid["members"] == len(grid["betas"]) * len(grid["seeds"]) == len(grid["sequential"]["all_samples_per_s"])
  for side in ("population", "sequential"):
    assert all(math.isfinite(v) and v > 0 for v in (grid[side]["samples_per_s"], grid[side]["wall_s"]))
  assert grid["samples_per_s_ratio"] > 0 and grid["wall_ratio"] > 0
  table = (tmp_path / "bench.md").read_text()
  assert "| vq_vae (" in table and "ours / PyTorch-flush" in table and "β grid" in table
  assert "model.conv_impl=auto" in table and "peak RSS MiB" in table
  assert "| mlp_2d" in table and "population members K" in table and "`ae-train` subprocess, default logging" in table
  assert "End to end" in table and "| warm |" in table and "Peak RSS (MiB, median of the rounds" in table
  assert [r["metric"] for r in saved["metrics"]][:2] == ["disent/mig", "disent/modularity"]
  assert all(r["samples"] == 500 and r["seconds"] > 0 for r in saved["metrics"])
  assert "| disent/mig | 500 |" in table and "| samples/fid | 500 |" in table


def test_a_rows_peak_memory_is_its_own_process_high_water_mark():
  """The bench's peak RSS is the child's own (VmHWM while it runs): a child that touches 300 MiB reports at
  least that, one that allocates nothing far less, whatever this process holds."""
  import subprocess
  import sys
  from ae_research.bench.processes import run_json_script, run_measured
  big = "import time, numpy as np; a = np.ones(300 * 2**20 // 8); time.sleep(0.5); print('{\"n\": %d}' % a.size)"
  out, peak_big = run_measured([sys.executable, "-c", big])
  _, peak_small = run_measured([sys.executable, "-c", "pass"])
  assert out.strip() == '{"n": 39321600}' and peak_big >= 300 > peak_small >= 0
  with pytest.raises(subprocess.CalledProcessError):
    run_measured([sys.executable, "-c", "raise SystemExit(3)"])
  script = __file__.replace("test_bench.py", "conftest.py")  # Any Python file that prints no JSON would fail:
  with pytest.raises(ValueError):  # a script's last line must be its JSON result.
    run_json_script(sys.executable, script)


def test_compare_needs_runs(tmp_path):
  with pytest.raises(SystemExit, match="no finished runs"):
    compare_main([str(tmp_path)])
  with pytest.raises(SystemExit, match="not a directory"):
    compare_main([str(tmp_path / "missing")])


def test_torch_generative_builds_the_same_networks(tmp_path):
  """Where a Python with torch is at hand ($AE_BENCH_TORCH_PYTHON): one step of each model, whose PyTorch
  parameter count must be ours (the networks are equivalent layer by layer)."""
  from ae_research.bench import generative
  from ae_research.config import compose_config
  python, why = generative.torch_python()
  if python is None:
    pytest.skip(why)
  base, _, _ = generative.QUICK
  images = str(tmp_path / "images.npy")
  np.save(images, (np.random.default_rng(0).random((256, 16, 16, 1)) > 0.5).astype(np.float32))
  for name, (_, model, small) in generative.MODELS.items():
    cfg = compose_config(model + base + small)
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(generative.torch_spec(cfg)))
    out = generative.time_torch(python, images, str(spec), steps=1, flush_denormal=False)
    assert out["params"] == generative.param_count(cfg, (16, 16, 1)), name
    assert out["samples_per_s"] > 0 and math.isfinite(out["loss"])


def test_torch_spec_refuses_what_the_torch_script_does_not_build():
  from ae_research.bench import generative
  from ae_research.config import compose_config
  from ae_research.errors import ConfigError
  base, _, _ = generative.QUICK
  with pytest.raises(ConfigError, match="does not implement backbones MLPEncoder"):
    generative.torch_spec(compose_config(["experiment=beta_vae", "model/backbone=mlp", "dataset=digits"]))
  with pytest.raises(ConfigError, match="does not implement likelihood GaussianLikelihood"):
    generative.torch_spec(compose_config(["experiment=beta_vae", "model/likelihood=gaussian"] + base))


def test_a_missing_torch_python_skips_the_pytorch_rows_with_the_reason(tmp_path, monkeypatch):
  from ae_research.bench.conv import torch_python  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("AE_BENCH_TORCH_PYTHON", str(tmp_path / "no-such-python"))
  python, why = torch_python()
  if python is None:  # This Python has no torch either.
    assert "nor by $AE_BENCH_TORCH_PYTHON" in why
  else:
    assert python != str(tmp_path / "no-such-python") and why is None
