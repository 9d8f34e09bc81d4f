-- 0001: cases, the event log with its sequencer, and durable intake.
--
-- Events are written with seq NULL by whoever changes a case, in the same
-- transaction as the change. A single sequencer at a time (advisory lock)
-- numbers them in one short transaction, so the set of numbered events any
-- reader can see is always a prefix 1..N: an event that commits late simply
-- gets a later number, and a replay after N never skips one.
-- See proto/PROTOCOL.md, "Sequence numbers".

CREATE FUNCTION plaint_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    -- A random v4 UUID with its first 48 bits replaced by the Unix time in ms
    -- and the version nibble set to 7 (RFC 9562).
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;

CREATE SEQUENCE case_no_seq;

CREATE TABLE cases (
    case_id            uuid PRIMARY KEY,
    case_no            text NOT NULL UNIQUE,
    source             text NOT NULL,
    external_id        text,
    message_id         text,
    channel            text NOT NULL,
    customer_id        text,
    customer_name      text,
    customer_phone     text,
    customer_email     text,
    customer_type      text NOT NULL DEFAULT 'individual',
    lang               text,
    subject            text,
    body               text NOT NULL,
    demand             text,
    demand_type        text,
    target             jsonb,
    occurred_at        timestamptz,
    location           text,
    attachments        jsonb,
    -- The data object exactly as accepted, unknown fields included, except
    -- body (stored once, above): nothing a client sent is ever lost.
    submission         jsonb NOT NULL,
    state              text NOT NULL DEFAULT 'received',
    received_at        timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cases_idempotency_key UNIQUE (source, external_id)
);

CREATE INDEX cases_received_at_idx ON cases (received_at);

CREATE TABLE events (
    event_id    uuid PRIMARY KEY DEFAULT plaint_uuid_v7(),
    pending_id  bigserial NOT NULL,  -- insertion order; the sequencer numbers in this order
    seq         bigint UNIQUE,       -- NULL until sequenced; then never changes
    type        text NOT NULL,
    case_id     uuid,                -- NULL for events about no single case (alert.spike)
    source      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    data        jsonb NOT NULL
);

CREATE INDEX events_unsequenced_idx ON events (pending_id) WHERE seq IS NULL;
CREATE INDEX events_case_idx ON events (case_id, pending_id);

-- The wire form of an event (proto/schemas/event.json): the envelope, with
-- case_id, case_no and seq always in data.
CREATE FUNCTION plaint_event_envelope(e events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', e.type, 'v', 1, 'id', e.event_id,
        'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'source', e.source,
        'data', e.data || jsonb_build_object('seq', e.seq))::text
$$;

-- Numbers up to max_n waiting events, in insertion order, and returns them.
-- Returns nothing when another sequencer holds the lock: it will number them.
CREATE FUNCTION plaint_sequence_events(max_n int)
RETURNS TABLE (seq bigint, type text, case_id uuid, envelope text)
LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
BEGIN
    -- Held until commit, so the next sequencer starts from our numbers.
    IF NOT pg_try_advisory_xact_lock(7102, 1) THEN
        RETURN;
    END IF;
    -- This statement runs after the lock was granted, so its snapshot sees
    -- every number the previous holder committed.
    SELECT coalesce(max(e.seq), 0) INTO base FROM events e;
    RETURN QUERY
    WITH waiting AS (
        SELECT q.event_id, base + row_number() OVER (ORDER BY q.pending_id) AS n
        FROM (SELECT e.event_id, e.pending_id FROM events e
              WHERE e.seq IS NULL ORDER BY e.pending_id LIMIT max_n) q
    ), numbered AS (
        UPDATE events e SET seq = w.n FROM waiting w
        WHERE e.event_id = w.event_id
        RETURNING e.*
    )
    SELECT n.seq, n.type, n.case_id, plaint_event_envelope(n::events)
    FROM numbered n ORDER BY n.seq;
    IF FOUND THEN
        PERFORM pg_notify('plaint_seq', '');
    END IF;
END
$$;

-- Stores a batch of accepted submissions (group commit). Each parameter is a
-- text array with one element per submission, in the same order (built by
-- services/intake/intake_batch.c; binary arrays cost the server far less to
-- read than one JSON document). jsonb and timestamptz values come as text.
-- Returns one row per submission: the case it maps to, duplicate = true when
-- (source, external_id) was already taken (by an earlier commit, a
-- concurrent one, or an earlier row of this batch), and the seq of the
-- case.received event for new cases.
--
-- The events of the batch are numbered here, under the sequencer lock taken
-- just before they are written and held until commit, rather than by a
-- later sequencer pass: the same prefix guarantee without a second write of
-- every event.
CREATE FUNCTION plaint_submit_batch(
    p_case_id text[], p_source text[], p_external_id text[], p_message_id text[],
    p_channel text[], p_customer_id text[], p_customer_name text[], p_customer_phone text[],
    p_customer_email text[], p_customer_type text[], p_lang text[], p_subject text[],
    p_body text[], p_demand text[], p_demand_type text[], p_target text[],
    p_occurred_at text[], p_location text[], p_attachments text[], p_submission text[],
    p_event_source text)
RETURNS TABLE (idx int, case_id uuid, case_no text, duplicate boolean, seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    new_ids uuid[];
    new_data jsonb[];
    base bigint;
BEGIN
    WITH input AS (
        SELECT (r.ord - 1)::int AS idx, r.case_id::uuid AS case_id, r.source, r.external_id,
               r.message_id, r.channel, r.customer_id, r.customer_name, r.customer_phone,
               r.customer_email, coalesce(r.customer_type, 'individual') AS customer_type,
               r.lang, r.subject, r.body, r.demand, r.demand_type, r.target::jsonb AS target,
               r.occurred_at::timestamptz AS occurred_at, r.location,
               r.attachments::jsonb AS attachments, r.submission::jsonb AS submission,
               -- nextval in a select list runs once per row.
               nextval('case_no_seq')::text AS n
        FROM unnest(p_case_id, p_source, p_external_id, p_message_id, p_channel, p_customer_id,
                    p_customer_name, p_customer_phone, p_customer_email, p_customer_type,
                    p_lang, p_subject, p_body, p_demand, p_demand_type, p_target,
                    p_occurred_at, p_location, p_attachments, p_submission)
             WITH ORDINALITY AS r(case_id, source, external_id, message_id, channel,
                    customer_id, customer_name, customer_phone, customer_email, customer_type,
                    lang, subject, body, demand, demand_type, target, occurred_at, location,
                    attachments, submission, ord)
        ORDER BY r.ord
    ), inserted AS (
        INSERT INTO cases AS c (case_id, case_no, source, external_id, message_id, channel,
            customer_id, customer_name, customer_phone, customer_email, customer_type, lang,
            subject, body, demand, demand_type, target, occurred_at, location, attachments,
            submission)
        SELECT i.case_id,
               -- At least six digits; lpad alone would cut longer numbers.
               'C-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '-'
                    || lpad(i.n, greatest(6, length(i.n)), '0'),
               i.source, i.external_id, i.message_id, i.channel, i.customer_id,
               i.customer_name, i.customer_phone, i.customer_email, i.customer_type, i.lang,
               i.subject, i.body, i.demand, i.demand_type, i.target, i.occurred_at,
               i.location, i.attachments, i.submission
        FROM input i
        ON CONFLICT (source, external_id) DO NOTHING
        RETURNING c.case_id, c.case_no, c.source, c.external_id, c.channel, c.customer_type,
                  c.lang, c.received_at
    )
    SELECT array_agg(n.case_id ORDER BY n.case_no),
           array_agg(jsonb_build_object('case_id', n.case_id, 'case_no', n.case_no,
                   'state', 'received', 'channel', n.channel, 'source', n.source,
                   'external_id', n.external_id, 'customer_type', n.customer_type,
                   'lang', n.lang,
                   'received_at', to_char(n.received_at AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                     ORDER BY n.case_no)
    INTO new_ids, new_data
    FROM inserted n;

    IF new_ids IS NOT NULL THEN
        -- Held until commit: no other writer numbers events until ours are
        -- visible, so numbers always become visible in order.
        PERFORM pg_advisory_xact_lock(7102, 1);
        SELECT coalesce(max(e.seq), 0) INTO base FROM events e;
        INSERT INTO events (seq, type, case_id, source, data)
        SELECT base + o.ord, 'case.received', o.id, p_event_source, o.data
        FROM unnest(new_ids, new_data) WITH ORDINALITY AS o(id, data, ord);
        PERFORM pg_notify('plaint_seq', '');
    END IF;

    -- A new statement, hence a new snapshot: it sees a conflicting case that a
    -- concurrent transaction committed while our INSERT waited for it.
    RETURN QUERY
    SELECT (r.ord - 1)::int, c.case_id, c.case_no, c.case_id <> r.id::uuid,
           CASE WHEN c.case_id = r.id::uuid
                THEN base + array_position(new_ids, c.case_id) END
    FROM unnest(p_case_id, p_source, p_external_id) WITH ORDINALITY AS r(id, source, ext, ord)
    CROSS JOIN LATERAL (
        SELECT k.case_id, k.case_no FROM cases k
        WHERE r.ext IS NOT NULL AND k.source = r.source AND k.external_id = r.ext
        UNION ALL
        SELECT k.case_id, k.case_no FROM cases k
        WHERE r.ext IS NULL AND k.case_id = r.id::uuid
    ) c
    ORDER BY r.ord;
END
$$;
