"""Supervised SAEs on PDE surrogates: labelled benchmark, training, baselines and interventions.

Modules: :mod:`benchmark_data` (labelled Burgers benchmark with counterfactuals), :mod:`model_fno` (the
benchmark's FNO), :mod:`training` (fit a :class:`saeno.sae.supervised.SupervisedSAE` with held-out label
combinations), :mod:`baselines` (ridge from labels, unsupervised SAE + probes, mean-difference steering),
:mod:`intervene` (change a label, splice into the FNO, score against the solver), :mod:`report` (per-sample
concept activations and named atoms for the concept report).
"""
