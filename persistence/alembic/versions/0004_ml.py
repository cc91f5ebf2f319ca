"""0004_ml: risk-model data (settlement ledger for the payment features, shadow scores)."""

from persistence.migrate import sql_step

revision = "0004"
down_revision = "0003"
upgrade = sql_step("0004_ml")
