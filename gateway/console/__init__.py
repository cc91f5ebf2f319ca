"""The web console at ``/ui``: trader and operator pages over the gateway's own API and stream.

Server-side Jinja2 templates (:mod:`gateway.console.pages`) plus a few small scripts of our own in
``static/`` and plotly.js as shipped inside the ``plotly`` PyPI package: nothing is fetched from
the internet at run time and there is no JavaScript build step. The browser keeps the API key in
``sessionStorage`` (gone when the tab closes; never in a URL or a cookie) and sends it as
``Authorization: Bearer`` on every API call and as the WebSocket's first ``auth`` message.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the console's pages (``/ui``...) and its read endpoints (:mod:`gateway.console.reads`)."""
    from gateway.console import pages, reads

    app.include_router(reads.router)
    app.include_router(pages.router)
