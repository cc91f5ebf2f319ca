"""0009_webhooks: webhook endpoints, signing secrets, outbox cursors and deliveries."""

from persistence.migrate import sql_step

revision = "0009"
down_revision = "0006"
upgrade = sql_step("0009_webhooks")
