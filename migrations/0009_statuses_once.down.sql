CREATE OR REPLACE FUNCTION outbound_statuses(p_company bigint, p_list jsonb, OUT conversations bigint[], OUT applied int,
                                  OUT ignored int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_campaigns bigint[];
    v_campaign  bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM outbound_status_rows(p_list) s
                WHERE s.wamid IS NULL OR s.status IS NULL OR length(s.wamid) > 512) THEN
        RAISE EXCEPTION 'malformed status' USING ERRCODE = 'CVBAD';
    END IF;
    SELECT count(*) FILTER (WHERE s.status IN ('sent', 'delivered', 'read', 'failed')),
           count(*) FILTER (WHERE s.status NOT IN ('sent', 'delivered', 'read', 'failed'))
      INTO applied, ignored FROM outbound_status_rows(p_list) s;

    -- sends whose answer never reached us: their row is named by the callback data
    WITH cb AS (SELECT DISTINCT ON (s.cb) s.cb, s.wamid FROM outbound_status_rows(p_list) s
                 WHERE s.cb ~ '^r:[0-9]{1,18}:[0-9]{1,18}$' AND s.status IN ('sent', 'delivered', 'read', 'failed')
                 ORDER BY s.cb),
    fixed AS (
        UPDATE campaign_recipients r
           SET wamid = cb.wamid, status = CASE WHEN r.status IN ('pending', 'cancelled') THEN 'sent' ELSE r.status END,
               attempts = r.attempts + 1, updated_at = now()
          FROM cb
         WHERE r.company_id = p_company AND r.campaign_id = split_part(cb.cb, ':', 2)::bigint
           AND r.contact_id = split_part(cb.cb, ':', 3)::bigint AND r.wamid IS NULL
           AND NOT EXISTS (SELECT 1 FROM campaign_recipients o WHERE o.company_id = p_company AND o.wamid = cb.wamid)
        RETURNING r.campaign_id)
    SELECT array_agg(DISTINCT fixed.campaign_id) INTO v_campaigns FROM fixed;
    UPDATE messages m SET wamid = cb.wamid, updated_at = now()
      FROM (SELECT DISTINCT ON (s.cb) s.cb, s.wamid FROM outbound_status_rows(p_list) s
             WHERE s.cb ~ '^m:[0-9]{1,18}$' AND s.status IN ('sent', 'delivered', 'read', 'failed') ORDER BY s.cb) cb
     WHERE m.company_id = p_company AND m.id = substr(cb.cb, 3)::bigint AND m.direction = 'outbound'
       AND m.wamid IS NULL
       AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.company_id = p_company AND o.wamid = cb.wamid);

    -- the furthest status per wamid, forward only
    WITH best AS (SELECT DISTINCT ON (s.wamid) s.wamid, s.status, s.at, s.code, s.title
                    FROM outbound_status_rows(p_list) s WHERE s.status IN ('sent', 'delivered', 'read', 'failed')
                   ORDER BY s.wamid, message_status_rank(s.status) DESC),
    moved AS (
        UPDATE messages m SET status = b.status, status_at = b.at, updated_at = now(), error_code = b.code,
               error_title = b.title
          FROM best b
         WHERE m.company_id = p_company AND m.wamid = b.wamid AND m.direction = 'outbound' AND m.status <> 'failed'
           AND message_status_rank(b.status) > message_status_rank(m.status)
        RETURNING m.conversation_id)
    SELECT coalesce(array_agg(DISTINCT moved.conversation_id), '{}') INTO conversations FROM moved;
    UPDATE campaign_recipients r SET status = b.status, updated_at = now(),
           error_code = coalesce(b.code, r.error_code), error_title = coalesce(b.title, r.error_title)
      FROM (SELECT DISTINCT ON (s.wamid) s.wamid, s.status, s.code, s.title FROM outbound_status_rows(p_list) s
             WHERE s.status IN ('sent', 'delivered', 'read', 'failed')
             ORDER BY s.wamid, message_status_rank(s.status) DESC) b
     WHERE r.company_id = p_company AND r.wamid = b.wamid AND r.status <> 'failed'
       AND message_status_rank(b.status) > message_status_rank(r.status);

    IF EXISTS (SELECT 1 FROM outbound_status_rows(p_list) s
                WHERE s.status IN ('sent', 'delivered', 'read', 'failed')
                  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.company_id = p_company AND m.wamid = s.wamid)
                  AND NOT EXISTS (SELECT 1 FROM campaign_recipients r
                                   WHERE r.company_id = p_company AND r.wamid = s.wamid)) THEN
        RAISE EXCEPTION 'status for a message that is not known yet' USING ERRCODE = 'CVWAI';
    END IF;
    FOREACH v_campaign IN ARRAY coalesce(v_campaigns, '{}') LOOP
        PERFORM campaign_settle(p_company, v_campaign);
    END LOOP;
END $$;

DROP TYPE outbound_status;
