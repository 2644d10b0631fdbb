"""Writing results: one Result rendered as text, JSON, JSON Lines or CSV, and the progress
line. Imports core/ and base/, never io/."""
