-- Projections follow the log asynchronously (persistence/projector.py): a checkpoint per shard,
-- and the result of every place command for idempotent retries the shard no longer remembers.

-- The projector's position per shard: every event with seq <= seq is in the projections.
CREATE TABLE projector_checkpoints (
    shard_id   text PRIMARY KEY,
    seq        bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The result of each place command (ACCEPTED or REJECTED), unique per (party, client order id):
-- a retry answers it however long ago the order closed. result: the place result JSON
-- (docs/contracts.md); seq: the last event that changed it.
CREATE TABLE client_orders (
    party_id        text   NOT NULL,
    client_order_id text   NOT NULL,
    order_id        text,
    shard_id        text   NOT NULL,
    seq             bigint NOT NULL,
    status          text   NOT NULL,
    result          jsonb  NOT NULL,
    PRIMARY KEY (party_id, client_order_id)
);
CREATE INDEX client_orders_shard_idx ON client_orders (shard_id);
CREATE INDEX proposals_shard_idx ON proposals (shard_id);
CREATE INDEX reservations_shard_idx ON reservations (shard_id);

-- Existing shards start at checkpoint 0: the projector projects their whole log once (upserts keyed
-- by ids, so the rows written before this version are rewritten with the same values) and fills
-- client_orders.
INSERT INTO projector_checkpoints (shard_id, seq) SELECT shard_id, 0 FROM shards ON CONFLICT DO NOTHING;
