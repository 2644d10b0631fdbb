"""The clinician at the terminal: the interview (what to ask, in what order, never twice)
and its console (prompts, why, unknown, the result)."""
