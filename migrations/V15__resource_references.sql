-- An owner's own name for a resource ("0", "berlin-1"): what a channel manager moving from
-- another system already sends as its hotel id. Optional; unique among one owner's resources,
-- so a reference names at most one resource of the owner who wrote it. Two owners may use the
-- same reference. The engine checks the shape (ResourceSpec::validate_common); the CHECK here
-- guards against a writer that skips it.
ALTER TABLE resources
    ADD COLUMN reference text CHECK (reference ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
CREATE UNIQUE INDEX resources_owner_reference ON resources (owner_id, reference) WHERE reference IS NOT NULL;
