-- Post-trade (docs/post-trade.md): the double-entry ledger (TigerBeetle's model) and the read
-- models of the settlement stream (contracts, deliveries, invoices, payments). The settlement
-- host writes them in the same transaction as its events (events.shard_id = 'settlement').
-- Money in paise, prices paise/kg, quantities kg, timestamps epoch milliseconds.

-- Accounts: balances stored; flags 2 = debits must not exceed credits, 4 = credits must not
-- exceed debits (actors/core/posttrade/ledger.py).
CREATE TABLE ledger_accounts (
    account_id      text PRIMARY KEY,               -- <party>:<kind>
    party_id        text   NOT NULL,
    kind            text   NOT NULL,                -- cash | receivable | payable | goods_in_transit | exposure
    flags           int    NOT NULL DEFAULT 0,
    debits_pending  bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    last_seq        bigint NOT NULL DEFAULT 0,
    CONSTRAINT debits_must_not_exceed_credits
        CHECK (flags & 2 = 0 OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT credits_must_not_exceed_debits
        CHECK (flags & 4 = 0 OR credits_pending + credits_posted <= debits_posted)
);
CREATE INDEX ledger_accounts_party_idx ON ledger_accounts (party_id);

-- Transfers: flags 2 = pending, 4 = post pending, 8 = void pending (pending_id names the pending one).
CREATE TABLE ledger_transfers (
    transfer_id    text PRIMARY KEY,                -- T<settlement seq>.<n>
    seq            bigint NOT NULL,                 -- the settlement event that made it
    debit_account  text   NOT NULL,
    credit_account text   NOT NULL,
    amount         bigint NOT NULL CHECK (amount >= 0),
    flags          int    NOT NULL DEFAULT 0,
    pending_id     text,
    code           text   NOT NULL,
    contract_id    text,
    ts             bigint NOT NULL,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account, seq);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account, seq);

-- One row per committed ledger batch; its deferred constraint trigger checks, at COMMIT, that the
-- ledger's debits equal its credits (pending and posted separately).
CREATE TABLE ledger_commits (
    seq       bigint PRIMARY KEY,                   -- last settlement seq of the batch
    transfers int    NOT NULL,
    ts        bigint NOT NULL
);

CREATE FUNCTION ledger_assert_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE dp numeric; cp numeric; dd numeric; cd numeric;
BEGIN
    SELECT coalesce(sum(debits_posted), 0), coalesce(sum(credits_posted), 0),
           coalesce(sum(debits_pending), 0), coalesce(sum(credits_pending), 0)
      INTO dp, cp, dd, cd FROM ledger_accounts;
    IF dp <> cp OR dd <> cd THEN
        RAISE EXCEPTION 'ledger unbalanced: posted % / %, pending % / %', dp, cp, dd, cd
            USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_balanced AFTER INSERT ON ledger_commits
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_assert_balanced();

-- Read models of the settlement stream (state after last_seq; doc = the API view).
CREATE TABLE contracts (
    contract_id    text PRIMARY KEY,
    allocation_id  text   NOT NULL UNIQUE,
    buyer_id       text   NOT NULL,
    seller_id      text   NOT NULL,
    commodity      text   NOT NULL,
    region         text   NOT NULL,
    shard_id       text   NOT NULL,
    quantity_kg    bigint NOT NULL,
    price          bigint NOT NULL,
    status         text   NOT NULL,
    settled_kg     bigint NOT NULL,
    remaining_kg   bigint NOT NULL,
    opened_at      bigint NOT NULL,
    delivery_until bigint NOT NULL,
    last_seq       bigint NOT NULL,
    doc            jsonb  NOT NULL
);
CREATE INDEX contracts_buyer_idx ON contracts (buyer_id, last_seq);
CREATE INDEX contracts_seller_idx ON contracts (seller_id, last_seq);

CREATE TABLE deliveries (
    delivery_id text PRIMARY KEY,
    contract_id text   NOT NULL,
    seq         bigint NOT NULL,
    doc         jsonb  NOT NULL
);
CREATE INDEX deliveries_contract_idx ON deliveries (contract_id);

CREATE TABLE invoices (
    invoice_id   text PRIMARY KEY,
    contract_id  text   NOT NULL,
    delivery_id  text   NOT NULL,
    buyer_id     text   NOT NULL,
    seller_id    text   NOT NULL,
    amount       bigint NOT NULL CHECK (amount >= 0),
    paid         bigint NOT NULL CHECK (paid >= 0),
    status       text   NOT NULL,
    issued_at    bigint NOT NULL,
    due_at       bigint NOT NULL,
    paid_at      bigint,
    overdue_at   bigint,
    defaulted_at bigint,
    last_seq     bigint NOT NULL,
    doc          jsonb  NOT NULL,
    CHECK (paid <= amount)
);
CREATE INDEX invoices_buyer_idx ON invoices (buyer_id, issued_at);
CREATE INDEX invoices_seller_idx ON invoices (seller_id, issued_at);

CREATE TABLE payments (
    buyer_id    text   NOT NULL,
    payment_ref text   NOT NULL,
    invoice_id  text   NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    paid_at     bigint NOT NULL,
    outstanding bigint NOT NULL,
    seq         bigint NOT NULL,
    PRIMARY KEY (buyer_id, payment_ref)
);
CREATE INDEX payments_invoice_idx ON payments (invoice_id);
