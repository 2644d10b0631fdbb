"""The CDS Hooks service: the ASGI app, CDS Hooks requests into cases and Results into
cards, JWT trust, and the clinicians' feedback on cards."""
