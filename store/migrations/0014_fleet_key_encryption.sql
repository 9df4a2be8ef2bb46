-- The runtime JWT signing keys are kept encrypted (AES-256-GCM under
-- DURABLE_FLEET_KEY_ENCRYPTION_KEY, which is never in the database): `private_key` holds the
-- sealed key when `encrypted`. Rows from before are in clear; the first API instance to start
-- with an encryption key encrypts them in place (workers/fleet/admin.py).
ALTER TABLE fleet_signing_keys ADD COLUMN encrypted boolean NOT NULL DEFAULT false;
