"""0007_settlement: the double-entry ledger and the settlement read models (docs/post-trade.md)."""

from persistence.migrate import sql_step

revision = "0007"
down_revision = "0006"
upgrade = sql_step("0007_settlement")
