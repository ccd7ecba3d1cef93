-- The write path of the inbox (a reply, a status change, a notification read), made
-- cheaper where its cost bought nothing.
--
-- 1. The counters of 0002 are kept by statement-level triggers, which run (and build
-- their transition tables) for every UPDATE of conversations or notifications, even
-- one that changes nothing they count: a new message moving a conversation's preview,
-- marking an already read notification read again. On the write path of the inbox
-- that was most of the statement's cost.
--
-- Updates now move counts with a row-level trigger that fires only when a counted
-- column changed (the WHEN clause is checked before any function runs). Both rows of
-- a move are touched in one statement in key order, as before, so concurrent moves
-- lock counter rows in the same order and cannot deadlock. Inserts and deletes keep
-- their statement-level triggers: they are bulk operations (seeding, cascades).
--
-- 2. messages_company_fk is implied by messages_conversation_fk (the conversation's
-- own company foreign key makes its company exist), but checking it locked the
-- company's row (FOR KEY SHARE) on every message inserted: every writer of a company
-- queued on one row. A company's deletion still reaches its messages through its
-- conversations (both cascade).
ALTER TABLE messages DROP CONSTRAINT messages_company_fk;

CREATE FUNCTION conversation_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_counts AS c (company_id, assignee_id, status, n)
    SELECT company_id, assignee_id, status, sum(n)
      FROM (VALUES (OLD.company_id, coalesce(OLD.assignee_id, 0), OLD.status, -1),
                   (NEW.company_id, coalesce(NEW.assignee_id, 0), NEW.status, 1)) v (company_id, assignee_id, status, n)
     GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (company_id, assignee_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

DROP TRIGGER conversations_count_update ON conversations;
CREATE TRIGGER conversations_count_update
    AFTER UPDATE OF company_id, assignee_id, status ON conversations FOR EACH ROW
    WHEN (OLD.company_id IS DISTINCT FROM NEW.company_id OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION conversation_counts_move();

CREATE FUNCTION notification_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (company_id, user_id, total, unread)
    SELECT company_id, user_id, sum(t), sum(u)
      FROM (VALUES (OLD.company_id, OLD.user_id, -1, -(NOT OLD.is_read)::int),
                   (NEW.company_id, NEW.user_id, 1, (NOT NEW.is_read)::int)) v (company_id, user_id, t, u)
     GROUP BY 1, 2 HAVING sum(t) <> 0 OR sum(u) <> 0 ORDER BY 1, 2
    ON CONFLICT (company_id, user_id)
        DO UPDATE SET total = c.total + excluded.total, unread = c.unread + excluded.unread;
    RETURN NULL;
END $$;

DROP TRIGGER notifications_count_update ON notifications;
CREATE TRIGGER notifications_count_update
    AFTER UPDATE OF company_id, user_id, is_read ON notifications FOR EACH ROW
    WHEN (OLD.company_id IS DISTINCT FROM NEW.company_id OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.is_read IS DISTINCT FROM NEW.is_read)
    EXECUTE FUNCTION notification_counts_move();
