"""The clinical reviewer's tools: rules in plain language and their checks (views), the
exhaustive walk of the fact space (check), text and HTML reports, sign-off, and scenarios.

May use the batch to run a corpus; never the clinician's or the service's rooms."""
