"""Request bodies of the admin routes: parties and their changes, API keys and shard keys."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from actors.core.roles import Role, is_trading
from gateway.edge.text import SafeText
from gateway.schemas_fields import Commodity, PartyId, RegionCode, RoleIn, Strict

Kyc = Literal["PENDING", "VERIFIED", "REJECTED", "SUSPENDED"]
PAN = r"^[A-Z]{5}[0-9]{4}[A-Z]$"
GSTIN = r"^[0-9]{2}[A-Z0-9]{13}$"
MOBILE = r"^\+?[0-9 -]{10,20}$"


class PartyIn(Strict):
    """A counterparty. ``credit_limit_paise``: total notional exposure allowed (paise; null = none).
    PAN/GSTIN upper-case; mobile is stored as its last 10 digits."""

    party_id: PartyId
    name: SafeText | None = None
    role: RoleIn = Role.TRADER
    kyc_status: Kyc = "PENDING"
    sanctioned: bool = False
    pan: str | None = Field(None, pattern=PAN)
    gstin: str | None = Field(None, pattern=GSTIN)
    mobile: str | None = Field(None, pattern=MOBILE)
    country: str = Field("IN", pattern=r"^[A-Z]{2}$")
    credit_limit_paise: int | None = Field(None, ge=0, le=10**15)
    linked_parties: list[PartyId] = Field(default_factory=list, max_length=100)

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for ``persistence.parties.PartyRepository.create``."""
        d = self.model_dump()
        d["credit_limit"] = d.pop("credit_limit_paise")
        return d


class PartyPatch(Strict):
    """Fields to change on a party; absent fields are kept."""

    name: SafeText | None = None
    role: RoleIn | None = None
    kyc_status: Kyc | None = None
    sanctioned: bool | None = None
    pan: str | None = Field(None, pattern=PAN)
    gstin: str | None = Field(None, pattern=GSTIN)
    mobile: str | None = Field(None, pattern=MOBILE)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    credit_limit_paise: int | None = Field(None, ge=0, le=10**15)
    linked_parties: list[PartyId] | None = Field(None, max_length=100)

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent, keyed as ``PartyRepository.update`` expects."""
        d = self.model_dump(exclude_unset=True)
        if "credit_limit_paise" in d:
            d["credit_limit"] = d.pop("credit_limit_paise")
        for k in ("role", "kyc_status", "sanctioned", "country", "linked_parties"):
            if k in d and d[k] is None:
                d.pop(k)
        return d


class ApiKeyIn(Strict):
    """Issue a key. Trading roles (seller, buyer, trader) need ``party_id``."""

    party_id: PartyId | None = None
    roles: list[RoleIn] = Field(min_length=1, max_length=6)
    label: SafeText | None = None

    @model_validator(mode="after")
    def _party(self) -> ApiKeyIn:
        if is_trading(self.roles) and not self.party_id:
            raise ValueError("trading roles need party_id")
        return self


class ShardIn(Strict):
    """A shard key."""

    region: RegionCode
    commodity: Commodity
