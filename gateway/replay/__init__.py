"""Replay of real Agmarknet market data through the HTTP API (``tradedesk replay``).

Modules, one job each:

- :mod:`~gateway.replay.locations`: the one locator of Agmarknet markets (state, district, market ->
  lat/lon and ISO 3166-2 region);
- :mod:`~gateway.replay.quality`: HVI cotton quality and AGMARK ranges of the other commodities;
- :mod:`~gateway.replay.plan`: parties and per-day orders from market rows (pure and seeded);
- :mod:`~gateway.replay.client`: API paths from OpenAPI, an HTTP client with retries;
- :mod:`~gateway.replay.stats`: counters filled from the API's answers;
- :mod:`~gateway.replay.run`: the async replay loop (parties, keys, orders, negotiation);
- :mod:`~gateway.replay.summary`: the summary as JSON and as a table;
- :mod:`~gateway.replay.cli`: the ``tradedesk replay`` command.

The files are read by the one Agmarknet reader, :mod:`persistence.agmarknet`.
"""
