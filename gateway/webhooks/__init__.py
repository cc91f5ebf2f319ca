"""Webhooks from the committed event log: endpoint API, signing secrets, the outbox dispatcher."""
