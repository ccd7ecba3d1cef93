ALTER TABLE messages ADD CONSTRAINT messages_company_fk FOREIGN KEY (company_id)
    REFERENCES companies (id) ON DELETE CASCADE;

DROP TRIGGER notifications_count_update ON notifications;
CREATE TRIGGER notifications_count_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
DROP FUNCTION notification_counts_move();

DROP TRIGGER conversations_count_update ON conversations;
CREATE TRIGGER conversations_count_update AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
DROP FUNCTION conversation_counts_move();
