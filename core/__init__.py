"""The shared kernel every layer stands on: settings, the database and sessions, domain
errors, the audit chain and its sealer, the event outbox, validation of input, and the
FastAPI dependencies every router uses (session, caller, paging)."""
