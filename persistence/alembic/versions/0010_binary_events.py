"""0010_binary_events: events as MessagePack in ``body bytea``; JSON rows stay readable."""

from persistence.migrate import sql_step

revision = "0010"
down_revision = "0009"
upgrade = sql_step("0010_binary_events")
