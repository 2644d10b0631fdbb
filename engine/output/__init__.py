"""Writing results: one Result rendered as text, JSON, JSON Lines or CSV (render), text wrapped
to a terminal (wrap), and the progress line (progress). Imports core/ and base/, never io/."""
