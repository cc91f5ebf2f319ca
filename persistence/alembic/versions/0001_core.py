"""0001_core: Core event store, projections and snapshots (persistence/event_store.py maintains them)."""

from persistence.migrate import sql_step

revision = "0001"
down_revision = None
upgrade = sql_step("0001_core")
