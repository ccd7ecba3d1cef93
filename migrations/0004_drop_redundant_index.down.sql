CREATE INDEX conversations_assignee_idx ON conversations (company_id, assignee_id, status);
