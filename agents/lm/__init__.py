"""The language models of the LMM challenge: LM^V over score frames, LM^A over audio frames, and the few-pair
mapping between them (see :mod:`agents.lm.mapping`)."""
