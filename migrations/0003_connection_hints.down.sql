-- Reverts 0003_connection_hints. Sealed verify tokens are dropped with their column
-- (the database cannot decrypt them): set them again after migrating up.
ALTER TABLE connections
    DROP CONSTRAINT connections_secret_hints_check,
    DROP CONSTRAINT connections_secrets_sealed_check,
    DROP COLUMN verify_token_hint,
    DROP COLUMN app_secret_hint,
    DROP COLUMN access_token_hint,
    DROP COLUMN verify_token_enc;
