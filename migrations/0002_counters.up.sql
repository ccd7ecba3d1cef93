-- 0002_counters: exact totals without COUNT(*) at read time, and the indexes the
-- platform API's queries need.
--
-- Counters are kept by statement-level triggers with transition tables, in the same
-- transaction as the change: a bulk load updates each counter row once per
-- statement, a single-row change touches one or two counter rows. Rows are upserted
-- in key order so concurrent writers lock counters in the same order.

-- conversation_counts: conversations per (company, assignee, status); assignee 0 means
-- unassigned (a primary key cannot hold NULL).
CREATE TABLE conversation_counts (
    company_id  bigint NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    assignee_id bigint NOT NULL,
    status      text   NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (company_id, assignee_id, status)
);

CREATE TABLE contact_counts (
    company_id bigint PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    n          bigint NOT NULL
);

CREATE TABLE notification_counts (
    company_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    total      bigint NOT NULL,
    unread     bigint NOT NULL,
    PRIMARY KEY (company_id, user_id),
    FOREIGN KEY (company_id, user_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);

-- One function per table: the delta of this statement, from whichever transition
-- tables the event has (an INSERT has no old rows, a DELETE no new ones).
CREATE FUNCTION conversation_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_counts AS c (company_id, assignee_id, status, n)
        SELECT company_id, coalesce(assignee_id, 0), status, count(*)
          FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (company_id, assignee_id, status) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE conversation_counts c SET n = c.n - d.n
          FROM (SELECT company_id, coalesce(assignee_id, 0) AS assignee_id, status, count(*) AS n
                  FROM old_rows GROUP BY 1, 2, 3) d
         WHERE c.company_id = d.company_id AND c.assignee_id = d.assignee_id AND c.status = d.status;
    ELSE
        INSERT INTO conversation_counts AS c (company_id, assignee_id, status, n)
        SELECT company_id, a, status, sum(delta)
          FROM (SELECT company_id, coalesce(assignee_id, 0) AS a, status, 1 AS delta FROM new_rows
                UNION ALL
                SELECT company_id, coalesce(assignee_id, 0), status, -1 FROM old_rows) x
         GROUP BY 1, 2, 3 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (company_id, assignee_id, status) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER conversations_count_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
CREATE TRIGGER conversations_count_update AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
CREATE TRIGGER conversations_count_delete AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();

CREATE FUNCTION contact_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO contact_counts AS c (company_id, n)
        SELECT company_id, count(*) FROM new_rows GROUP BY 1 ORDER BY 1
        ON CONFLICT (company_id) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        UPDATE contact_counts c SET n = c.n - d.n
          FROM (SELECT company_id, count(*) AS n FROM old_rows GROUP BY 1) d
         WHERE c.company_id = d.company_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_count_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_apply();
CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_apply();

CREATE FUNCTION notification_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notification_counts AS c (company_id, user_id, total, unread)
        SELECT company_id, user_id, count(*), count(*) FILTER (WHERE NOT is_read)
          FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (company_id, user_id)
            DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE notification_counts c SET total = c.total - d.total, unread = c.unread - d.unread
          FROM (SELECT company_id, user_id, count(*) AS total, count(*) FILTER (WHERE NOT is_read) AS unread
                  FROM old_rows GROUP BY 1, 2) d
         WHERE c.company_id = d.company_id AND c.user_id = d.user_id;
    ELSE
        INSERT INTO notification_counts AS c (company_id, user_id, total, unread)
        SELECT company_id, user_id, sum(t), sum(u)
          FROM (SELECT company_id, user_id, 1 AS t, (NOT is_read)::int AS u FROM new_rows
                UNION ALL
                SELECT company_id, user_id, -1, -(NOT is_read)::int FROM old_rows) x
         GROUP BY 1, 2 HAVING sum(t) <> 0 OR sum(u) <> 0 ORDER BY 1, 2
        ON CONFLICT (company_id, user_id)
            DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
CREATE TRIGGER notifications_count_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
CREATE TRIGGER notifications_count_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();

-- Rows that existed before this migration.
INSERT INTO conversation_counts (company_id, assignee_id, status, n)
SELECT company_id, coalesce(assignee_id, 0), status, count(*) FROM conversations GROUP BY 1, 2, 3;
INSERT INTO contact_counts (company_id, n) SELECT company_id, count(*) FROM contacts GROUP BY 1;
INSERT INTO notification_counts (company_id, user_id, total, unread)
SELECT company_id, user_id, count(*), count(*) FILTER (WHERE NOT is_read) FROM notifications GROUP BY 1, 2;

-- Lists filtered by assignee, newest first (inbox tabs "mine" and "unassigned").
CREATE INDEX conversations_assignee_updated_idx
    ON conversations (company_id, assignee_id, updated_at DESC, id DESC);
CREATE INDEX conversations_assignee_status_updated_idx
    ON conversations (company_id, assignee_id, status, updated_at DESC, id DESC);
-- A conversation's messages by id, for before/after cursors.
CREATE INDEX messages_conversation_id_idx ON messages (company_id, conversation_id, id);
-- Contact search by name prefix (case-insensitive) and by phone digits prefix,
-- whatever the database's collation.
CREATE INDEX contacts_name_prefix_idx ON contacts (company_id, lower(name) text_pattern_ops);
CREATE INDEX contacts_phone_prefix_idx ON contacts (company_id, phone_number text_pattern_ops);
