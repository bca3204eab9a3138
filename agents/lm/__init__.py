"""The language models of the LMM challenge: LM^V over score frames, LM^A over audio frames, and the few-pair
mapping between them (see :mod:`agents.lm.mapping`)."""

MAPPING_METHODS = ("regression", "predictive", "contrastive", "contrastive_mlp")  # here, so CLIs list them without torch
# The rewards a run can train with: the env's own, or a closed loop judged by the modalities' models
# (agents.lm.reward): LM^A's likelihood, h against the score, the agent's sound mapped against LM^V's score.
REWARDS = ("env", "lm", "score", "lm-score", "lm-margin", "lm-contrast")
# judged through LM^A, the K-pair mapping and LM^V (agents.lm.reward.MappedAgreement), each with its ``contrast``
MAPPED_REWARDS = {"lm-score": None, "lm-margin": "margin", "lm-contrast": "infonce"}
