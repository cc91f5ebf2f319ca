"""0006_current_region_codes: shards keyed by superseded ISO 3166-2:IN codes merged into current ones."""

from persistence.migrate import sql_step

revision = "0006"
down_revision = "0005"
upgrade = sql_step("0006_current_region_codes")
