"""The evaluators reproduce eval.json as the code before their redesign computed it (tests/golden/).

tests/golden/generate.py trained these five debug-sized runs with that code (commit 04cc751) and
kept their eval.json; here the same runs, with today's spelling of the same settings, must give the
same keys and the same values.
"""
import json
import os

import pytest

from ae_research import train_and_evaluate

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
COMMON = ["debug=default", "trainer.figures=false", "logger.progress=false", "evaluation.cache=false"]
PROBES = ["evaluation.linear_probe.max_train=2000", "evaluation.knn.max_train=2000", "evaluation.max_test=2000",
          "evaluation.retrieval.queries=200"]
RUNS = {
    "deep_ae_2d": ["experiment=deep_ae_2d", *PROBES],
    "vae_blocks_2d": ["experiment=vae_blocks_2d", "dataset.num_train=5120", "dataset.num_test=1024",
                      "evaluation.likelihood.samples=20", "evaluation.likelihood.max_test=500"],
    "dae_vincent2008": ["experiment=dae_vincent2008", *PROBES],
    "conv_colorize": ["experiment=conv_colorize", "dataset.size=16", "dataset.num_train=592", "dataset.num_test=148",
                      "model.channels=[4,8,8]", "model.output_shape=[16,16,3]", "trainer.max_steps=8",
                      "trainer.log_every_steps=4"],
    "contractive_rifai2011": ["experiment=contractive_rifai2011", "dataset=digits", "model.latent_dim=32",
                              "evaluation.retrieval.queries=200"],
}
# Keys later evaluators add to these runs (bits per dimension beside the IWAE NLL, issue 25).
ADDED = {"vae_blocks_2d": {"test/bits_per_dim"}}


@pytest.mark.parametrize("name", list(RUNS))
def test_eval_json_is_unchanged_by_the_evaluator_redesign(make_cfg, tmp_path, name):
  with open(os.path.join(GOLDEN, f"{name}.json")) as f:
    golden = json.load(f)["eval"]
  train_and_evaluate(make_cfg(RUNS[name] + COMMON, fast=False), str(tmp_path))
  with open(tmp_path / "eval.json") as f:
    now = json.load(f)
  assert set(now) - ADDED.get(name, set()) == set(golden)
  trained = golden.get("test/mse")
  if trained is not None and now["test/mse"] != pytest.approx(trained, rel=1e-4):
    # The run trains again here, and another CPU's arithmetic trains another model: on a 2026-12-03
    # machine the previous stop's code (3895fd0) gave deep_ae_2d test/mse 0.0381 against 0.0412, and
    # dae_vincent2008 differed too. The evaluators are then compared with nothing: say so, do not pass.
    pytest.skip(f"this machine trains another {name} (test/mse {now['test/mse']:.6g} vs the golden "
                f"{trained:.6g}): the golden eval.json does not apply")
  for key, want in golden.items():
    # Counted metrics flip with borderline examples: deep_ae_2d's raw-pixel probe, which no training
    # touches, gave 0.8075 against 0.8070 there (one test image of 2,000), and its retrieval precision@1
    # 0.240 against 0.265 (5 of 200 queries: cosine ranks of 2-D codes tie at the last digits).
    tolerance = 0.03 if key.startswith("retrieval/") else 2.5e-3 if key.startswith("probe/") else 1e-7
    assert now[key] == pytest.approx(want, rel=1e-5, abs=tolerance), key
