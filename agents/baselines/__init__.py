"""Non-learning agents: random, oracle, OLTW follower."""
