-- modelreg schema, version 4: tell the registry's read cache what changed.
--
-- Every nginx running the registry caches GET /models/{id} answers and
-- LISTENs on "modelreg_models"; each changed or deleted row is announced
-- by its id when its transaction commits, a TRUNCATE as '*' (drop all).
-- New rows need no notice: nothing caches a model before it exists.

CREATE FUNCTION modelreg_models_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('modelreg_models', '*');
    ELSE
        PERFORM pg_notify('modelreg_models', OLD.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER modelreg_models_notify
    AFTER UPDATE OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION modelreg_models_notify();

CREATE TRIGGER modelreg_models_notify_truncate
    AFTER TRUNCATE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_models_notify();
