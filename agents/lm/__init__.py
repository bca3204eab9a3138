"""The language models of the LMM challenge: LM^V over score frames, LM^A over audio frames, and the few-pair
mapping between them (see :mod:`agents.lm.mapping`)."""

MAPPING_METHODS = ("regression", "predictive", "contrastive", "contrastive_mlp")  # here, so CLIs list them without torch
