CREATE OR REPLACE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('conversa_jobs', q) FROM (SELECT DISTINCT queue AS q FROM new_jobs) s;
    RETURN NULL;
END $$;
