"""The response-plans room: run cards (预案), what each incident type and severity needs
sent (so many engines, so many ambulances)."""
