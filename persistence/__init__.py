"""Adapters: event store protocol and stores, read models, parties, API keys, exposure, data files, migrations."""
