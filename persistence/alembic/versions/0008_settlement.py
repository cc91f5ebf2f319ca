"""0008_settlement: the double-entry ledger and the settlement read models (docs/post-trade.md)."""

from persistence.migrate import sql_step

revision = "0008"
down_revision = "0006"
upgrade = sql_step("0008_settlement")
