"""Loss terms against independent numpy computations."""
import jax.numpy as jnp
import numpy as np
import pytest

from ae_research.errors import ConfigError
from ae_research.losses import BinaryCrossEntropy, LossInputs, Objective, SquaredError


def _ctx(recon, target, logits=None, mask=None):
  return LossInputs(inputs=target, target=target, recon=recon, aux={"logits": logits}, mask=mask)


def test_squared_error_mean_and_sum():
  rng = np.random.default_rng(0)
  recon, target = rng.normal(size=(3, 4, 4, 1)), rng.normal(size=(3, 4, 4, 1))
  sq = (recon - target) ** 2
  np.testing.assert_allclose(SquaredError("mean")(_ctx(jnp.array(recon), jnp.array(target))),
                             sq.reshape(3, -1).mean(1), rtol=1e-6)
  np.testing.assert_allclose(SquaredError("sum")(_ctx(jnp.array(recon), jnp.array(target))),
                             sq.reshape(3, -1).sum(1), rtol=1e-6)


def test_bce_from_logits_matches_formula_and_is_stable():
  rng = np.random.default_rng(1)
  logits, target = rng.normal(size=(2, 5)) * 3, rng.uniform(size=(2, 5))
  p = 1 / (1 + np.exp(-logits))
  expected = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean(1)
  got = BinaryCrossEntropy()(_ctx(jnp.array(p), jnp.array(target), jnp.array(logits)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Saturated logits: a naive log(sigmoid) gives inf; the logit form stays finite and exact.
  extreme = BinaryCrossEntropy("sum")(_ctx(jnp.zeros((1, 2)), jnp.array([[0.0, 1.0]]), jnp.array([[200.0, -200.0]])))
  np.testing.assert_allclose(extreme, [400.0], rtol=1e-6)


def test_bce_requires_sigmoid_output():
  class Tanh:
    output_activation = "tanh"
  with pytest.raises(ConfigError, match="output_activation=sigmoid"):
    BinaryCrossEntropy().check(Tanh())
  objective = Objective({"bce": BinaryCrossEntropy()})
  with pytest.raises(ConfigError, match=r"^loss.terms.bce: binary cross-entropy needs model.output_activation=sigmoid"):
    objective.check(Tanh(), ["code", "logits"], has_labels=False)


def test_a_term_reading_an_output_the_model_lacks_is_a_config_error():
  class Plain:
    output_activation = "sigmoid"
  from ae_research.losses import GaussianKL  # pylint: disable=g-import-not-at-top
  objective = Objective({"bce": BinaryCrossEntropy(), "kl": GaussianKL()})
  with pytest.raises(ConfigError, match=r"^loss.terms.kl reads kl, which model Plain does not produce \(its outputs: "
                                        r"code, logits\)"):
    objective.check(Plain(), ["code", "logits"], has_labels=False)


def test_objective_weights_terms_and_masks_examples():
  recon, target = jnp.array([[1.0], [3.0], [100.0]]), jnp.zeros((3, 1))
  objective = Objective({"a": SquaredError("sum"), "b": SquaredError("sum")}, weights={"a": 2.0})
  mask = jnp.array([1.0, 1.0, 0.0])  # The third example is padding and must not count.
  total, metrics = objective(_ctx(recon, target, mask=mask))
  assert float(metrics["a"]) == pytest.approx(5.0)  # (1 + 9) / 2
  assert float(total) == pytest.approx(2.0 * 5.0 + 1.0 * 5.0)
  summed = Objective({"a": SquaredError("sum")}, batch_reduction="sum")
  assert float(summed(_ctx(recon, target))[0]) == pytest.approx(10010.0)  # Training: the plain batch sum.
  summed.reference_batch_size = 128  # Evaluation: per training-sized batch, whatever the eval batch size.
  assert float(summed(_ctx(recon, target, mask=mask))[0]) == pytest.approx(5.0 * 128)


def test_objective_rejects_weights_for_unknown_terms():
  with pytest.raises(ConfigError, match="name no term"):
    Objective({"mse": SquaredError()}, weights={"kl": 1.0})
