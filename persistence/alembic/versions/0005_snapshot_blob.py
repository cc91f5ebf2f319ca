"""0005_snapshot_blob: snapshots stored as zlib-compressed JSON bytes."""

from persistence.migrate import sql_step

revision = "0005"
down_revision = "0004"
upgrade = sql_step("0005_snapshot_blob")
