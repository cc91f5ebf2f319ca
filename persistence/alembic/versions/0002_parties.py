"""0002_parties: counterparties (identity, role, KYC and sanctions status, credit limit)."""

from persistence.migrate import sql_step

revision = "0002"
down_revision = "0001"
upgrade = sql_step("0002_parties")
