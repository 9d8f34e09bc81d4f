-- 0004: what the desk needs to work cases through the procedure.
--
-- Staff actions (acknowledge, note, assign, reject, propose, promise,
-- feedback, resolve, reopen, review, close, rate) change a case with one
-- conditional statement: the update happens only if the case is still in the
-- state the desk decided on (common/pl_workflow.c), and the action's events
-- are inserted by the same statement. Two agents acting at once: one update
-- wins, the other finds the state changed and is told so (HTTP 409).
-- Events are inserted unnumbered, as stage events are; the hub's sequencer
-- numbers and publishes them.

ALTER TABLE cases
    ADD COLUMN acknowledged_at  timestamptz,  -- first response: stops that clock
    ADD COLUMN resolved_at      timestamptz,  -- last resolution (cleared by a reopen)
    ADD COLUMN first_resolved_at timestamptz, -- first resolution, for time-to-resolve figures
    ADD COLUMN reviewed_at      timestamptz,
    ADD COLUMN closed_at        timestamptz,
    ADD COLUMN rejected_at      timestamptz,
    ADD COLUMN reopen_count     int NOT NULL DEFAULT 0,
    ADD COLUMN satisfied        boolean,      -- the customer's last feedback
    ADD COLUMN csat             smallint,     -- the survey's score, 1..5
    ADD COLUMN promise_due      timestamptz,  -- the latest time promised to the customer
    ADD COLUMN promise_at       timestamptz,  -- when that promise was made
    ADD COLUMN promise_kept_at  timestamptz,  -- when the customer next heard back
    ADD COLUMN escalation_level int NOT NULL DEFAULT 0,
    ADD COLUMN erased_at        timestamptz;  -- the customer's personal data was erased

-- Lists filter by any department involved.
CREATE INDEX cases_departments_idx ON cases USING gin (departments);

-- Cases are listed in the order they became visible. case_id (UUID v7) is
-- made when intake assembles a batch, and batches of different intakes
-- commit in any order, so a page after case X could miss a case with a
-- smaller id that committed later. received_seq is taken under the
-- sequencer lock (7102) held to commit, so it grows in commit order: a
-- reader that has seen N has seen every case numbered below N, and paging by
-- it returns each case once. plaint_submit_batch now takes that lock before
-- it stores the batch (it took it before writing the events): one intake
-- connection per batch in flight already worked this way; intakes on
-- several hosts now take turns.

CREATE SEQUENCE case_order_seq;

ALTER TABLE cases ADD COLUMN received_seq bigint;

UPDATE cases c SET received_seq = e.seq
FROM events e WHERE e.case_id = c.case_id AND e.type = 'case.received';
UPDATE cases c SET received_seq = 0 WHERE received_seq IS NULL; -- not numbered yet: first
SELECT setval('case_order_seq', greatest(coalesce((SELECT max(received_seq) FROM cases), 0), 1));

ALTER TABLE cases ALTER COLUMN received_seq SET NOT NULL;
CREATE INDEX cases_received_seq_idx ON cases (received_seq);
CREATE INDEX cases_state_page_idx ON cases (state, received_seq);
CREATE INDEX cases_department_page_idx ON cases (department, received_seq);

CREATE OR REPLACE FUNCTION plaint_submit_batch(
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
    -- Held until commit, from before the cases get their order numbers: no
    -- other writer stores cases or numbers events until ours are visible, so
    -- both kinds of number become visible in order.
    PERFORM pg_advisory_xact_lock(7102, 1);
    WITH input AS (
        SELECT (r.ord - 1)::int AS idx, r.case_id::uuid AS case_id, r.source, r.external_id,
               r.message_id, r.channel, r.customer_id, r.customer_name, r.customer_phone,
               r.customer_email, coalesce(r.customer_type, 'individual') AS customer_type,
               r.lang, r.subject, r.body, r.demand, r.demand_type, r.target::jsonb AS target,
               r.occurred_at::timestamptz AS occurred_at, r.location,
               r.attachments::jsonb AS attachments, r.submission::jsonb AS submission,
               -- nextval in a select list runs once per row.
               nextval('case_no_seq')::text AS n,
               nextval('case_order_seq') AS o
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
            submission, received_seq)
        SELECT i.case_id,
               -- At least six digits; lpad alone would cut longer numbers.
               'C-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '-'
                    || lpad(i.n, greatest(6, length(i.n)), '0'),
               i.source, i.external_id, i.message_id, i.channel, i.customer_id,
               i.customer_name, i.customer_phone, i.customer_email, i.customer_type, i.lang,
               i.subject, i.body, i.demand, i.demand_type, i.target, i.occurred_at,
               i.location, i.attachments, i.submission, i.o
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


-- Whether a case's first-response or resolution deadline (or a promise) has
-- passed while it still needs work.
CREATE FUNCTION plaint_case_overdue(c cases) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT plaint_state_is_open(c.state) AND (
        (c.acknowledged_at IS NULL AND c.first_response_due < now())
        OR c.resolution_due < now()
        OR (c.promise_kept_at IS NULL AND c.promise_due < now()))
$$;

-- The SLA clocks of a case, for the desk's case view.
CREATE FUNCTION plaint_case_clocks(c cases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'first_response', jsonb_build_object(
            'due_at', c.first_response_due, 'met_at', c.acknowledged_at,
            'breached', c.first_response_due < coalesce(c.acknowledged_at, now())),
        'resolution', jsonb_build_object(
            'due_at', c.resolution_due, 'met_at', c.first_resolved_at,
            'breached', c.resolution_due < coalesce(c.first_resolved_at, now())),
        'promise', CASE WHEN c.promise_due IS NULL THEN NULL ELSE jsonb_build_object(
            'due_at', c.promise_due,
            'made_at', c.promise_at, 'met_at', c.promise_kept_at,
            'breached', c.promise_due < coalesce(c.promise_kept_at,
                                                 CASE WHEN plaint_state_is_open(c.state)
                                                      THEN now() END)) END)
$$;

-- A case as the desk shows it, without its timeline. Contact data is masked
-- by the desk for roles that may not see it.
CREATE FUNCTION plaint_case_summary(c cases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'case_id', c.case_id, 'case_no', c.case_no, 'state', c.state,
        'received_seq', c.received_seq, 'source', c.source, 'external_id', c.external_id, 'channel', c.channel,
        'customer', jsonb_strip_nulls(jsonb_build_object(
            'id', c.customer_id, 'name', c.customer_name, 'phone', c.customer_phone,
            'email', c.customer_email, 'type', c.customer_type, 'lang', c.lang)),
        'subject', c.subject, 'demand', c.demand, 'demand_type', c.demand_type,
        'target', c.target, 'occurred_at', c.occurred_at, 'location', c.location,
        'received_at', c.received_at, 'updated_at', c.updated_at,
        'category', c.category, 'priority', c.priority, 'sentiment', c.sentiment,
        'confidence', c.confidence, 'repeat_of', c.repeat_of,
        'signals', coalesce(c.signals, '[]'::jsonb),
        'classification', CASE WHEN c.category IS NULL THEN NULL ELSE jsonb_build_object(
            'category', c.category, 'priority', c.priority, 'confidence', c.confidence,
            'sentiment', c.sentiment, 'repeat_of', c.repeat_of,
            'signals', coalesce(c.signals, '[]'::jsonb)) END,
        'department', c.department, 'departments', to_jsonb(coalesce(c.departments, '{}')),
        'assignee', c.assignee,
        'first_response_due', c.first_response_due, 'resolution_due', c.resolution_due,
        'sla', plaint_case_clocks(c), 'overdue', coalesce(plaint_case_overdue(c), false),
        'acknowledged_at', c.acknowledged_at, 'resolved_at', c.resolved_at,
        'reviewed_at', c.reviewed_at, 'closed_at', c.closed_at, 'rejected_at', c.rejected_at,
        'reopen_count', c.reopen_count, 'satisfied', c.satisfied, 'csat', c.csat,
        'promise_due', c.promise_due, 'escalation_level', c.escalation_level,
        'parked', c.parked_at IS NOT NULL, 'parked_reason', c.parked_reason)
$$;

-- The whole case: the summary, the body and attachments, and its timeline
-- (every event, in the order written; seq is null for a moment until the
-- sequencer numbers a new one).
CREATE FUNCTION plaint_case_view(c cases) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT (plaint_case_summary(c) || jsonb_build_object(
        'body', c.body, 'attachments', c.attachments,
        'timeline', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'seq', e.seq, 'type', e.type, 'at', e.at, 'source', e.source,
                       'data', e.data) ORDER BY e.pending_id)
            FROM events e WHERE e.case_id = c.case_id), '[]'::jsonb)))::text
$$;

-- Applies one staff action: moves the case from p_from to p_to (the same for
-- actions that keep the state), sets what the action records (p_patch:
-- assignee, department, satisfied, score, due_at) and inserts p_events
-- ([{type, data}], in order; case_id, case_no and state are added) in one
-- statement. Returns done = false, with the case's state now, when the case
-- was no longer in p_from; no row when there is no such case.
CREATE FUNCTION plaint_case_act(p_case uuid, p_from text, p_to text, p_patch jsonb,
                                p_events jsonb, p_source text)
RETURNS TABLE (done boolean, state text, case_no text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    moved record;
    old record;
BEGIN
    -- The row is locked first, so what the events say was there before (the
    -- previous assignee, the reopen count) is what this update replaced.
    SELECT c.assignee, c.department, c.reopen_count INTO old
    FROM cases c WHERE c.case_id = p_case AND c.state = p_from
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, k.state, k.case_no FROM cases k WHERE k.case_id = p_case;
        RETURN;
    END IF;
    UPDATE cases c SET
        state = p_to,
        updated_at = now(),
        acknowledged_at = CASE WHEN p_to = 'acknowledged' THEN coalesce(c.acknowledged_at, now())
                               ELSE c.acknowledged_at END,
        resolved_at = CASE WHEN p_to = 'resolved' THEN now()
                           WHEN p_to = 'reopened' THEN NULL ELSE c.resolved_at END,
        first_resolved_at = CASE WHEN p_to = 'resolved' THEN coalesce(c.first_resolved_at, now())
                                 ELSE c.first_resolved_at END,
        reviewed_at = CASE WHEN p_to = 'reviewed' THEN now() ELSE c.reviewed_at END,
        closed_at = CASE WHEN p_to = 'closed' THEN now() ELSE c.closed_at END,
        rejected_at = CASE WHEN p_to = 'rejected' THEN now() ELSE c.rejected_at END,
        reopen_count = c.reopen_count + CASE WHEN p_to = 'reopened' THEN 1 ELSE 0 END,
        assignee = CASE WHEN p_patch ? 'assignee' THEN p_patch->>'assignee' ELSE c.assignee END,
        department = coalesce(p_patch->>'department', c.department),
        departments = CASE
            WHEN p_patch->>'department' IS NULL
                 OR p_patch->>'department' = ANY (coalesce(c.departments, '{}')) THEN c.departments
            ELSE coalesce(c.departments, '{}') || (p_patch->>'department') END,
        satisfied = CASE WHEN p_patch ? 'satisfied' THEN (p_patch->>'satisfied')::boolean
                         ELSE c.satisfied END,
        csat = coalesce((p_patch->>'score')::smallint, c.csat),
        promise_due = coalesce((p_patch->>'due_at')::timestamptz, c.promise_due),
        promise_at = CASE WHEN p_patch ? 'due_at' THEN now() ELSE c.promise_at END,
        -- A promise is kept when the customer hears back: a solution, a
        -- resolution, a rejection, their own feedback, or a note that records
        -- contact with them ("customer_contact": true).
        promise_kept_at = CASE
            WHEN p_patch ? 'due_at' THEN NULL
            WHEN c.promise_due IS NOT NULL AND c.promise_kept_at IS NULL AND EXISTS (
                SELECT 1 FROM jsonb_array_elements(p_events) x(e)
                WHERE x.e->>'type' IN ('case.solution_proposed', 'case.resolved',
                                       'case.rejected', 'case.feedback', 'case.closed')
                   OR (x.e->>'type' = 'case.noted'
                       AND (x.e->'data'->>'customer_contact')::boolean))
                THEN now()
            ELSE c.promise_kept_at END
    WHERE c.case_id = p_case AND c.state = p_from
    RETURNING c.case_id, c.case_no INTO moved;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, k.state, k.case_no FROM cases k WHERE k.case_id = p_case;
        RETURN;
    END IF;
    INSERT INTO events (type, case_id, source, data)
    SELECT x.e->>'type', p_case, p_source,
           coalesce(x.e->'data', '{}'::jsonb)
               || CASE x.e->>'type'
                    WHEN 'case.assigned' THEN jsonb_build_object(
                        'previous_assignee', old.assignee,
                        'department', coalesce(x.e->'data'->>'department', old.department))
                    WHEN 'case.reopened' THEN jsonb_build_object(
                        'reopen_count', old.reopen_count + 1,
                        'department', coalesce(x.e->'data'->>'department', old.department))
                    ELSE '{}'::jsonb END
               || jsonb_build_object('case_id', p_case, 'case_no', moved.case_no, 'state', p_to)
    FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, ord)
    ORDER BY x.ord;
    PERFORM pg_notify('plaint_events', '');
    RETURN QUERY SELECT true, p_to, moved.case_no;
END
$$;

-- One page of the event log after p_after, as the JSON text of an array of
-- event envelopes, and the last seq on the page (p_after when empty).
CREATE FUNCTION plaint_events_page(p_after bigint, p_limit int)
RETURNS TABLE (body text, last_seq bigint)
LANGUAGE sql STABLE AS $$
    WITH page AS (
        SELECT e.seq, plaint_event_envelope(e) AS env
        FROM events e WHERE e.seq > p_after ORDER BY e.seq LIMIT p_limit
    )
    SELECT '[' || coalesce(string_agg(p.env, ',' ORDER BY p.seq), '') || ']',
           coalesce(max(p.seq), p_after)
    FROM page p
$$;


-- Figures management asks for (domain "What management measures"), over the
-- cases received in [p_from, p_to), in total and by p_group (category,
-- priority, department, channel, state, or day / hour of receipt in UTC), as JSON text. Times are in seconds;
-- rates are fractions (null when there is nothing to divide by). A deadline
-- counts as met when the clock stopped in time; as missed when it stopped
-- late or is still running past it; a clock still running before its
-- deadline counts for neither.
CREATE FUNCTION plaint_stats(p_from timestamptz, p_to timestamptz, p_group text)
RETURNS text
LANGUAGE sql STABLE AS $$
    WITH base AS (
        SELECT CASE p_group WHEN 'category' THEN c.category WHEN 'priority' THEN c.priority
                            WHEN 'department' THEN c.department WHEN 'channel' THEN c.channel
                            WHEN 'state' THEN c.state
                            WHEN 'day' THEN to_char(c.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                            WHEN 'hour' THEN to_char(c.received_at AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD"T"HH24:00"Z"') END AS k,
               c.state, c.reopen_count, c.repeat_of, c.escalation_level, c.csat,
               c.rejected_at,
               -- float8: extract() gives numeric, slower to average and sort.
               date_part('epoch', c.acknowledged_at - c.received_at) AS frt,
               date_part('epoch', c.first_resolved_at - c.received_at) AS rt,
               CASE WHEN c.first_response_due IS NULL THEN NULL
                    WHEN c.acknowledged_at IS NOT NULL THEN c.acknowledged_at <= c.first_response_due
                    WHEN c.first_response_due < now() THEN false END AS fr_met,
               CASE WHEN c.resolution_due IS NULL THEN NULL
                    WHEN c.first_resolved_at IS NOT NULL THEN c.first_resolved_at <= c.resolution_due
                    WHEN c.resolution_due < now() AND plaint_state_is_open(c.state) THEN false
                    END AS res_met,
               c.first_resolved_at IS NOT NULL AS was_resolved
        FROM cases c
        WHERE c.received_at >= p_from AND c.received_at < p_to
    ), figures AS (
        SELECT GROUPING(k) = 1 AS is_total, k,
               count(*) AS volume,
               count(*) FILTER (WHERE plaint_state_is_open(state)) AS open,
               count(*) FILTER (WHERE rejected_at IS NOT NULL) AS rejected,
               count(*) FILTER (WHERE fr_met) AS fr_met,
               count(*) FILTER (WHERE fr_met IS NOT NULL) AS fr_due,
               count(*) FILTER (WHERE res_met) AS res_met,
               count(*) FILTER (WHERE res_met IS NOT NULL) AS res_due,
               -- Both percentiles from one sort of each time.
               percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY frt) AS frt_p,
               avg(frt) AS frt_avg,
               percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY rt) AS rt_p,
               avg(rt) AS rt_avg,
               count(csat) AS ratings,
               count(*) FILTER (WHERE csat >= 4) AS satisfied_ratings,
               avg(csat) AS csat_avg,
               count(*) FILTER (WHERE was_resolved) AS resolved,
               count(*) FILTER (WHERE was_resolved AND reopen_count = 0) AS resolved_first_time,
               count(*) FILTER (WHERE reopen_count > 0) AS reopened,
               count(*) FILTER (WHERE repeat_of IS NOT NULL) AS repeats,
               count(*) FILTER (WHERE escalation_level > 0) AS escalated
        FROM base
        GROUP BY GROUPING SETS ((), (k))
    ), rows AS (
        SELECT f.is_total, f.k, f.volume, jsonb_build_object(
            'volume', f.volume, 'open', f.open, 'rejected', f.rejected,
            'resolved', f.resolved, 'reopened', f.reopened, 'repeats', f.repeats,
            'escalated', f.escalated, 'ratings', f.ratings,
            'sla', jsonb_build_object(
                'first_response', jsonb_build_object('met', f.fr_met, 'due', f.fr_due,
                    'compliance', round(f.fr_met::numeric / nullif(f.fr_due, 0), 4)),
                'resolution', jsonb_build_object('met', f.res_met, 'due', f.res_due,
                    'compliance', round(f.res_met::numeric / nullif(f.res_due, 0), 4)),
                'compliance', round((f.fr_met + f.res_met)::numeric
                                    / nullif(f.fr_due + f.res_due, 0), 4)),
            'first_response_seconds', jsonb_build_object(
                'median', round(f.frt_p[1]::numeric, 3), 'p90', round(f.frt_p[2]::numeric, 3),
                'avg', round(f.frt_avg::numeric, 3)),
            'resolution_seconds', jsonb_build_object(
                'median', round(f.rt_p[1]::numeric, 3), 'p90', round(f.rt_p[2]::numeric, 3),
                'avg', round(f.rt_avg::numeric, 3)),
            'csat', round(f.satisfied_ratings::numeric / nullif(f.ratings, 0), 4),
            'csat_avg_score', round(f.csat_avg, 2),
            'fcr', round(f.resolved_first_time::numeric / nullif(f.resolved, 0), 4),
            'reopen_rate', round(f.reopened::numeric / nullif(f.volume, 0), 4),
            'repeat_rate', round(f.repeats::numeric / nullif(f.volume, 0), 4),
            'escalation_rate', round(f.escalated::numeric / nullif(f.volume, 0), 4)) AS j
        FROM figures f
    ), top AS (
        SELECT jsonb_build_object('category', c.category,
                                  'product', c.target->>'product', 'store', c.target->>'store',
                                  'count', count(*)) AS j,
               count(*) AS n
        FROM cases c
        WHERE c.received_at >= p_from AND c.received_at < p_to
          AND (c.target ? 'product' OR c.target ? 'store')
        GROUP BY c.category, c.target->>'product', c.target->>'store'
        ORDER BY count(*) DESC, c.category NULLS LAST
        LIMIT 10
    )
    SELECT jsonb_build_object(
        'from', p_from, 'to', p_to, 'group_by', p_group,
        'total', coalesce((SELECT r.j FROM rows r WHERE r.is_total),
                          jsonb_build_object('volume', 0)),
        'groups', coalesce((SELECT jsonb_agg(r.j || jsonb_build_object('key', r.k)
                                             ORDER BY CASE WHEN p_group IN ('day', 'hour')
                                                           THEN 0 ELSE -r.volume END, r.k)
                            FROM rows r WHERE NOT r.is_total AND p_group IS NOT NULL), '[]'),
        'top_problems', coalesce((SELECT jsonb_agg(t.j ORDER BY t.n DESC) FROM top t), '[]'))::text
$$;

-- The open cases, for the dashboard and anything else that wants only them:
-- a small part of all cases (7% in tests/bench/stats_1m.sh), found without
-- reading the rest.
CREATE INDEX cases_open_idx ON cases (case_id) WHERE plaint_state_is_open(state);
-- The newest escalations and spike alerts, without walking back through the
-- whole event log past every other event (alerts are rare).
CREATE INDEX events_escalation_idx ON events (seq)
    WHERE type IN ('case.escalated', 'sla.breached');
CREATE INDEX events_alert_idx ON events (seq) WHERE type = 'alert.spike';

-- Everything the operations dashboard shows, in one round trip, as JSON
-- text: open cases by department and state, cases overdue and due within
-- p_soon, recent escalations and spike alerts, volume by hour over the last
-- day, SLA compliance by day over the last two weeks, and CSAT over 30 days.
CREATE FUNCTION plaint_dashboard(p_soon interval) RETURNS text
LANGUAGE sql STABLE
-- JIT-compiling this many expressions can take longer than running them
-- (1.6 s of 4.5 s over a million cases before the indexes above).
SET jit = off
AS $$
    -- Only the columns shown, not the bodies; the nearest deadline and
    -- whether one passed, once per case. The two lists build their JSON for
    -- the 50 cases they show, not for every open case.
    WITH open_cases AS (
        SELECT c.case_id, c.case_no, c.state, c.priority, c.category, c.department,
               c.assignee, c.received_at,
               least(CASE WHEN c.acknowledged_at IS NULL THEN c.first_response_due END,
                     c.resolution_due,
                     CASE WHEN c.promise_kept_at IS NULL THEN c.promise_due END) AS due_at,
               coalesce(plaint_case_overdue(c), false) AS overdue
        FROM cases c WHERE plaint_state_is_open(c.state)
    ), listed AS (
        (SELECT o.* FROM open_cases o WHERE o.overdue ORDER BY o.due_at LIMIT 50)
        UNION ALL
        (SELECT o.* FROM open_cases o WHERE NOT o.overdue AND o.due_at < now() + p_soon
         ORDER BY o.due_at LIMIT 50)
    ), item AS (
        SELECT l.overdue, l.due_at, jsonb_build_object(
            'case_id', l.case_id, 'case_no', l.case_no, 'state', l.state,
            'priority', l.priority, 'category', l.category, 'department', l.department,
            'assignee', l.assignee, 'received_at', l.received_at, 'due_at', l.due_at) AS j
        FROM listed l
    )
    SELECT jsonb_build_object(
        'now', now(),
        'open_total', (SELECT count(*) FROM open_cases),
        'open_by_department', coalesce((
            SELECT jsonb_agg(jsonb_build_object('department', d.department, 'state', d.state,
                                                'count', d.n) ORDER BY d.department, d.state)
            FROM (SELECT coalesce(department, '(none)') AS department, state, count(*) AS n
                  FROM open_cases GROUP BY 1, 2) d), '[]'),
        'open_by_priority', coalesce((
            SELECT jsonb_object_agg(coalesce(p.priority, '(none)'), p.n)
            FROM (SELECT priority, count(*) AS n FROM open_cases GROUP BY 1) p), '{}'),
        'overdue', coalesce((
            SELECT jsonb_agg(i.j ORDER BY i.due_at) FROM item i WHERE i.overdue), '[]'),
        'overdue_total', (SELECT count(*) FROM open_cases o WHERE o.overdue),
        'due_soon', coalesce((
            SELECT jsonb_agg(i.j ORDER BY i.due_at) FROM item i WHERE NOT i.overdue), '[]'),
        'escalations', coalesce((
            SELECT jsonb_agg(x.j ORDER BY x.seq DESC) FROM (
                SELECT e.seq, e.data || jsonb_build_object('at', e.at, 'type', e.type) AS j
                FROM events e WHERE e.type IN ('case.escalated', 'sla.breached')
                  AND e.seq IS NOT NULL
                ORDER BY e.seq DESC LIMIT 20) x), '[]'),
        'alerts', coalesce((
            SELECT jsonb_agg(x.j ORDER BY x.seq DESC) FROM (
                SELECT e.seq, e.data || jsonb_build_object('at', e.at) AS j
                FROM events e WHERE e.type = 'alert.spike' AND e.seq IS NOT NULL
                ORDER BY e.seq DESC LIMIT 10) x), '[]'),
        'volume_by_hour', coalesce((
            SELECT jsonb_agg(jsonb_build_object('hour', h.hour, 'count', h.n) ORDER BY h.hour)
            FROM (SELECT to_char(date_trunc('hour', received_at) AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:00"Z"') AS hour, count(*) AS n
                  FROM cases WHERE received_at >= now() - interval '24 hours'
                  GROUP BY 1) h), '[]'),
        'sla_by_day', coalesce((
            SELECT jsonb_agg(jsonb_build_object('day', d.day, 'met', d.met, 'due', d.due,
                                                'compliance', round(d.met::numeric
                                                                    / nullif(d.due, 0), 4))
                             ORDER BY d.day)
            FROM (SELECT to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                         count(*) FILTER (WHERE acknowledged_at <= first_response_due) AS met,
                         count(*) FILTER (WHERE acknowledged_at IS NOT NULL
                                          OR first_response_due < now()) AS due
                  FROM cases WHERE received_at >= now() - interval '14 days'
                    AND first_response_due IS NOT NULL
                  GROUP BY 1) d), '[]'),
        'csat', (SELECT jsonb_build_object(
                     'ratings', count(csat),
                     'satisfied', count(*) FILTER (WHERE csat >= 4),
                     'csat', round((count(*) FILTER (WHERE csat >= 4))::numeric
                                   / nullif(count(csat), 0), 4),
                     'avg_score', round(avg(csat), 2))
                 FROM cases WHERE received_at >= now() - interval '30 days'))::text
$$;

-- Erasure on request (privacy law): every case of the customer named by id,
-- phone or e-mail (compared normalised, as repeat detection does) loses its
-- personal data: contact details, the customer's own words, and the staff's
-- free-text notes in its events. The customer id becomes p_pseudonym, so the
-- cases still count as one customer's; categories, priorities, departments,
-- times and scores stay, so the statistics do not change. One case.erased
-- event per case records who did it. Returns the cases erased.
CREATE FUNCTION plaint_erase_customer(p_customer_id text, p_phone text, p_email text,
                                      p_pseudonym text, p_actor text, p_source text)
RETURNS TABLE (case_id uuid, case_no text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS erase_targets (id uuid PRIMARY KEY) ON COMMIT DROP;
    INSERT INTO erase_targets
    SELECT c.case_id FROM cases c
    WHERE (p_customer_id IS NOT NULL AND c.customer_id = p_customer_id)
       OR (p_phone IS NOT NULL AND plaint_norm_phone(c.customer_phone) = plaint_norm_phone(p_phone))
       OR (p_email IS NOT NULL AND plaint_norm_email(c.customer_email) = plaint_norm_email(p_email))
    ON CONFLICT DO NOTHING;
    UPDATE cases c SET
        customer_id = p_pseudonym, customer_name = NULL, customer_phone = NULL,
        customer_email = NULL,
        subject = CASE WHEN c.subject IS NULL THEN NULL ELSE '[erased]' END,
        body = '[erased]',
        demand = CASE WHEN c.demand IS NULL THEN NULL ELSE '[erased]' END,
        location = NULL, attachments = NULL,
        submission = (c.submission - 'customer' - 'subject' - 'demand' - 'location'
                      - 'attachments' - 'target')
                     || jsonb_build_object('customer', jsonb_build_object(
                            'id', p_pseudonym, 'type', c.customer_type), 'erased', true),
        target = CASE WHEN c.target IS NULL THEN NULL
                      ELSE c.target - 'employee' - 'order_id' END,
        erased_at = now(), updated_at = now()
    WHERE c.case_id IN (SELECT id FROM erase_targets);
    UPDATE events e SET data = (e.data - 'note' - 'comment' - 'solution' - 'promise' - 'reason'
                                - 'resolution') || jsonb_build_object('erased', true)
    WHERE e.case_id IN (SELECT id FROM erase_targets)
      AND e.data ?| ARRAY['note', 'comment', 'solution', 'promise', 'reason', 'resolution'];
    INSERT INTO events (type, case_id, source, data)
    SELECT 'case.erased', c.case_id, p_source,
           jsonb_build_object('case_id', c.case_id, 'case_no', c.case_no, 'actor', p_actor,
                              'pseudonym', p_pseudonym, 'state', c.state)
    FROM cases c WHERE c.case_id IN (SELECT id FROM erase_targets)
    ORDER BY c.case_id;
    -- The notification outbox (0007) holds addresses and rendered texts.
    PERFORM plaint_erase_outbox(ARRAY(SELECT id FROM erase_targets));
    PERFORM pg_notify('plaint_events', '');
    RETURN QUERY SELECT c.case_id, c.case_no FROM cases c
                 WHERE c.case_id IN (SELECT id FROM erase_targets) ORDER BY c.case_id;
    DELETE FROM erase_targets;
END
$$;
