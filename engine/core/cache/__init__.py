"""Deciding once per clinical situation: the cache of engine runs keyed by the facts that
can change the answer (situations), and the argument that a projection keeps the answer (support)."""
