-- Row-level security on the fleet's tables, as 0015 did for the rest: ENABLE and FORCE, one
-- policy that limits reads to `app.org_id` and refuses writes for another org, and the
-- application role's grants (`durable_tenant_table`, 0015). Every fleet table already has an
-- `org_id`, from the credential that made its rows.

SELECT durable_tenant_table(t, true)
FROM unnest(ARRAY[
    'execution_pools', 'execution_routes', 'fleet_workers', 'legacy_project_sandbox'
]) AS t;

-- A registration token is redeemed before its org is known (a worker presents it, nothing
-- else): the transaction that holds a token's hash may see that one row (`app.token_hash`),
-- and otherwise only its org's rows.
ALTER TABLE registration_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY registration_tokens_by_org ON registration_tokens
    USING (org_id = current_setting('app.org_id', true)
           OR token_hash = current_setting('app.token_hash', true))
    WITH CHECK (org_id = current_setting('app.org_id', true)
                OR token_hash = current_setting('app.token_hash', true));
GRANT SELECT, INSERT, UPDATE ON registration_tokens TO durable_app;
CREATE TRIGGER registration_tokens_note_org AFTER INSERT ON registration_tokens
    FOR EACH ROW EXECUTE FUNCTION durable_note_org();

-- Platform-wide: the runtime JWT signing keys, stored encrypted under a key PostgreSQL never
-- sees (0014). The API reads them and adds one when there is none; nothing deletes them.
GRANT SELECT, INSERT, UPDATE ON fleet_signing_keys TO durable_app;
