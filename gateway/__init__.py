"""The gateway: FastAPI app, edge validation, auth, idempotency, limits, batching, streams, CLI, replay."""
