-- API keys: one row per issued key. Only the sha256 of the token is stored; the token itself is
-- shown once at issue time. party_id is NULL for staff keys (operator, admin, data_scientist).
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      text PRIMARY KEY,
    key_hash    text NOT NULL UNIQUE,
    party_id    text,
    roles       text[] NOT NULL,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_party_idx ON api_keys (party_id);
