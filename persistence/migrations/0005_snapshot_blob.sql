-- Large books do not fit jsonb's size limit: snapshots are stored as zlib-compressed JSON bytes.
-- codec: 'json' (state jsonb) | 'zlib-json' (blob = zlib(JSON text, UTF-8)).
ALTER TABLE snapshots ALTER COLUMN state DROP NOT NULL;
ALTER TABLE snapshots ADD COLUMN blob bytea;
ALTER TABLE snapshots ADD COLUMN codec text NOT NULL DEFAULT 'json';
ALTER TABLE snapshots ALTER COLUMN blob SET STORAGE EXTERNAL;  -- already compressed
