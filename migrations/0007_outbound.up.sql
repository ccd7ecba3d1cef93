-- Sending through the WhatsApp Cloud API: agents' replies and campaigns.
--
-- Both go through the job queue (migration 0006): an agent's reply is a job of the
-- 'outbound' queue, each campaign recipient a job of the 'campaigns' queue, with the
-- contact's number within the connection as ordering key. The rows stay the truth:
-- a message is 'pending' until Meta accepts it (then it has its wamid) and a recipient
-- 'pending' until then too, so a job that runs again after a crash sees what was done
-- and sends nothing twice.
--
-- A send whose outcome is unknown (the worker died with the request on the wire) is
-- recognised when Meta's status webhook arrives: every message carries
-- biz_opaque_callback_data naming its row ('m:<message>' or 'r:<campaign>:<contact>'),
-- which Meta echoes in statuses, and outbound_statuses() records the wamid from it. The
-- job is taken again only after its lease, by which time the status has normally
-- arrived; then it is skipped.

-- The number's throughput: Meta allows 80 messages/s by default, up to 1,000.
ALTER TABLE connections ADD COLUMN messages_per_second integer NOT NULL DEFAULT 80,
    ADD CONSTRAINT connections_messages_per_second_check CHECK (messages_per_second BETWEEN 1 AND 1000);

ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_status_check,
    ADD CONSTRAINT campaign_recipients_status_check
        CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed', 'cancelled'));

-- total: recipients so far; expanded_to: the last contact id expanded; expanding: until
-- the whole audience is recipients (a campaign completes only after that);
-- scheduled_to: when the sends queued so far are due to be done (campaign_expand).
ALTER TABLE campaigns ADD COLUMN total bigint NOT NULL DEFAULT 0, ADD COLUMN expanded_to bigint,
    ADD COLUMN expanding boolean NOT NULL DEFAULT false, ADD COLUMN scheduled_to timestamptz;

-- Progress of each campaign per recipient status, kept by statement-level triggers
-- (one row change per status per statement, however many recipients it touched).
-- Every send's record and every batch of statuses moves a campaign's counts, so the
-- counts are striped: a transaction adds to the stripe of its own id (one of 16), and
-- two at once rarely wait on the same row. Readers sum the stripes.
CREATE TABLE campaign_counts (
    company_id  bigint   NOT NULL,
    campaign_id bigint   NOT NULL,
    status      text     NOT NULL,
    stripe      smallint NOT NULL,
    n           bigint   NOT NULL,
    PRIMARY KEY (company_id, campaign_id, status, stripe),
    CONSTRAINT campaign_counts_campaign_fk FOREIGN KEY (company_id, campaign_id)
        REFERENCES campaigns (company_id, id) ON DELETE CASCADE
);

-- Rows are locked in key order so that two statements never wait on each other in a cycle.
CREATE FUNCTION campaign_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_stripe smallint := (txid_current() % 16)::smallint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO campaign_counts AS cc (company_id, campaign_id, status, stripe, n)
        SELECT company_id, campaign_id, status, v_stripe, count(*) FROM new_rows
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (company_id, campaign_id, status, stripe) DO UPDATE SET n = cc.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        -- an update, not an insert: when the campaign itself is being deleted its counts
        -- are already gone and nothing must be re-created for it
        UPDATE campaign_counts cc SET n = cc.n - d.k
          FROM (SELECT company_id, campaign_id, status, count(*) AS k FROM old_rows GROUP BY 1, 2, 3) d
         WHERE cc.company_id = d.company_id AND cc.campaign_id = d.campaign_id AND cc.status = d.status
           AND cc.stripe = (SELECT c2.stripe FROM campaign_counts c2
                             WHERE c2.company_id = d.company_id AND c2.campaign_id = d.campaign_id
                               AND c2.status = d.status ORDER BY c2.n DESC LIMIT 1);
    ELSE
        INSERT INTO campaign_counts AS cc (company_id, campaign_id, status, stripe, n)
        SELECT company_id, campaign_id, status, v_stripe, sum(k) FROM (
            SELECT company_id, campaign_id, status, count(*) AS k FROM new_rows GROUP BY 1, 2, 3
            UNION ALL
            SELECT company_id, campaign_id, status, -count(*) FROM old_rows GROUP BY 1, 2, 3) d
         GROUP BY 1, 2, 3 HAVING sum(k) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (company_id, campaign_id, status, stripe) DO UPDATE SET n = cc.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER campaign_recipients_count_insert AFTER INSERT ON campaign_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_apply();
CREATE TRIGGER campaign_recipients_count_update AFTER UPDATE ON campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_apply();
CREATE TRIGGER campaign_recipients_count_delete AFTER DELETE ON campaign_recipients
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION campaign_counts_apply();

-- An agent's reply: stored as pending and queued for sending, in one transaction. The
-- per-key lock orders the jobs of one contact as queue/push.c does. Returns the new
-- message (no row for an unknown conversation); raises CVNOC when the conversation has
-- no connection.
CREATE FUNCTION message_send(p_company bigint, p_conv bigint, p_text text, p_sender bigint, p_attempts int)
RETURNS SETOF messages LANGUAGE plpgsql AS $$
DECLARE
    c   record;
    m   messages;
    v_key text;
BEGIN
    SELECT cv.id, cv.connection_id, ct.phone_number INTO c
      FROM conversations cv JOIN contacts ct ON ct.company_id = cv.company_id AND ct.id = cv.contact_id
     WHERE cv.company_id = p_company AND cv.id = p_conv FOR UPDATE OF cv;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF c.connection_id IS NULL THEN
        RAISE EXCEPTION 'conversation % has no connection to send through', p_conv USING ERRCODE = 'CVNOC';
    END IF;
    v_key := c.connection_id || ':' || c.phone_number;
    PERFORM pg_advisory_xact_lock(hashtextextended(v_key, 0));
    UPDATE conversations SET last_message_at = now(), last_message_preview = left(p_text, 100), updated_at = now()
     WHERE conversations.company_id = p_company AND conversations.id = p_conv;
    INSERT INTO messages (company_id, conversation_id, direction, type, body, status, sender_id)
    VALUES (p_company, p_conv, 'outbound', 'text', p_text, 'pending', p_sender)
    RETURNING * INTO m;
    INSERT INTO jobs (company_id, queue, key, payload, meta, max_attempts)
    VALUES (p_company, 'outbound', v_key, ''::bytea, jsonb_build_object('message', m.id), p_attempts);
    RETURN NEXT m;
END $$;

-- Starts a draft campaign: marks it running and queues its expansion (below), so the
-- trigger returns at once whatever the audience's size. Idempotent: a campaign that is
-- not a draft is left as it is (returns false).
CREATE FUNCTION campaign_start(p_company bigint, p_campaign bigint, p_attempts int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns SET status = 'running', started_at = now(), updated_at = now(), expanding = true
     WHERE company_id = p_company AND id = p_campaign AND status = 'draft';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO jobs (company_id, queue, payload, meta, max_attempts)
    VALUES (p_company, 'campaigns', ''::bytea, jsonb_build_object('campaign', p_campaign, 'expand', true), p_attempts);
    RETURN true;
END $$;

-- One step of a campaign's expansion, run by the sending worker holding job p_job: the
-- next p_chunk contacts of the audience (in id order, after the last one expanded)
-- become recipients and jobs, set-based; statement timeouts bound a step, not the
-- audience. Audience: {"all": true}, {"contact_ids": [...]}, or {"phone_prefix": "...",
-- "labels": [...]} (either or both), validated by the API.
--
-- Each job is due when its send is: the step's jobs are spread from where the previous
-- step's schedule ends, at the connection's messages_per_second in blocks of 100 ms
-- (a block is a claim's worth), so workers claim them as they can be sent, and the
-- expansion job itself is due again when 80 % of its step's schedule has passed: the next step is ready before the queue runs dry,
-- and the steps are spread over the campaign instead of all at its start. Returns true
-- when the expansion is over (the job is then completed here), false when the job was
-- queued again for the next step. Jobs made while the campaign is paused are parked.
CREATE FUNCTION campaign_expand(p_company bigint, p_campaign bigint, p_job bigint, p_worker text, p_chunk int,
                                p_attempts int) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    c       record;
    n_seen  bigint;
    n_made  bigint;
    v_last  bigint;
    v_start timestamptz;
    v_block int; /* jobs due together, every 100 ms */
BEGIN
    SELECT cp.status, cp.connection_id, cp.audience, cp.expanded_to, cp.scheduled_to, cn.messages_per_second AS rate
      INTO c FROM campaigns cp
      JOIN connections cn ON cn.company_id = cp.company_id AND cn.id = cp.connection_id
     WHERE cp.company_id = p_company AND cp.id = p_campaign FOR UPDATE OF cp;
    IF FOUND AND c.status IN ('running', 'paused') THEN
        v_start := greatest(clock_timestamp(), coalesce(c.scheduled_to, clock_timestamp()));
        v_block := greatest(c.rate / 10, 1);
        WITH picked AS (
            SELECT ct.id, ct.phone_number FROM contacts ct
             WHERE ct.company_id = p_company AND ct.id > coalesce(c.expanded_to, 0)
               AND (NOT c.audience ? 'contact_ids'
                    OR ct.id IN (SELECT x::bigint FROM jsonb_array_elements_text(c.audience -> 'contact_ids') x))
               AND (NOT c.audience ? 'phone_prefix' OR ct.phone_number LIKE (c.audience ->> 'phone_prefix') || '%')
               AND (NOT c.audience ? 'labels'
                    OR ct.labels && ARRAY(SELECT jsonb_array_elements_text(c.audience -> 'labels')))
             ORDER BY ct.id LIMIT p_chunk),
        made AS (
            INSERT INTO campaign_recipients (company_id, campaign_id, contact_id)
            SELECT p_company, p_campaign, id FROM picked ORDER BY id
            ON CONFLICT DO NOTHING RETURNING contact_id),
        queued AS (
            INSERT INTO jobs (company_id, queue, key, payload, meta, max_attempts, run_at)
            SELECT p_company, 'campaigns', c.connection_id || ':' || p.phone_number, ''::bytea,
                   jsonb_build_object('campaign', p_campaign, 'contact', m.contact_id), p_attempts,
                   CASE WHEN c.status = 'paused' THEN 'infinity'::timestamptz
                        ELSE v_start + ((row_number() OVER (ORDER BY m.contact_id) - 1) / v_block)
                                       * interval '100 milliseconds' END
              FROM made m JOIN picked p ON p.id = m.contact_id ORDER BY m.contact_id
            RETURNING 1)
        SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM queued), (SELECT max(id) FROM picked)
          INTO n_seen, n_made, v_last;
        UPDATE campaigns SET total = total + n_made, expanded_to = coalesce(v_last, expanded_to),
               expanding = n_seen = p_chunk,
               scheduled_to = v_start + ((n_made + v_block - 1) / v_block) * interval '100 milliseconds',
               updated_at = now()
         WHERE company_id = p_company AND id = p_campaign;
        -- the first step of a large audience grows the queue table faster than autovacuum
        -- analyzes it; the claim's plan needs to know (see queue/worker.c)
        IF c.expanded_to IS NULL AND n_made >= 1000 THEN
            ANALYZE jobs;
        END IF;
        IF n_seen = p_chunk THEN
            UPDATE jobs SET status = 'queued',
                   run_at = v_start + (n_made * 8 / 10 / v_block) * interval '100 milliseconds',
                   attempts = attempts - 1, locked_by = NULL, locked_until = NULL, updated_at = now()
             WHERE company_id = p_company AND id = p_job AND status = 'running' AND locked_by = p_worker;
            RETURN false;
        END IF;
        PERFORM campaign_settle(p_company, p_campaign);
    END IF;
    UPDATE jobs SET status = 'completed', completed_at = now(), updated_at = now(), locked_until = NULL
     WHERE company_id = p_company AND id = p_job AND status = 'running' AND locked_by = p_worker;
    RETURN true;
END $$;

-- Pause parks the campaign's waiting jobs (run_at infinity; a job already running
-- sees the campaign paused and parks itself); resume makes them due and wakes the
-- workers; cancel drops them and marks the recipients not yet sent as cancelled.
-- Each returns the campaign's new status, or NULL when the move is not allowed.
CREATE FUNCTION campaign_move(p_company bigint, p_campaign bigint, p_action text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM campaigns WHERE company_id = p_company AND id = p_campaign FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_action = 'pause' AND v_status = 'running' THEN
        UPDATE jobs SET run_at = 'infinity', updated_at = now()
         WHERE company_id = p_company AND queue = 'campaigns' AND status = 'queued'
           AND (meta ->> 'campaign')::bigint = p_campaign;
        v_status := 'paused';
    ELSIF p_action = 'resume' AND v_status = 'paused' THEN
        UPDATE jobs SET run_at = now(), updated_at = now()
         WHERE company_id = p_company AND queue = 'campaigns' AND status = 'queued'
           AND (meta ->> 'campaign')::bigint = p_campaign;
        UPDATE campaigns SET scheduled_to = NULL WHERE company_id = p_company AND id = p_campaign;
        PERFORM pg_notify('conversa_jobs', 'campaigns');
        v_status := 'running';
    ELSIF p_action = 'cancel' AND v_status IN ('draft', 'running', 'paused') THEN
        DELETE FROM jobs
         WHERE company_id = p_company AND queue = 'campaigns' AND status = 'queued'
           AND (meta ->> 'campaign')::bigint = p_campaign;
        UPDATE campaign_recipients SET status = 'cancelled', updated_at = now()
         WHERE company_id = p_company AND campaign_id = p_campaign AND status = 'pending';
        v_status := 'cancelled';
    ELSE
        RETURN NULL;
    END IF;
    UPDATE campaigns SET status = v_status, updated_at = now(),
           completed_at = CASE WHEN v_status = 'cancelled' THEN now() END
     WHERE company_id = p_company AND id = p_campaign;
    RETURN v_status;
END $$;

-- A running campaign, fully expanded, with no recipient left pending is completed.
-- Every record calls this, so it reads without locking first: an expansion step holds
-- the campaign's row for a while, and waiting on it stalled every send behind it. Near
-- the end (few pending, audience complete) it takes the row, then counts again in a
-- new statement: two records finishing at once each see the other's changes only
-- after it committed, and the lock orders them so that the second one sees both.
CREATE FUNCTION campaign_settle(p_company bigint, p_campaign bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM campaigns WHERE company_id = p_company AND id = p_campaign
                      AND status = 'running' AND NOT expanding)
       OR (SELECT coalesce(sum(n), 0) FROM campaign_counts WHERE company_id = p_company AND campaign_id = p_campaign
              AND status = 'pending') > 1000 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM campaigns WHERE company_id = p_company AND id = p_campaign FOR UPDATE;
    UPDATE campaigns SET status = 'completed', completed_at = now(), updated_at = now()
     WHERE company_id = p_company AND id = p_campaign AND status = 'running' AND NOT expanding
       AND (SELECT coalesce(sum(n), 0) FROM campaign_counts WHERE company_id = p_company
               AND campaign_id = p_campaign AND status = 'pending') = 0;
END $$;

-- What a batch of sending jobs is to do, one row per job held by p_worker, in order:
-- action 'send' (with everything the request needs), 'skip' (already sent: nothing to
-- do), 'park' (its campaign is paused), 'cancel' (its campaign was cancelled), 'fail'
-- (it cannot be sent: reason says why) or 'expand' (a campaign's expansion step; the
-- campaign's id is in connection_id's place).
CREATE FUNCTION outbound_prepare(p_companies bigint[], p_jobs bigint[], p_worker text)
RETURNS TABLE (i bigint, action text, reason text, connection_id bigint, phone_number_id text,
               access_token_enc bytea, messages_per_second int, to_number text, body text,
               template_name text, template_language text, template_params text, callback text)
LANGUAGE sql STABLE AS $$
    SELECT f.i,
           CASE WHEN jb.meta ? 'expand' THEN 'expand'
                WHEN jb.queue = 'outbound' AND (ms.id IS NULL OR ms.wamid IS NOT NULL OR ms.status <> 'pending')
                THEN 'skip'
                WHEN jb.queue = 'campaigns' AND (r.contact_id IS NULL OR r.wamid IS NOT NULL OR r.status <> 'pending')
                THEN 'skip'
                WHEN cp.status = 'cancelled' THEN 'cancel'
                WHEN jb.queue = 'campaigns' AND cp.status <> 'running' THEN 'park'
                WHEN cn.id IS NULL THEN 'fail'
                WHEN cn.status <> 'active' THEN 'fail'
                WHEN cn.phone_number_id IS NULL OR cn.access_token_enc IS NULL THEN 'fail'
                ELSE 'send' END,
           CASE WHEN jb.meta ? 'expand' THEN NULL
                WHEN cn.id IS NULL THEN 'the connection no longer exists'
                WHEN cn.status <> 'active' THEN 'the connection is ' || cn.status
                WHEN cn.phone_number_id IS NULL THEN 'the connection has no phone_number_id'
                WHEN cn.access_token_enc IS NULL THEN 'the connection has no access token' END,
           CASE WHEN jb.meta ? 'expand' THEN (jb.meta ->> 'campaign')::bigint ELSE cn.id END,
           cn.phone_number_id, cn.access_token_enc, cn.messages_per_second, ct.phone_number, ms.body,
           cp.template_name, cp.template_language, cp.template_params::text,
           CASE WHEN jb.queue = 'outbound' THEN 'm:' || ms.id ELSE 'r:' || r.campaign_id || ':' || r.contact_id END
      FROM unnest(p_companies, p_jobs) WITH ORDINALITY AS f (company, job, i)
      JOIN jobs jb ON jb.company_id = f.company AND jb.id = f.job AND jb.status = 'running'
                  AND jb.locked_by = p_worker
      LEFT JOIN messages ms ON jb.queue = 'outbound' AND ms.company_id = jb.company_id
                           AND ms.id = (jb.meta ->> 'message')::bigint
      LEFT JOIN conversations cv ON cv.company_id = ms.company_id AND cv.id = ms.conversation_id
      LEFT JOIN campaign_recipients r ON jb.queue = 'campaigns' AND r.company_id = jb.company_id
                                     AND r.campaign_id = (jb.meta ->> 'campaign')::bigint
                                     AND r.contact_id = (jb.meta ->> 'contact')::bigint
      LEFT JOIN campaigns cp ON cp.company_id = r.company_id AND cp.id = r.campaign_id
      LEFT JOIN contacts ct ON ct.company_id = jb.company_id AND ct.id = coalesce(cv.contact_id, r.contact_id)
      LEFT JOIN connections cn ON cn.company_id = jb.company_id AND cn.id = coalesce(cv.connection_id, cp.connection_id)
     ORDER BY f.i
$$;

-- A batch's outcomes next to what each job was for (outbound_record's input).
CREATE FUNCTION outbound_batch(p_companies bigint[], p_jobs bigint[], p_outcomes text[], p_wamids text[],
                               p_codes bigint[], p_titles text[])
RETURNS TABLE (company bigint, job bigint, queue text, message bigint, campaign bigint, contact bigint,
               outcome text, wamid text, code int, title text)
LANGUAGE sql STABLE AS $$
    SELECT f.company, f.job, jb.queue, (jb.meta ->> 'message')::bigint, (jb.meta ->> 'campaign')::bigint,
           (jb.meta ->> 'contact')::bigint, f.outcome, nullif(left(f.wamid, 512), ''), nullif(f.code, 0)::int,
           nullif(left(f.title, 512), '')
      FROM unnest(p_companies, p_jobs, p_outcomes, p_wamids, p_codes, p_titles)
           AS f (company, job, outcome, wamid, code, title)
      JOIN jobs jb ON jb.company_id = f.company AND jb.id = f.job
$$;

-- Records what became of a batch of sends and completes the jobs this worker still
-- holds. outcome: 'sent' (Meta accepted it: wamid), 'failed' (for good: code, title),
-- 'skip' or 'cancelled'. A wamid already known (from a status webhook) is kept. Returns
-- the conversations whose messages changed, for the caller's cache.
CREATE FUNCTION outbound_record(p_companies bigint[], p_jobs bigint[], p_outcomes text[], p_wamids text[],
                                p_codes bigint[], p_titles text[], p_worker text)
RETURNS TABLE (company_id bigint, conversation_id bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v record;
BEGIN
    RETURN QUERY
    UPDATE messages ms
       SET wamid = coalesce(ms.wamid, b.wamid),
           status = CASE WHEN b.outcome = 'failed' AND ms.status = 'pending' THEN 'failed' ELSE ms.status END,
           error_code = CASE WHEN b.outcome = 'failed' AND ms.status = 'pending' THEN b.code ELSE ms.error_code END,
           error_title = CASE WHEN b.outcome = 'failed' AND ms.status = 'pending' THEN b.title ELSE ms.error_title END,
           updated_at = now()
      FROM outbound_batch(p_companies, p_jobs, p_outcomes, p_wamids, p_codes, p_titles) b
     WHERE b.queue = 'outbound' AND b.outcome IN ('sent', 'failed') AND ms.company_id = b.company
       AND ms.id = b.message
    RETURNING ms.company_id, ms.conversation_id;

    UPDATE campaign_recipients r
       SET status = CASE WHEN r.status = 'pending' THEN b.outcome
                         -- cancelled while its send was on the wire: it went out all the same
                         WHEN r.status = 'cancelled' AND b.outcome = 'sent' THEN 'sent'
                         ELSE r.status END,
           wamid = coalesce(r.wamid, b.wamid),
           attempts = r.attempts + 1,
           error_code = CASE WHEN b.outcome = 'failed' THEN b.code ELSE r.error_code END,
           error_title = CASE WHEN b.outcome = 'failed' THEN b.title ELSE r.error_title END,
           updated_at = now()
      FROM outbound_batch(p_companies, p_jobs, p_outcomes, p_wamids, p_codes, p_titles) b
     WHERE b.queue = 'campaigns' AND b.outcome IN ('sent', 'failed', 'cancelled') AND r.company_id = b.company
       AND r.campaign_id = b.campaign AND r.contact_id = b.contact;

    UPDATE jobs jb SET status = 'completed', completed_at = now(), updated_at = now(), locked_until = NULL
      FROM unnest(p_companies, p_jobs) AS f (company, job)
     WHERE jb.company_id = f.company AND jb.id = f.job AND jb.status = 'running' AND jb.locked_by = p_worker;

    FOR v IN SELECT DISTINCT b.company, b.campaign
               FROM outbound_batch(p_companies, p_jobs, p_outcomes, p_wamids, p_codes, p_titles) b
              WHERE b.campaign IS NOT NULL LOOP
        PERFORM campaign_settle(v.company, v.campaign);
    END LOOP;
END $$;

-- A change's statuses from Meta for outbound messages and campaign recipients, applied
-- set-based (a batch of hundreds costs a few statements, not a few per status). They
-- commute: each row only moves forward and failed is terminal, so their order, and the
-- order of the jobs carrying them, does not matter. A wamid not known yet is matched
-- through biz_opaque_callback_data first (see the top). Raises CVBAD for a malformed
-- status and CVWAI when a status's wamid is nobody's yet (the queue retries the job:
-- the send's own record may still be committing). Returns the conversations whose
-- messages changed and how many statuses were applied and ignored.
CREATE FUNCTION outbound_status_rows(p_list jsonb)
RETURNS TABLE (wamid text, status text, cb text, at timestamptz, code int, title text)
LANGUAGE sql STABLE AS $$
    SELECT s ->> 'id', CASE s ->> 'status' WHEN 'played' THEN 'read' ELSE s ->> 'status' END,
           s ->> 'biz_opaque_callback_data', webhook_time(s ->> 'timestamp'),
           CASE WHEN s ->> 'status' = 'failed' AND s -> 'errors' -> 0 ->> 'code' ~ '^-?[0-9]{1,9}$'
                THEN (s -> 'errors' -> 0 ->> 'code')::int END,
           CASE WHEN s ->> 'status' = 'failed' THEN left(s -> 'errors' -> 0 ->> 'title', 512) END
      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_list) = 'array' THEN p_list ELSE '[]' END) s
$$;

CREATE FUNCTION outbound_statuses(p_company bigint, p_list jsonb, OUT conversations bigint[], OUT applied int,
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
    st         record;
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

            -- statuses of outbound messages and campaign recipients, all at once
            IF jsonb_typeof(v -> 'statuses') = 'array' AND jsonb_array_length(v -> 'statuses') > 0 THEN
                SELECT * INTO st FROM outbound_statuses(p_company, v -> 'statuses');
                v_convs := v_convs || st.conversations;
                n_statuses := n_statuses + st.applied;
                n_ignored := n_ignored + st.ignored;
            END IF;
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

