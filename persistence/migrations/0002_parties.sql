-- Counterparties: identity, role, KYC/sanctions status and credit limit (the risk engine's view).
-- Managed through the admin API (persistence/parties.py). Identifiers are stored normalised:
-- PAN and GSTIN upper-case without spaces, mobile as its last 10 digits. Money in paise.
CREATE TABLE IF NOT EXISTS parties (
    party_id       text PRIMARY KEY,
    name           text,
    role           text        NOT NULL DEFAULT 'trader'
                   CHECK (role IN ('seller', 'buyer', 'trader', 'operator', 'admin', 'data_scientist')),
    kyc_status     text        NOT NULL DEFAULT 'PENDING'
                   CHECK (kyc_status IN ('PENDING', 'VERIFIED', 'REJECTED', 'SUSPENDED')),
    sanctioned     boolean     NOT NULL DEFAULT false,
    country        text        NOT NULL DEFAULT 'IN' CHECK (country ~ '^[A-Z]{2}$'),   -- ISO 3166-1 alpha-2
    pan            text        CHECK (pan IS NULL OR pan ~ '^[A-Z]{5}[0-9]{4}[A-Z]$'),
    gstin          text        CHECK (gstin IS NULL OR gstin ~ '^[0-9]{2}[A-Z0-9]{13}$'),
    mobile         text        CHECK (mobile IS NULL OR mobile ~ '^[0-9]{10}$'),
    credit_limit   bigint      CHECK (credit_limit IS NULL OR credit_limit >= 0),        -- paise; NULL = none
    linked_parties text[]      NOT NULL DEFAULT '{}',                                    -- explicit links
    version        bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS parties_pan_idx ON parties (pan) WHERE pan IS NOT NULL;
CREATE INDEX IF NOT EXISTS parties_gstin_idx ON parties (gstin) WHERE gstin IS NOT NULL;
CREATE INDEX IF NOT EXISTS parties_gstin_pan_idx ON parties (substr(gstin, 3, 10)) WHERE gstin IS NOT NULL;
CREATE INDEX IF NOT EXISTS parties_mobile_idx ON parties (mobile) WHERE mobile IS NOT NULL;
CREATE INDEX IF NOT EXISTS parties_linked_idx ON parties USING gin (linked_parties);
