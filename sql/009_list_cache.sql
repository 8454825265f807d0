-- modelreg schema, version 9: new rows announced too.
--
-- Version 4 announced changed and deleted rows only: nothing cached a
-- model before it existed.  GET /models pages are cached now (README
-- "The read cache"), and a model registered through another node belongs
-- on them: each statement that inserts models NOTIFYs "+" when it
-- commits ("some model came": one notice a transaction, whatever its
-- rows, as PostgreSQL folds equal ones), which ends every cached page.
--
-- Version 8 was a change reverted before any release (modelreg_ts()
-- STABLE: inlined, it made lists build every match's JSON before their
-- LIMIT); a database that ran it gets IMMUTABLE back here.

-- (CREATE TRIGGER locks out writes to models while it waits for the
-- table: fail, to be run again, rather than hold them up behind a long
-- transaction)
SET LOCAL lock_timeout = '5s';

ALTER FUNCTION modelreg_ts(timestamptz) IMMUTABLE;

CREATE OR REPLACE FUNCTION modelreg_models_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('modelreg_models', '+');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS modelreg_models_notify_insert ON models;

CREATE TRIGGER modelreg_models_notify_insert
    AFTER INSERT ON models
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_models_notify_insert();
