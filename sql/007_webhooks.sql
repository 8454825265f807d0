-- Webhooks (README "Webhooks"): an outbox row per audit event and hook,
-- written by a trigger in the INSERT of the event itself, so a delivery
-- exists exactly when its change committed; and per hook a lease, so one
-- worker of the cluster delivers it at a time.

-- The hooks of the nodes' nginx.conf (modelreg_webhook), by name, as
-- their deliverers announce them: the actions they want, when a node last
-- said so, and the lease (holder + until, as geti_sync_lease's).
CREATE TABLE webhook_hooks (
    name      text PRIMARY KEY,
    actions   text[] NOT NULL,
    seen      timestamptz NOT NULL DEFAULT now(),
    holder    text,
    until     timestamptz NOT NULL DEFAULT 'epoch'
);

-- A model's next event number, taken under this row's lock: a
-- transaction that writes an event of the model waits here for the one
-- before it to end, so the numbers of a model are in commit order and
-- without gaps (model '' : events of no model, geti.sync).
CREATE TABLE webhook_heads (
    model     text PRIMARY KEY,
    seq       bigint NOT NULL
);

-- The outbox.  The id is the X-Modelreg-Delivery header: one per event
-- and hook, the same on every attempt.
CREATE TABLE webhook_deliveries (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    hook        text NOT NULL,
    event_id    bigint NOT NULL REFERENCES audit_events (id)
                ON DELETE CASCADE,
    model       text NOT NULL,
    seq         bigint NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    done_at     timestamptz
);

CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries
    (hook, model, seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_done_idx ON webhook_deliveries (done_at)
    WHERE state <> 'pending';


-- A row per hook that wants the event and that a node announced within
-- the hour (a hook removed from every nginx.conf gets nothing new).  No
-- hook wants it: nothing is written, no lock taken.
CREATE FUNCTION modelreg_webhook_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s  bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_hooks h
                   WHERE NEW.action = ANY (h.actions)
                   AND h.seen > now() - interval '1 hour')
    THEN
        RETURN NULL;
    END IF;

    INSERT INTO webhook_heads AS w (model, seq)
        VALUES (coalesce(NEW.model_id, ''), 1)
        ON CONFLICT (model) DO UPDATE SET seq = w.seq + 1
        RETURNING w.seq INTO s;

    INSERT INTO webhook_deliveries (hook, event_id, model, seq)
        SELECT h.name, NEW.id, coalesce(NEW.model_id, ''), s
        FROM webhook_hooks h
        WHERE NEW.action = ANY (h.actions)
        AND h.seen > now() - interval '1 hour';

    RETURN NULL;
END
$$;

CREATE TRIGGER modelreg_webhook_outbox AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION modelreg_webhook_outbox();


-- A deliverer's round begins here: the hook announced (when a node last
-- did so over a minute ago, or its actions changed), its lease taken, or
-- renewed when less than a round's worst case (p_lease_ms) is left of it
-- (it is taken for two: an idle holder writes the row that seldom), and,
-- when held, the deliveries pending longer than the retry window marked
-- failed: this hook's, and those of hooks no node announced within the
-- window (removed from every nginx.conf).  Delivered and failed rows go
-- after a week.  "failed": {"hook": count} of the rows failed now.
CREATE FUNCTION modelreg_webhook_lease(p_hook text, p_actions text[],
    p_holder text, p_lease_ms bigint, p_window_s bigint,
    OUT held boolean, OUT failed jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_hooks WHERE name = p_hook
                   AND actions = p_actions
                   AND seen > now() - interval '1 minute')
    THEN
        INSERT INTO webhook_hooks AS h (name, actions)
            VALUES (p_hook, p_actions)
            ON CONFLICT (name) DO UPDATE SET actions = p_actions,
                                             seen = now();
    END IF;

    UPDATE webhook_hooks SET holder = p_holder,
        until = now() + 2 * p_lease_ms * interval '1 ms'
        WHERE name = p_hook
        AND (holder IS NULL OR until < now()
             OR (holder = p_holder
                 AND until < now() + p_lease_ms * interval '1 ms'));

    held := FOUND OR EXISTS (SELECT 1 FROM webhook_hooks WHERE name = p_hook
                             AND holder = p_holder AND until > now());
    failed := '{}';

    IF NOT held THEN
        RETURN;
    END IF;

    WITH f AS (UPDATE webhook_deliveries d SET state = 'failed',
                   done_at = now(),
                   last_error = coalesce(d.last_error, 'never attempted')
               WHERE d.state = 'pending'
               AND d.created < now() - p_window_s * interval '1 s'
               AND (d.hook = p_hook
                    OR d.hook NOT IN (SELECT name FROM webhook_hooks
                                      WHERE seen > now()
                                            - p_window_s * interval '1 s'))
               RETURNING d.hook)
    SELECT coalesce(jsonb_object_agg(c.hook, c.n), '{}') INTO failed
        FROM (SELECT f.hook, count(*) n FROM f GROUP BY f.hook) c;

    DELETE FROM webhook_deliveries
        WHERE state <> 'pending' AND done_at < now() - interval '7 days';
END
$$;
