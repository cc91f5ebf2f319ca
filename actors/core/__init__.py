"""The pure matching kernel: no Ray, asyncpg, Redis, FastAPI, file or clock access (ARCHITECTURE.md)."""
