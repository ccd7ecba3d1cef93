-- Back to 0006: webhook_apply without campaign recipients, and no outbound sending.
CREATE OR REPLACE FUNCTION webhook_apply(p_company bigint, p_job bigint, p_worker text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    j          record;
    conn       record;
    v_payload  jsonb;
    e          jsonb;
    ch         jsonb;
    v          jsonb;
    m          jsonb;
    s          jsonb;
    v_from     text;
    v_wamid    text;
    v_type     text;
    v_text     text;
    v_name     text;
    v_contact  bigint;
    v_conv     bigint;
    v_assignee bigint;
    v_msg      bigint;
    v_status   text;
    cur        record;
    v_convs    bigint[] := '{}';
    v_users    bigint[] := '{}';
    v_counts   boolean := false;
    v_lists    boolean := false;
    n_messages int := 0;
    n_dups     int := 0;
    n_statuses int := 0;
    n_ignored  int := 0;
BEGIN
    SELECT jb.status, jb.locked_by, jb.payload, jb.meta INTO j
      FROM jobs jb WHERE jb.company_id = p_company AND jb.id = p_job FOR UPDATE;
    IF NOT FOUND OR j.status <> 'running' OR j.locked_by IS DISTINCT FROM p_worker THEN
        RAISE EXCEPTION 'job % is no longer held by this worker', p_job USING ERRCODE = 'CVLSE';
    END IF;
    SELECT c.id, c.phone_number_id INTO conn FROM connections c
     WHERE c.company_id = p_company AND c.id = (j.meta ->> 'connection_id')::bigint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the connection of job % no longer exists', p_job USING ERRCODE = 'CVBAD';
    END IF;
    BEGIN
        v_payload := convert_from(j.payload, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'job % is not a JSON payload', p_job USING ERRCODE = 'CVBAD';
    END;

    FOR e IN SELECT * FROM webhook_array(v_payload, 'entry') LOOP
        FOR ch IN SELECT * FROM webhook_array(e, 'changes') LOOP
            v := ch -> 'value';
            IF ch ->> 'field' IS DISTINCT FROM 'messages' OR jsonb_typeof(v) IS DISTINCT FROM 'object'
               OR (conn.phone_number_id IS NOT NULL AND v -> 'metadata' ->> 'phone_number_id' IS NOT NULL
                   AND v -> 'metadata' ->> 'phone_number_id' <> conn.phone_number_id) THEN
                n_ignored := n_ignored + 1;
                CONTINUE;
            END IF;

            -- inbound messages, in the order Meta listed them
            FOR m IN SELECT * FROM webhook_array(v, 'messages') LOOP
                v_from := m ->> 'from';
                v_wamid := m ->> 'id';
                v_type := coalesce(m ->> 'type', 'unknown');
                IF v_from IS NULL OR v_from !~ '^[1-9][0-9]{6,14}$' OR v_wamid IS NULL
                   OR length(v_wamid) > 512 OR length(v_type) > 32 THEN
                    RAISE EXCEPTION 'malformed message in job %', p_job USING ERRCODE = 'CVBAD';
                END IF;
                IF EXISTS (SELECT 1 FROM messages WHERE company_id = p_company AND wamid = v_wamid) THEN
                    n_dups := n_dups + 1;
                    CONTINUE;
                END IF;
                v_text := CASE v_type
                    WHEN 'text' THEN m -> 'text' ->> 'body'
                    WHEN 'image' THEN m -> 'image' ->> 'caption'
                    WHEN 'video' THEN m -> 'video' ->> 'caption'
                    WHEN 'document' THEN coalesce(m -> 'document' ->> 'caption', m -> 'document' ->> 'filename')
                    WHEN 'interactive' THEN coalesce(m -> 'interactive' -> 'button_reply' ->> 'title',
                                                     m -> 'interactive' -> 'list_reply' ->> 'title')
                    WHEN 'button' THEN m -> 'button' ->> 'text'
                    WHEN 'reaction' THEN m -> 'reaction' ->> 'emoji'
                    WHEN 'location' THEN nullif(concat_ws(' ', m -> 'location' ->> 'name',
                                                          m -> 'location' ->> 'address'), '')
                    ELSE NULL END;
                SELECT left(c -> 'profile' ->> 'name', 256) INTO v_name
                  FROM webhook_array(v, 'contacts') c WHERE c ->> 'wa_id' = v_from LIMIT 1;

                INSERT INTO contacts AS k (company_id, phone_number, wa_id, name)
                VALUES (p_company, v_from, v_from, v_name)
                ON CONFLICT (company_id, phone_number) DO UPDATE
                   SET name = coalesce(excluded.name, k.name), wa_id = excluded.wa_id,
                       updated_at = CASE WHEN k.name IS DISTINCT FROM coalesce(excluded.name, k.name)
                                         THEN now() ELSE k.updated_at END
                RETURNING k.id INTO v_contact;

                SELECT c.id, c.assignee_id INTO v_conv, v_assignee FROM conversations c
                 WHERE c.company_id = p_company AND c.contact_id = v_contact AND c.status IN ('open', 'pending')
                 ORDER BY c.updated_at DESC LIMIT 1;
                IF NOT FOUND THEN
                    INSERT INTO conversations (company_id, contact_id, connection_id, status)
                    VALUES (p_company, v_contact, conn.id, 'open') RETURNING id INTO v_conv;
                    v_assignee := NULL;
                    v_counts := true;
                END IF;

                INSERT INTO messages (company_id, conversation_id, direction, type, body, payload, wamid,
                                      status, status_at)
                VALUES (p_company, v_conv, 'inbound', v_type, v_text, m, v_wamid, 'received',
                        webhook_time(m ->> 'timestamp'))
                ON CONFLICT (company_id, wamid) DO NOTHING
                RETURNING id INTO v_msg;
                IF v_msg IS NULL THEN
                    n_dups := n_dups + 1;
                    CONTINUE;
                END IF;
                n_messages := n_messages + 1;

                UPDATE conversations
                   SET last_message_at = now(), updated_at = now(), unread_count = unread_count + 1,
                       last_message_preview = left(coalesce(v_text, '[' || v_type || ']'), 200)
                 WHERE company_id = p_company AND id = v_conv;

                WITH made AS (
                    INSERT INTO notifications (company_id, user_id, type, title, body, data)
                    SELECT p_company, u.id, 'message', 'New message from ' || coalesce(v_name, '+' || v_from),
                           left(v_text, 200),
                           jsonb_build_object('conversation_id', v_conv, 'message_id', v_msg, 'contact_id', v_contact)
                      FROM users u
                     WHERE u.company_id = p_company
                       AND CASE WHEN v_assignee IS NOT NULL THEN u.id = v_assignee ELSE u.role = 'agent' END
                    RETURNING user_id)
                SELECT v_users || coalesce(array_agg(user_id), '{}') INTO v_users FROM made;

                v_convs := v_convs || v_conv;
                v_lists := true;
            END LOOP;

            -- statuses of outbound messages: only forward, failed is terminal
            FOR s IN SELECT * FROM webhook_array(v, 'statuses') LOOP
                v_wamid := s ->> 'id';
                v_status := CASE s ->> 'status' WHEN 'played' THEN 'read' ELSE s ->> 'status' END;
                IF v_wamid IS NULL OR v_status IS NULL THEN
                    RAISE EXCEPTION 'malformed status in job %', p_job USING ERRCODE = 'CVBAD';
                END IF;
                IF v_status NOT IN ('sent', 'delivered', 'read', 'failed') THEN
                    n_ignored := n_ignored + 1;
                    CONTINUE;
                END IF;
                SELECT id, conversation_id, status, direction INTO cur FROM messages
                 WHERE company_id = p_company AND wamid = v_wamid FOR UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'status % for message % that is not known yet', v_status, v_wamid
                        USING ERRCODE = 'CVWAI';
                END IF;
                n_statuses := n_statuses + 1;
                IF cur.direction <> 'outbound' OR cur.status = 'failed'
                   OR message_status_rank(v_status) <= message_status_rank(cur.status) THEN
                    CONTINUE;
                END IF;
                UPDATE messages
                   SET status = v_status, status_at = webhook_time(s ->> 'timestamp'), updated_at = now(),
                       error_code = CASE WHEN v_status = 'failed' AND s -> 'errors' -> 0 ->> 'code' ~ '^-?[0-9]{1,9}$'
                                         THEN (s -> 'errors' -> 0 ->> 'code')::int END,
                       error_title = CASE WHEN v_status = 'failed' THEN left(s -> 'errors' -> 0 ->> 'title', 512) END
                 WHERE company_id = p_company AND id = cur.id;
                v_convs := v_convs || cur.conversation_id;
            END LOOP;
        END LOOP;
    END LOOP;

    UPDATE jobs jb SET status = 'completed', completed_at = now(), updated_at = now(), locked_until = NULL
     WHERE jb.company_id = p_company AND jb.id = p_job;

    RETURN json_build_object(
        'conversations', (SELECT coalesce(json_agg(DISTINCT x), '[]') FROM unnest(v_convs) x),
        'users', (SELECT coalesce(json_agg(DISTINCT x), '[]') FROM unnest(v_users) x),
        'counts', v_counts, 'lists', v_lists, 'messages', n_messages, 'duplicates', n_dups,
        'statuses', n_statuses, 'ignored', n_ignored)::text;
END $$;

DROP FUNCTION outbound_statuses(bigint, jsonb);
DROP FUNCTION outbound_status_rows(jsonb);
DROP FUNCTION outbound_record(bigint[], bigint[], text[], text[], bigint[], text[], text);
DROP FUNCTION outbound_batch(bigint[], bigint[], text[], text[], bigint[], text[]);
DROP FUNCTION outbound_prepare(bigint[], bigint[], text);
DROP FUNCTION campaign_settle(bigint, bigint);
DROP FUNCTION campaign_move(bigint, bigint, text);
DROP FUNCTION campaign_expand(bigint, bigint, bigint, text, int, int);
DROP FUNCTION campaign_start(bigint, bigint, int);
DROP FUNCTION message_send(bigint, bigint, text, bigint, int);
DELETE FROM jobs WHERE queue IN ('outbound', 'campaigns');
DROP TRIGGER campaign_recipients_count_delete ON campaign_recipients;
DROP TRIGGER campaign_recipients_count_update ON campaign_recipients;
DROP TRIGGER campaign_recipients_count_insert ON campaign_recipients;
DROP FUNCTION campaign_counts_apply();
DROP TABLE campaign_counts;
ALTER TABLE campaigns DROP COLUMN total, DROP COLUMN expanded_to, DROP COLUMN expanding, DROP COLUMN scheduled_to;
UPDATE campaign_recipients SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_status_check,
    ADD CONSTRAINT campaign_recipients_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed'));
ALTER TABLE connections DROP CONSTRAINT connections_messages_per_second_check,
    DROP COLUMN messages_per_second;
