"""0009_binary_events: events as MessagePack in ``body bytea``; JSON rows stay readable."""

from persistence.migrate import sql_step

revision = "0009"
down_revision = "0008"
upgrade = sql_step("0009_binary_events")
