"""0009_projections: projector checkpoints and the client_orders idempotency projection."""

from persistence.migrate import sql_step

revision = "0009"
down_revision = "0008"
upgrade = sql_step("0009_projections")
