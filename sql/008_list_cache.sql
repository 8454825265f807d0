-- modelreg schema, version 8: new rows announced too.
--
-- Version 4 announced changed and deleted rows only: nothing cached a
-- model before it existed.  GET /models pages are cached now (README
-- "Read cache"), and a model registered through another node belongs on
-- them: its id is announced when its transaction commits, as a change's.

CREATE OR REPLACE FUNCTION modelreg_models_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('modelreg_models', '*');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('modelreg_models', NEW.id);
    ELSE
        PERFORM pg_notify('modelreg_models', OLD.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER modelreg_models_notify_insert
    AFTER INSERT ON models
    FOR EACH ROW EXECUTE FUNCTION modelreg_models_notify();
