"""An ex-post density of codes: a Gaussian mixture fitted to training codes after training, so any
autoencoder (a deterministic one included) can be sampled (Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders", Sec. 4: 10 components; Chadebec et al. 2022, pythae's GaussianMixtureSampler).

Fitted with scikit-learn's EM (diagonal covariances: a code of d dimensions then costs 2 d K numbers, and
the mixture is `distributions.GaussianMixture`, sampled on the device).
"""
import jax.numpy as jnp
import numpy as np

from ae_research.metrics.distributions import GaussianMixture


def fit_gaussian_mixture(codes, components: int = 10, seed: int = 0, max_iter: int = 200) -> GaussianMixture:
  """The `components`-component diagonal Gaussian mixture that EM fits to (N, d) codes."""
  from sklearn.mixture import GaussianMixture as SkMixture  # pylint: disable=g-import-not-at-top
  codes = np.asarray(codes, np.float64).reshape(len(codes), -1)
  fit = SkMixture(n_components=min(components, len(codes)), covariance_type="diag", max_iter=max_iter,
                  random_state=seed, reg_covar=1e-6).fit(codes)
  return GaussianMixture(means=jnp.asarray(fit.means_, jnp.float32),
                         log_vars=jnp.asarray(np.log(fit.covariances_), jnp.float32),
                         logits=jnp.asarray(np.log(fit.weights_), jnp.float32))
