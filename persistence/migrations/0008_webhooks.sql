-- Webhooks (docs/webhooks.md): endpoints, their signing secrets, the outbox cursor per event stream,
-- and one delivery row per (endpoint, event) with its retry state. Times: timestamptz (database clock).

-- A party's registered receiver: HTTPS URL (plain HTTP only for loopback) and event categories.
CREATE TABLE webhook_endpoints (
    endpoint_id text PRIMARY KEY,
    party_id    text        NOT NULL,
    url         text        NOT NULL,
    categories  text[]      NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_party_idx ON webhook_endpoints (party_id);

-- Signing secrets, encrypted (Fernet, key outside the database: gateway/webhooks/secrets.py).
-- expires_at NULL = current; a rotated-out secret keeps signing until expires_at (grace period).
CREATE TABLE webhook_secrets (
    endpoint_id text        NOT NULL REFERENCES webhook_endpoints (endpoint_id) ON DELETE CASCADE,
    secret_no   int         NOT NULL,
    ciphertext  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    PRIMARY KEY (endpoint_id, secret_no)
);

-- The outbox checkpoint: every event of stream_id with seq <= last_seq has its delivery rows.
CREATE TABLE webhook_cursors (
    stream_id  text        PRIMARY KEY,
    last_seq   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One message to one endpoint: status pending -> delivered | dead. attempts counts the tries made;
-- next_attempt_at is when a dispatcher may try (also the lease of a claimed row); lease is the
-- claiming dispatcher's token, so a stale dispatcher cannot record an outcome.
CREATE TABLE webhook_deliveries (
    delivery_id     bigserial   PRIMARY KEY,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (endpoint_id) ON DELETE CASCADE,
    stream_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    event_type      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',   -- pending | delivered | dead
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease           uuid,
    last_status     int,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    UNIQUE (endpoint_id, stream_id, seq)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (endpoint_id, status, delivery_id);
