-- Waits opened before 0012 have no org. Take it from the event that started their run where
-- there is one; any left without an org are of no org from now on ('' : only an event of no
-- org resolves them), never of any org.
UPDATE waits w SET org_id = coalesce(e.tenancy->>'org_id', '')
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE w.org_id IS NULL AND d.kind = 'start' AND d.workflow_id = w.workflow_id;
UPDATE waits SET org_id = '' WHERE org_id IS NULL;
ALTER TABLE waits ALTER COLUMN org_id SET DEFAULT '';
ALTER TABLE waits ALTER COLUMN org_id SET NOT NULL;
