"""Response models of the HTTP API (pydantic v2), so the OpenAPI document says what each route
returns, plus the error responses each route declares.

Units as everywhere in the API: quantities integer kg (``*_kg``), prices integer paise per kg
(``price``), times epoch ms (``ts``, ``created_ts``, ``hold_until``). Models allow extra members
(``extra="allow"``): a newer server may add fields, never remove or retype the declared ones.

Errors are ``application/problem+json`` (RFC 9457) bodies described by :class:`Problem`;
:func:`errors` builds a route's ``responses=`` declaration from the status codes it really
answers (``gateway.problems.install_openapi`` gives them the problem+json media type).

The models live in :mod:`gateway.responses_problems` (the base :class:`Out` and the errors),
:mod:`gateway.responses_orders` (orders, negotiation, allocations), :mod:`gateway.responses_market`
(market data) and :mod:`gateway.responses_admin` (admin and ops); this module re-exports them, so it
is the one import path.
"""

from __future__ import annotations

from gateway.responses_admin import ApiKeyOut as ApiKeyOut
from gateway.responses_admin import ApiKeyPage as ApiKeyPage
from gateway.responses_admin import Health as Health
from gateway.responses_admin import IssuedKey as IssuedKey
from gateway.responses_admin import PartyLinks as PartyLinks
from gateway.responses_admin import PartyOut as PartyOut
from gateway.responses_admin import PartyPage as PartyPage
from gateway.responses_admin import Ready as Ready
from gateway.responses_admin import Revoked as Revoked
from gateway.responses_admin import RiskHealth as RiskHealth
from gateway.responses_admin import ShardOut as ShardOut
from gateway.responses_admin import ShardPage as ShardPage
from gateway.responses_market import CandidateOut as CandidateOut
from gateway.responses_market import DepthOut as DepthOut
from gateway.responses_market import SearchOut as SearchOut
from gateway.responses_market import TopOut as TopOut
from gateway.responses_market import TradeOut as TradeOut
from gateway.responses_market import TradesOut as TradesOut
from gateway.responses_orders import AcceptResult as AcceptResult
from gateway.responses_orders import AllocationDetail as AllocationDetail
from gateway.responses_orders import AllocationOut as AllocationOut
from gateway.responses_orders import AllocationPage as AllocationPage
from gateway.responses_orders import AmendResult as AmendResult
from gateway.responses_orders import Audit as Audit
from gateway.responses_orders import AuditEvent as AuditEvent
from gateway.responses_orders import BatchResult as BatchResult
from gateway.responses_orders import CancelResult as CancelResult
from gateway.responses_orders import ConfirmResult as ConfirmResult
from gateway.responses_orders import OrderOut as OrderOut
from gateway.responses_orders import OrderPage as OrderPage
from gateway.responses_orders import PlaceResult as PlaceResult
from gateway.responses_orders import ProposalOut as ProposalOut
from gateway.responses_orders import ProposalPage as ProposalPage
from gateway.responses_orders import RejectResult as RejectResult
from gateway.responses_orders import ReleaseResult as ReleaseResult
from gateway.responses_orders import ReservationOut as ReservationOut
from gateway.responses_orders import RiskOut as RiskOut
from gateway.responses_problems import AUTHED as AUTHED
from gateway.responses_problems import BODY as BODY
from gateway.responses_problems import FieldError as FieldError
from gateway.responses_problems import Out as Out
from gateway.responses_problems import Problem as Problem
from gateway.responses_problems import errors as errors
