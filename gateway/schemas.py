"""Request and response schemas of the HTTP API (pydantic v2; unknown fields are rejected).

Units at the edge (ARCHITECTURE.md "Units"):

- Quantities are ``{"value": number, "unit": "kg"|"quintal"|"tonne"|"bale"|"candy"}`` and are converted
  exactly once, here, to integer kg with :func:`actors.core.units.to_kg` (``Quantity.kg``).
- Prices are integer paise per kg (``*_paise_per_kg``). 1 Rs/quintal == 1 paise/kg.
- Quality values are floats in the unit of the commodity spec (``actors.core.commodities``).
- Locations are WGS84 ``lat``/``lon`` plus an ISO 3166-2 ``region`` code (``IN-GJ``).
- Times are epoch milliseconds (``*_ms``/``valid_until``).

Input rules (docs/gateway.md "Input rules"): numbers are strict (JSON ``true`` or ``"100"`` is not a
number; integers are accepted where floats are, not the reverse; NaN/Infinity are refused); every
free-text field is :data:`gateway.edge.text.SafeText` (no control characters, NFC, bounded); a
quantity's unit must be one the commodity is traded in; quality values and range bounds lie within
the parameter's valid range (``actors.core.commodities``); a location lies in its region's widened
bounding box (``actors.core.regions``). Every violation is 422 ``validation-error``.

``to_command`` methods build the core commands; the gateway supplies ``ts`` (arrival time, epoch ms),
``party_id`` and ``linked_parties``.

The schemas live in :mod:`gateway.schemas_fields` (the building blocks), :mod:`gateway.schemas_orders`
(order routes) and :mod:`gateway.schemas_admin` (admin routes); this module re-exports them, so it
is the one import path, and holds :func:`to_jsonable` for actor results.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.schemas_admin import GSTIN as GSTIN
from gateway.schemas_admin import MOBILE as MOBILE
from gateway.schemas_admin import PAN as PAN
from gateway.schemas_admin import ApiKeyIn as ApiKeyIn
from gateway.schemas_admin import Kyc as Kyc
from gateway.schemas_admin import PartyIn as PartyIn
from gateway.schemas_admin import PartyPatch as PartyPatch
from gateway.schemas_admin import ShardIn as ShardIn
from gateway.schemas_fields import ID_PATTERN as ID_PATTERN
from gateway.schemas_fields import MAX_KG as MAX_KG
from gateway.schemas_fields import MAX_PRICE as MAX_PRICE
from gateway.schemas_fields import REGION_PATTERN as REGION_PATTERN
from gateway.schemas_fields import ClientOrderId as ClientOrderId
from gateway.schemas_fields import Commodity as Commodity
from gateway.schemas_fields import Location as Location
from gateway.schemas_fields import ParamName as ParamName
from gateway.schemas_fields import PartyId as PartyId
from gateway.schemas_fields import Place as Place
from gateway.schemas_fields import Price as Price
from gateway.schemas_fields import QualityRange as QualityRange
from gateway.schemas_fields import Quantity as Quantity
from gateway.schemas_fields import RegionCode as RegionCode
from gateway.schemas_fields import RoleIn as RoleIn
from gateway.schemas_fields import Strict as Strict
from gateway.schemas_fields import Unit as Unit
from gateway.schemas_orders import AcceptIn as AcceptIn
from gateway.schemas_orders import AmendIn as AmendIn
from gateway.schemas_orders import AvailabilityIn as AvailabilityIn
from gateway.schemas_orders import BatchIn as BatchIn
from gateway.schemas_orders import EmptyIn as EmptyIn
from gateway.schemas_orders import OrderIn as OrderIn
from gateway.schemas_orders import QualityRanges as QualityRanges
from gateway.schemas_orders import QualityTarget as QualityTarget
from gateway.schemas_orders import RequirementIn as RequirementIn
from gateway.schemas_orders import SearchIn as SearchIn
from gateway.schemas_orders import check_unit_for_id as check_unit_for_id


def to_jsonable(x: Any) -> Any:
    """Make actor results (dataclasses, enums, tuples) JSON-friendly."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "to_dict"):
        return to_jsonable(x.to_dict())
    if hasattr(x, "__dataclass_fields__"):
        return {f: to_jsonable(getattr(x, f)) for f in x.__dataclass_fields__}
    return str(x)
