"""Request and response models of ``/v1/webhooks`` (pydantic v2; requests reject unknown fields).

Times in responses are ISO 8601 (database clock); seqs are the event stream's gap-free sequence
numbers; a secret appears only in the response that created it (create, rotate).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from actors.core.webhooks import CATEGORIES, MAX_URL_LENGTH, url_problem
from gateway.edge.text import SafeText, TextRule
from gateway.responses import Out
from gateway.schemas import ID_PATTERN, Strict

Category = Literal["allocation", "contract", "delivery", "invoice", "payment", "overdue"]
assert Category.__args__ == CATEGORIES  # type: ignore[attr-defined]
DeliveryStatus = Literal["pending", "delivered", "dead"]
StreamId = Annotated[str, Field(pattern=ID_PATTERN, description="event stream: a shard id or settlement")]


class WebhookIn(Strict):
    """Register an endpoint: an https URL (plain http only for 127.0.0.1, ::1, localhost; no
    credentials in it) and the event categories it receives."""

    url: Annotated[str, TextRule(MAX_URL_LENGTH, min_length=1)]
    categories: list[Category] = Field(min_length=1, max_length=len(CATEGORIES))
    description: SafeText | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        problem = url_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("categories")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each category once")
        return v


class RedeliverIn(Strict):
    """Send again every event of ``stream`` from ``from_seq`` on that the endpoint receives."""

    stream: StreamId
    from_seq: int = Field(ge=1, le=2**62)


class WebhookOut(Out):
    """A registered endpoint (never its secret)."""

    endpoint_id: str
    party_id: str
    url: str
    categories: list[str]
    description: str | None = None
    created_at: str | None = None


class CreatedWebhook(WebhookOut):
    """A new endpoint; ``secret`` (``whsec_...``) is in this response only."""

    secret: str | None = Field(None, description="whsec_<base64>; shown once (null in a replay)")
    secret_shown_once: bool = True


class RotatedSecret(Out):
    """A new signing secret; the previous one signs too until ``previous_expires_at``."""

    endpoint_id: str
    secret: str | None = Field(None, description="whsec_<base64>; shown once (null in a replay)")
    secret_shown_once: bool = True
    previous_expires_at: str | None = None


class WebhookPage(Out):
    """The party's endpoints, oldest first."""

    items: list[WebhookOut]


class DeletedWebhook(Out):
    """A deleted endpoint (its secrets and deliveries are gone with it)."""

    endpoint_id: str
    deleted: bool


class DeliveryOut(Out):
    """One event sent (or to be sent) to one endpoint, with its retry state."""

    delivery_id: int
    endpoint_id: str
    stream_id: str
    seq: int
    event_type: str
    status: str = Field(description="pending | delivered | dead")
    attempts: int
    last_status: int | None = Field(None, description="HTTP status of the last try (null: no answer)")
    last_error: str | None = None
    next_attempt_at: str | None = None
    created_at: str | None = None
    last_attempt_at: str | None = None
    delivered_at: str | None = None


class DeliveryPage(Out):
    """Deliveries by id; pass ``next_after`` as ``after`` for the next page (null: no more)."""

    items: list[DeliveryOut]
    next_after: int | None = None


class Redelivery(Out):
    """What a redelivery queued: ``queued`` deliveries for events up to ``through_seq``; ``more``:
    call again from ``through_seq + 1``."""

    endpoint_id: str
    stream: str
    from_seq: int
    queued: int
    through_seq: int | None = None
    more: bool
