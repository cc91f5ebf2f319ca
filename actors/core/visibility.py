"""Who may see an order (pure): the one visibility rule of matching, depth, search, streams and trades.

An order is visible to a viewer when it is ``PUBLIC``, or when the viewer is a party on its
allow-list, or the viewer is the party that placed it. A viewer without a party (staff keys,
anonymous depth) sees ``PUBLIC`` orders only. Any visibility other than ``PUBLIC`` counts as private
(fail closed). Something that involves several orders (a trade, a reservation) is visible when every
one of its orders is.
"""

from __future__ import annotations

from collections.abc import Collection

PUBLIC = "PUBLIC"
PRIVATE = "PRIVATE"


def visible_to(visibility: str, allow_list: Collection[str], owner: str | None, viewer: str | None) -> bool:
    """True when ``viewer`` (a party id, or None for no party) may see an order with ``visibility``,
    ``allow_list`` (party ids) placed by ``owner``."""
    if visibility == PUBLIC:
        return True
    return viewer is not None and (viewer == owner or viewer in allow_list)
