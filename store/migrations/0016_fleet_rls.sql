-- Row-level security on the fleet's tables, as 0015 did for the rest: ENABLE and FORCE, one
-- policy that limits reads to `app.org_id` and refuses writes for another org, and the
-- application role's grants (`durable_tenant_table`, 0015). Every fleet table already has an
-- `org_id`, from the credential that made its rows.

SELECT durable_tenant_table(t, true)
FROM unnest(ARRAY[
    'execution_pools', 'execution_routes', 'fleet_workers', 'legacy_project_sandbox'
]) AS t;

-- A registration token is redeemed before its org is known (a worker presents it, nothing
-- else): a transaction that holds a token's hash (`app.token_hash`) may read that one row and
-- count its use; everything else goes by org. The application role may change only the
-- counters and the revocation, never a token's org, hash or project.
ALTER TABLE registration_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE registration_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY registration_tokens_by_org ON registration_tokens
    USING (org_id = current_setting('app.org_id', true))
    WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY registration_tokens_read_by_hash ON registration_tokens FOR SELECT
    USING (token_hash = nullif(current_setting('app.token_hash', true), ''));
CREATE POLICY registration_tokens_redeem_by_hash ON registration_tokens FOR UPDATE
    USING (token_hash = nullif(current_setting('app.token_hash', true), ''));
GRANT SELECT, INSERT ON registration_tokens TO durable_app;
GRANT UPDATE (uses, last_used_at, revoked_at) ON registration_tokens TO durable_app;
CREATE TRIGGER registration_tokens_note_org AFTER INSERT ON registration_tokens
    FOR EACH ROW EXECUTE FUNCTION durable_note_org();

-- Platform-wide: the runtime JWT signing keys, stored encrypted under a key PostgreSQL never
-- sees (0014). The application role reads them; it adds a key (only to an empty table) and
-- encrypts a key found in clear only through these functions, which write encrypted rows
-- alone: it can neither plant a key it knows nor put one back in clear.
GRANT SELECT ON fleet_signing_keys TO durable_app;

CREATE FUNCTION durable_add_signing_key(new_kid text, sealed bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    INSERT INTO public.fleet_signing_keys (kid, private_key, encrypted)
    SELECT new_kid, sealed, true WHERE NOT EXISTS (SELECT 1 FROM public.fleet_signing_keys);
$$;
CREATE FUNCTION durable_seal_signing_key(clear_kid text, sealed bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.fleet_signing_keys SET private_key = sealed, encrypted = true
    WHERE kid = clear_kid AND NOT encrypted;
$$;
REVOKE ALL ON FUNCTION durable_add_signing_key(text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION durable_seal_signing_key(text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION durable_add_signing_key(text, bytea) TO durable_app;
GRANT EXECUTE ON FUNCTION durable_seal_signing_key(text, bytea) TO durable_app;
