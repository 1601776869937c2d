"""Generative autoencoders composed from parts in config (`composed.GenerativeAutoencoder`): backbones
(`backbones`, `benchmark_nets`), latents, priors, likelihoods and FactorVAE's discriminator (`adversary`).

`GENERATIVE_EXPERIMENTS` names the conf/experiment files of this family (each trains with debug=default
and as a population; their reproduction studies are not written yet).
"""
from ae_research.models.generative.adversary import Adversary, FactorDiscriminator
from ae_research.models.generative.composed import GenerativeAutoencoder

GENERATIVE_EXPERIMENTS = ("beta_vae", "annealed_vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii",
                          "wae_mmd", "info_vae", "iwae", "vq_vae", "rae", "vamp_vae")

__all__ = ["Adversary", "FactorDiscriminator", "GenerativeAutoencoder", "GENERATIVE_EXPERIMENTS"]
