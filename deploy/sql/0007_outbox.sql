-- 0007: the notification outbox.
--
-- Every notification is written here once, under a unique key (the event,
-- the recipient and the channel), before anything is sent; replicas and
-- restarts that read the same events insert nothing twice. A sender claims
-- due rows with a lease (FOR UPDATE SKIP LOCKED), sends, and records the
-- outcome with its event (notification.sent, or notification.failed once the
-- attempts are used up: the row is then dead, for an operator to see). A
-- sender that dies between sending and recording leaves a row whose lease
-- expires: it is sent once more, with the same delivery id, which receivers
-- use to drop the repeat.

CREATE TABLE outbox (
    outbox_id    bigserial PRIMARY KEY,
    key          text NOT NULL UNIQUE,     -- event_id/recipient/channel
    delivery_id  uuid NOT NULL,
    event_seq    bigint NOT NULL,
    event_type   text NOT NULL,
    case_id      uuid,
    kind         text NOT NULL,            -- acknowledgement, progress, result, survey, ...
    channel      text NOT NULL,            -- email, sms, webhook
    recipient    text NOT NULL,            -- a role or user id, never an address: goes in events
    address      text,                     -- where to: personal data, erased with the case
    payload      jsonb NOT NULL,           -- rendered subject and text, or the webhook body
    state        text NOT NULL DEFAULT 'pending', -- pending, sending, sent, dead
    attempts     int NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (next_at) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_dead_idx ON outbox (created_at) WHERE state = 'dead';
CREATE INDEX outbox_case_idx ON outbox (case_id);

-- How far each reader of the event log got.
CREATE TABLE event_cursors (
    reader text PRIMARY KEY,
    seq    bigint NOT NULL
);

-- The events after p_reader's cursor with what notifications need of their
-- case; cjk says whether the complaint is written in Chinese characters (the
-- language of the reply when the customer gave none).
CREATE FUNCTION plaint_outbox_events(p_reader text, p_limit int, p_ack_wait interval)
RETURNS TABLE (seq bigint, event_id uuid, type text, case_id uuid, data jsonb, case_no text,
               lang text, customer_name text, customer_email text, customer_phone text,
               assignee text, department text, first_response_due text, cjk boolean)
LANGUAGE sql STABLE AS $$
    SELECT e.seq, e.event_id, e.type, e.case_id, e.data, c.case_no, c.lang, c.customer_name,
           c.customer_email, c.customer_phone, c.assignee, c.department,
           to_char(c.first_response_due AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
           c.body ~ '[一-鿿]'
    FROM events e LEFT JOIN cases c ON c.case_id = e.case_id
    WHERE e.seq > coalesce((SELECT k.seq FROM event_cursors k WHERE k.reader = p_reader), 0)
      -- The acknowledgement promises the first-response time, which routing
      -- sets a moment after case.received: the page stops before a received
      -- case that is not routed yet, for p_ack_wait at most.
      AND e.seq < coalesce((
            SELECT min(b.seq) FROM events b JOIN cases k ON k.case_id = b.case_id
            WHERE b.type = 'case.received' AND k.first_response_due IS NULL
              AND k.state IN ('received', 'classified') AND b.at > now() - p_ack_wait
              AND b.seq > coalesce((SELECT k2.seq FROM event_cursors k2
                                    WHERE k2.reader = p_reader), 0)), 9223372036854775807)
    ORDER BY e.seq
    LIMIT p_limit
$$;

-- Writes a page's notifications ([{key, delivery_id, event_seq, event_type,
-- case_id, kind, channel, recipient, address, payload}]) and moves the
-- reader's cursor to p_seq, in one transaction. Returns the rows new now.
CREATE FUNCTION plaint_outbox_enqueue(p_rows jsonb, p_reader text, p_seq bigint)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    INSERT INTO outbox (key, delivery_id, event_seq, event_type, case_id, kind, channel,
                        recipient, address, payload)
    SELECT r->>'key', (r->>'delivery_id')::uuid, (r->>'event_seq')::bigint, r->>'event_type',
           (r->>'case_id')::uuid, r->>'kind', r->>'channel', r->>'recipient', r->>'address',
           r->'payload'
    FROM jsonb_array_elements(p_rows) r
    ON CONFLICT (key) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO event_cursors (reader, seq) VALUES (p_reader, p_seq)
    ON CONFLICT (reader) DO UPDATE SET seq = greatest(event_cursors.seq, EXCLUDED.seq);
    RETURN n;
END
$$;

-- Claims up to p_limit due notifications for p_lease: pending ones whose
-- time has come, and ones whose sender's lease ran out.
CREATE FUNCTION plaint_outbox_claim(p_limit int, p_lease interval)
RETURNS TABLE (outbox_id bigint, delivery_id uuid, kind text, channel text, recipient text,
               address text, payload jsonb, attempts int, event_type text, case_id uuid)
LANGUAGE sql AS $$
    UPDATE outbox o SET state = 'sending', lease_until = now() + p_lease,
                        attempts = o.attempts + 1
    WHERE o.outbox_id IN (
        SELECT k.outbox_id FROM outbox k
        WHERE (k.state = 'pending' AND k.next_at <= now())
           OR (k.state = 'sending' AND k.lease_until < now())
        ORDER BY k.next_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    RETURNING o.outbox_id, o.delivery_id, o.kind, o.channel, o.recipient, o.address, o.payload,
              o.attempts, o.event_type, o.case_id
$$;

-- Records an attempt: sent (notification.sent), or failed: retried at
-- p_retry_at, or, when p_retry_at is null (attempts used up), dead with
-- notification.failed. Returns false when the row was not ours any more.
CREATE FUNCTION plaint_outbox_done(p_id bigint, p_ok boolean, p_error text,
                                   p_retry_at timestamptz, p_source text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    o outbox;
BEGIN
    UPDATE outbox SET
        state = CASE WHEN p_ok THEN 'sent' WHEN p_retry_at IS NULL THEN 'dead' ELSE 'pending' END,
        sent_at = CASE WHEN p_ok THEN now() END,
        next_at = coalesce(p_retry_at, next_at),
        lease_until = NULL,
        last_error = CASE WHEN p_ok THEN NULL ELSE p_error END
    WHERE outbox_id = p_id AND state = 'sending'
    RETURNING * INTO o;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_ok OR p_retry_at IS NULL THEN
        INSERT INTO events (type, case_id, source, data)
        SELECT CASE WHEN p_ok THEN 'notification.sent' ELSE 'notification.failed' END,
               o.case_id, p_source,
               jsonb_build_object('case_id', o.case_id, 'case_no', c.case_no, 'kind', o.kind,
                                  'channel', o.channel, 'to', o.recipient,
                                  'delivery_id', o.delivery_id, 'event', o.event_type)
               || CASE WHEN p_ok THEN jsonb_build_object('attempt', o.attempts)
                       ELSE jsonb_build_object('error', left(p_error, 500),
                                               'attempts', o.attempts, 'final', true) END
        FROM (SELECT 1) one LEFT JOIN cases c ON c.case_id = o.case_id;
        PERFORM pg_notify('plaint_events', '');
    END IF;
    RETURN true;
END
$$;

-- Hands rows back that a stopping sender holds: due again at once, and the
-- attempt does not count.
CREATE FUNCTION plaint_outbox_release(p_ids bigint[]) RETURNS int
LANGUAGE sql AS $$
    WITH released AS (
        UPDATE outbox SET state = 'pending', lease_until = NULL, next_at = now(),
                          attempts = greatest(attempts - 1, 0)
        WHERE outbox_id = ANY (p_ids) AND state = 'sending'
        RETURNING 1)
    SELECT count(*)::int FROM released
$$;

-- Erasure reaches the outbox too: addresses and rendered texts of the
-- customer's cases go, the record of what was sent stays.
CREATE OR REPLACE FUNCTION plaint_erase_outbox(p_cases uuid[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE outbox SET address = NULL, payload = jsonb_build_object('erased', true)
    WHERE case_id = ANY (p_cases)
$$;
