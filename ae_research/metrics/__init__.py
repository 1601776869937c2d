"""One library of pure metric functions that loss terms and evaluators share (per example where defined).

- `likelihoods`: log-likelihoods of data under decoder outputs (Bernoulli, Gaussian, discretised
  logistic), MSE and PSNR;
- `distributions`: the posterior and prior objects (diagonal Gaussian, standard normal, mixtures)
  with `sample`, `log_prob` and `kl`;
- `bounds`: the ELBO and the importance-weighted bound;
- `divergences`: MMD, total-correlation estimators, DIP-VAE's moment penalties;
- `disentanglement`: MIG, DCI, SAP, modularity; `ground_truth`: the FactorVAE and βVAE scores, which sample
  their own batches from a ground-truth sampler; `codes`: active units, Gaussian total correlation;
- `sample_quality`: FID, KID, precision/recall, density/coverage on feature vectors.

Everything here is a pure function of arrays (jit-able unless its docstring says otherwise): no
model, no config, no I/O.
"""
