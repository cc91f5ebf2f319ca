-- Superseded ISO 3166-2:IN codes -> current codes (actors/core/regions.py REGION_ALIASES):
-- IN-OR -> IN-OD (Odisha), IN-CT -> IN-CG (Chhattisgarh), IN-TG -> IN-TS (Telangana),
-- IN-UT -> IN-UK (Uttarakhand). Shards keyed by an old code (e.g. IN-TG.cotton, from replays before the
-- region table was unified) are merged into the current shard (IN-TS.cotton):
--   * the old shard's events are appended after the current shard's last seq, in their own order, so
--     both logs stay gap-free (1..n) and no event is lost; ids inside payloads keep their old text
--     (O-IN-TG.cotton-5 stays a distinct id; actors.core.ids.shard_of maps it to IN-TS.cotton);
--   * the region inside ORDER_ACCEPTED payloads and the orders projection becomes the current code;
--   * projections move to the current shard id; snapshots of both shards are dropped, so the merged
--     shard recovers once from its full log and snapshots again.
-- Run with the server stopped (migrations run at start-up, before any shard starts).
DO $$
DECLARE
    alias record;
    old_shard record;
    new_shard text;
    offset_seq bigint;
BEGIN
    FOR alias IN SELECT * FROM (VALUES ('IN-OR', 'IN-OD'), ('IN-CT', 'IN-CG'), ('IN-TG', 'IN-TS'),
                                       ('IN-UT', 'IN-UK')) AS a(old_code, new_code) LOOP
        FOR old_shard IN
            SELECT DISTINCT shard_id FROM (
                SELECT shard_id FROM events WHERE shard_id LIKE alias.old_code || '.%'
                UNION SELECT shard_id FROM shards WHERE shard_id LIKE alias.old_code || '.%'
            ) s
        LOOP
            new_shard := alias.new_code || substr(old_shard.shard_id, length(alias.old_code) + 1);
            SELECT coalesce(max(seq), 0) INTO offset_seq FROM events WHERE shard_id = new_shard;
            UPDATE events SET shard_id = new_shard, seq = seq + offset_seq
             WHERE shard_id = old_shard.shard_id;
            UPDATE events
               SET payload = jsonb_set(payload, '{order,region}', to_jsonb(alias.new_code))
             WHERE shard_id = new_shard AND type = 'ORDER_ACCEPTED'
               AND payload #>> '{order,region}' = alias.old_code;
            UPDATE orders SET shard_id = new_shard, region = alias.new_code,
                              doc = jsonb_set(doc, '{region}', to_jsonb(alias.new_code)),
                              last_seq = last_seq + offset_seq
             WHERE shard_id = old_shard.shard_id;
            UPDATE allocations SET shard_id = new_shard, seq = seq + offset_seq
             WHERE shard_id = old_shard.shard_id;
            UPDATE proposals SET shard_id = new_shard, seq = seq + offset_seq
             WHERE shard_id = old_shard.shard_id;
            UPDATE reservations SET shard_id = new_shard, seq = seq + offset_seq
             WHERE shard_id = old_shard.shard_id;
            DELETE FROM snapshots WHERE shard_id IN (old_shard.shard_id, new_shard);
            INSERT INTO shards (shard_id, region, commodity, status, profile, node_id)
            SELECT new_shard, alias.new_code, commodity, status, profile, node_id
              FROM shards WHERE shard_id = old_shard.shard_id
            ON CONFLICT (shard_id) DO NOTHING;
            DELETE FROM shards WHERE shard_id = old_shard.shard_id;
        END LOOP;
    END LOOP;
END
$$;
