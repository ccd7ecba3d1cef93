-- conversations_assignee_idx (company_id, assignee_id, status) is a prefix of
-- conversations_assignee_status_updated_idx (0002): it serves no query the longer
-- index does not, costs a write on every change, and with generic plans it lured
-- "assignee = me" lists into sorting every matching row instead of walking
-- conversations_assignee_updated_idx in order.
DROP INDEX conversations_assignee_idx;
