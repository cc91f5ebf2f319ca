-- Core event store, projections and snapshots (persistence/event_store.py maintains them).
-- Units: quantities integer kg, prices integer paise/kg, ts epoch milliseconds.

-- Every fact a shard records; (shard_id, seq) is gap-free per shard and fences stale writers.
CREATE TABLE events (
    shard_id       text        NOT NULL,
    seq            bigint      NOT NULL,
    type           text        NOT NULL,
    schema_version smallint    NOT NULL DEFAULT 1,
    payload        jsonb       NOT NULL,
    ts             bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard_id, seq)
);
CREATE INDEX events_type_idx ON events (type);

-- Registry of shards (actors/directory.py).
CREATE TABLE shards (
    shard_id   text PRIMARY KEY,
    region     text NOT NULL,
    commodity  text NOT NULL,
    status     text NOT NULL DEFAULT 'ACTIVE',      -- ACTIVE | DRAINED
    profile    text,
    node_id    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Snapshot of a shard's engine state after event seq.
CREATE TABLE snapshots (
    shard_id   text        NOT NULL,
    seq        bigint      NOT NULL,
    state      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard_id, seq)
);

-- Current state of every order (projection of the books).
CREATE TABLE orders (
    order_id        text PRIMARY KEY,
    shard_id        text    NOT NULL,
    party_id        text    NOT NULL,
    client_order_id text    NOT NULL,
    side            text    NOT NULL,
    commodity       text    NOT NULL,
    region          text    NOT NULL,
    quantity_kg     bigint  NOT NULL,
    open_kg         bigint  NOT NULL,
    reserved_kg     bigint  NOT NULL DEFAULT 0,
    allocated_kg    bigint  NOT NULL DEFAULT 0,
    cancelled_kg    bigint  NOT NULL DEFAULT 0,
    expired_kg      bigint  NOT NULL DEFAULT 0,
    price           bigint  NOT NULL,
    status          text    NOT NULL,
    created_ts      bigint,
    updated_ts      bigint,
    last_seq        bigint  NOT NULL,
    doc             jsonb   NOT NULL
);
CREATE INDEX orders_party_idx ON orders (party_id, client_order_id);
CREATE INDEX orders_shard_status_idx ON orders (shard_id, status);

-- Every trade: buyer, seller, quantity, price, score breakdown, risk decision, model versions.
CREATE TABLE allocations (
    allocation_id  text PRIMARY KEY,
    shard_id       text    NOT NULL,
    seq            bigint  NOT NULL,
    ts             bigint  NOT NULL,
    buy_order_id   text    NOT NULL,
    sell_order_id  text    NOT NULL,
    buyer_id       text    NOT NULL,
    seller_id      text    NOT NULL,
    taker_order_id text,
    quantity_kg    bigint  NOT NULL,
    price          bigint  NOT NULL,
    score          double precision,
    breakdown      jsonb,
    risk           jsonb,
    model_versions jsonb,
    reservation_id text
);
CREATE INDEX allocations_buyer_idx ON allocations (buyer_id);
CREATE INDEX allocations_seller_idx ON allocations (seller_id);
CREATE INDEX allocations_shard_seq_idx ON allocations (shard_id, seq);

-- Match proposals (NEGOTIATE) and reservations, latest state.
CREATE TABLE proposals (
    proposal_id   text PRIMARY KEY,
    shard_id      text   NOT NULL,
    seq           bigint NOT NULL,
    ts            bigint NOT NULL,
    buy_order_id  text   NOT NULL,
    sell_order_id text   NOT NULL,
    buyer_id      text,
    seller_id     text,
    quantity_kg   bigint NOT NULL,
    price         bigint NOT NULL,
    status        text   NOT NULL DEFAULT 'PROPOSED',   -- PROPOSED | REJECTED | ACCEPTED
    doc           jsonb  NOT NULL
);

CREATE TABLE reservations (
    reservation_id text PRIMARY KEY,
    proposal_id    text,
    shard_id       text   NOT NULL,
    seq            bigint NOT NULL,
    buy_order_id   text   NOT NULL,
    sell_order_id  text   NOT NULL,
    quantity_kg    bigint NOT NULL,
    price          bigint NOT NULL,
    hold_until     bigint,
    status         text   NOT NULL DEFAULT 'RESERVED',  -- RESERVED | RELEASED | CONFIRMED
    release_reason text
);
