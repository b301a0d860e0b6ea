"""Supervised SAEs on PDE surrogates: labelled benchmark, training, baselines and interventions.

Modules: :mod:`benchmark_data` (labelled Burgers benchmark with counterfactuals), :mod:`model_fno` (the
benchmark's FNO, re-exported from :mod:`saeno.zoo.labelled`), :mod:`training` (fit a :class:`saeno.sae.supervised.SupervisedSAE` with held-out label
combinations), :mod:`baselines` (ridge from labels, unsupervised SAE + probes, mean-difference steering),
:mod:`intervene` (change a label, splice into the FNO, score against the solver), :mod:`identifiability`
(how far any edit that sees only the sample can get: the floor of a counterfactual target), :mod:`report` (per-sample
concept activations and named atoms for the concept report).
"""
