"""0008_webhooks: webhook endpoints, signing secrets, outbox cursors and deliveries."""

from persistence.migrate import sql_step

revision = "0008"
down_revision = "0007"
upgrade = sql_step("0008_webhooks")
