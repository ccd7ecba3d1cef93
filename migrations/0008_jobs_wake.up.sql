-- Waking the workers without serialising the commits of the jobs that wake them.
--
-- A transaction that sends NOTIFY takes one database-wide lock at commit and keeps it
-- until its commit record is flushed (that is how PostgreSQL orders the notification
-- queue), so the webhook inserts, which all notified, committed one at a time, each
-- waiting for the previous one's WAL flush: under load most of an acknowledgement's
-- time was spent waiting for that lock, and group commit never happened.
--
-- queue_push (src/queue/push.c) now sets conversa.jobs_wake to 'caller' in its insert
-- and, once the insert has committed, sends the notification itself in a transaction
-- of its own that commits without waiting for the flush: a notification lost in a
-- crash costs at most the workers' one-second poll, and the jobs it announces are
-- already durable. Every other insert (an agent's reply, a campaign's start and
-- expansion, all rare) still notifies from the trigger, in its own transaction.
CREATE OR REPLACE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('conversa.jobs_wake', true) IS DISTINCT FROM 'caller' THEN
        PERFORM pg_notify('conversa_jobs', q) FROM (SELECT DISTINCT queue AS q FROM new_jobs) s;
    END IF;
    RETURN NULL;
END $$;
