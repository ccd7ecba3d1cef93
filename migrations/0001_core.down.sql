-- 0001_core down: drop everything 0001_core.up.sql created, in reverse order.
-- Indexes and constraints go with their tables. No CASCADE: if another object
-- has come to depend on these tables, the drop should fail loudly instead.
-- The migration runner wraps this file in a transaction; no BEGIN/COMMIT here.

DROP TABLE jobs;
DROP TABLE campaign_recipients;
DROP TABLE campaigns;
DROP TABLE notifications;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE contacts;
DROP TABLE connections;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE companies;
