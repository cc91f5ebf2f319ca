-- Events are stored in binary: the typed payload as MessagePack (actors/core/events.py
-- payload_to_msgpack, fields as a map keyed by name) in body bytea, appended by binary COPY.
-- Rows written before this migration keep their JSON in payload (jsonb) and are read as they are:
-- a row has exactly one of body (MessagePack) and payload (JSON); readers decode both
-- (persistence/event_store.py stored_payload). No row is rewritten, so the migration is instant on
-- any data directory (docs/contracts.md, "Storage format").
ALTER TABLE events ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE events ADD COLUMN body bytea;
-- NOT VALID: existing rows (payload set, body NULL) are not re-scanned; every new row is checked.
ALTER TABLE events ADD CONSTRAINT events_one_payload CHECK ((body IS NULL) <> (payload IS NULL)) NOT VALID;
-- The type index cost every append a second B-tree insert; its one reader (recent rejections, the
-- console) gets a partial index that only rejections pay for.
DROP INDEX IF EXISTS events_type_idx;
CREATE INDEX events_rejects_idx ON events (ts) WHERE type IN ('ORDER_REJECTED', 'COMMAND_REJECTED');
