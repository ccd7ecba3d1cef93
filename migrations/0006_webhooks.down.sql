DROP FUNCTION webhook_apply_batch(bigint[], bigint[], text);
DROP INDEX jobs_failed_idx;
DROP FUNCTION webhook_apply(bigint, bigint, text);
DROP FUNCTION webhook_time(text);
DROP FUNCTION webhook_array(jsonb, text);
DROP FUNCTION message_status_rank(text);
DROP TRIGGER jobs_notify ON jobs;
DROP FUNCTION jobs_notify();
