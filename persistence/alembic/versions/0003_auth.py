"""0003_auth: API keys, one row per issued key; only the sha256 of the token is stored."""

from persistence.migrate import sql_step

revision = "0003"
down_revision = "0002"
upgrade = sql_step("0003_auth")
