"""Writes tests/golden/<name>.json: the eval.json of four experiments' debug-sized runs, as the code
before the evaluator redesign (issue 22) computed them. tests/test_golden_eval.py trains the same runs
and checks that today's eval.json has the same keys and values.

Run from the repository root, once, on the code whose numbers are the reference:
    .venv/bin/python tests/golden/generate.py
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import conftest  # noqa: E402  (the suite's XLA flags and devices: the golden values are computed under them)

from ae_research import train_and_evaluate  # noqa: E402
from ae_research.config import compose_config  # noqa: E402

COMMON = ["debug=default", "trainer.figures=false", "logger.progress=false", "evaluation.cache=false"]
# name -> (overrides as the old config spelt them)
RUNS = {
    "deep_ae_2d": ["experiment=deep_ae_2d", "evaluation.probe_max_train=2000", "evaluation.max_test=2000",
                   "evaluation.retrieval_queries=200"],
    "vae_blocks_2d": ["experiment=vae_blocks_2d", "dataset.num_train=5120", "dataset.num_test=1024",
                      "evaluation.iwae_samples=20", "evaluation.iwae_max_test=500"],
    "dae_vincent2008": ["experiment=dae_vincent2008", "evaluation.probe_max_train=2000", "evaluation.max_test=2000",
                        "evaluation.retrieval_queries=200"],
    "conv_colorize": ["experiment=conv_colorize", "dataset.size=16", "dataset.num_train=592", "dataset.num_test=148",
                      "model.channels=[4,8,8]", "model.output_shape=[16,16,3]", "trainer.max_steps=8",
                      "trainer.log_every_steps=4"],
    "contractive_rifai2011": ["experiment=contractive_rifai2011", "dataset=digits", "model.latent_dim=32",
                              "evaluation.retrieval_queries=200"],
}


def main():
  out_dir = os.path.dirname(os.path.abspath(__file__))
  for name, overrides in RUNS.items():
    with tempfile.TemporaryDirectory() as workdir:
      train_and_evaluate(compose_config(overrides + COMMON), workdir)
      with open(os.path.join(workdir, "eval.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
      json.dump({"old_overrides": overrides + COMMON, "eval": metrics}, f, indent=2, sort_keys=True)
    print(name, len(metrics), "metrics")


if __name__ == "__main__":
  main()
