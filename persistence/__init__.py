"""Adapters: event stores, read models, parties, API keys, exposure, data files, migrations."""
