-- The change feed, GET /events (README "Change feed"): each audit event
-- records the transaction that wrote it and the name of the model it is
-- about, and its commit wakes the nginx workers that wait on the feed.

-- The writing transaction's id.  A reader's horizon,
-- pg_snapshot_xmin(pg_current_snapshot()), is a transaction id below
-- which every transaction has ended: an event with an xid below it is
-- visible to that read and to every later one, whenever it committed,
-- while an id (a sequence's, taken at INSERT) may commit after a larger
-- one.  The cursor is such a horizon.  Rows written before this
-- migration keep NULL: they are before every cursor.
ALTER TABLE audit_events ADD COLUMN xid xid8;
ALTER TABLE audit_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- the model's name, for GET /events?name= (the row may be gone by then)
ALTER TABLE audit_events ADD COLUMN name text;

CREATE INDEX audit_events_xid_idx ON audit_events (xid);


-- The name from the event's own details where it has one (model.create,
-- geti.import, model.delete, alias.*; model.update when it renames), else
-- from the model; the xid is the writer's, whatever the INSERT said.
CREATE FUNCTION modelreg_audit_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.xid := pg_current_xact_id();
    NEW.name := coalesce(NEW.details->'changed'->'name'->>'new',
                         NEW.details->>'name',
                         (SELECT m.name FROM models m
                          WHERE m.id = NEW.model_id));
    RETURN NEW;
END
$$;

CREATE TRIGGER modelreg_audit_feed BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION modelreg_audit_feed();


-- "<id> <action>[ <name>]" on channel modelreg_events, delivered at
-- commit (after the transaction has left the running ones): enough for a
-- worker to tell which of its waiters it concerns without a query.
CREATE FUNCTION modelreg_audit_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('modelreg_events',
                      NEW.id || ' ' || NEW.action
                      || coalesce(' ' || left(NEW.name, 1024), ''));
    RETURN NULL;
END
$$;

CREATE TRIGGER modelreg_audit_notify AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION modelreg_audit_notify();
