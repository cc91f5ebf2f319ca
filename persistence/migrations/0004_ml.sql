-- Risk-model data (ml/): the settlement ledger the payment-history features are built from, and the
-- shadow-scoring records of challenger models. Money in paise, timestamps epoch milliseconds.

-- One row per invoice a buyer owes: issued at invoiced_ts, due at due_ts, paid (in one payment of
-- paid_amount) at paid_ts, NULL while unpaid. ml/features.py history_from_invoices() turns a party's
-- rows into the six-month credit history the payment-default and credit-limit models use.
CREATE TABLE IF NOT EXISTS ml_settlements (
    invoice_id    text PRIMARY KEY,
    party_id      text   NOT NULL,                 -- the buyer who owes
    allocation_id text,                            -- the trade invoiced, when there is one
    invoiced_ts   bigint NOT NULL,
    due_ts        bigint NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    paid_ts       bigint,
    paid_amount   bigint NOT NULL DEFAULT 0 CHECK (paid_amount >= 0)
);
CREATE INDEX IF NOT EXISTS ml_settlements_party_idx ON ml_settlements (party_id, invoiced_ts);

-- Shadow scoring: for a sampled fraction of scored rows, the champion's score (which decided) and
-- the challenger's (recorded only). A/B comparison reads this table.
CREATE TABLE IF NOT EXISTS ml_shadow_scores (
    id                 bigserial PRIMARY KEY,
    ts                 bigint           NOT NULL,  -- when scored, epoch ms
    model              text             NOT NULL,  -- payment_default | order_anomaly | credit_limit
    subject            text             NOT NULL,  -- party id, or row key of the scored batch
    champion_version   text             NOT NULL,
    challenger_version text             NOT NULL,
    champion_score     double precision NOT NULL,
    challenger_score   double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS ml_shadow_scores_model_idx ON ml_shadow_scores (model, ts);
