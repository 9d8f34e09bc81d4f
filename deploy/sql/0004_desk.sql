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
    ADD COLUMN escalation_level int NOT NULL DEFAULT 0;

-- Lists page by case_id (UUID v7: time order) within a filter.
CREATE INDEX cases_state_page_idx ON cases (state, case_id);
CREATE INDEX cases_department_page_idx ON cases (department, case_id);
CREATE INDEX cases_departments_idx ON cases USING gin (departments);

-- Whether a case's first-response or resolution deadline (or a promise) has
-- passed while it still needs work.
CREATE FUNCTION plaint_case_overdue(c cases) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT plaint_state_is_open(c.state) AND (
        (c.acknowledged_at IS NULL AND c.first_response_due < now())
        OR c.resolution_due < now()
        OR c.promise_due < now())
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
            'breached', plaint_state_is_open(c.state) AND c.promise_due < now()) END)
$$;

-- A case as the desk shows it, without its timeline. Contact data is masked
-- by the desk for roles that may not see it.
CREATE FUNCTION plaint_case_summary(c cases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'case_id', c.case_id, 'case_no', c.case_no, 'state', c.state,
        'source', c.source, 'external_id', c.external_id, 'channel', c.channel,
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
BEGIN
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
        promise_due = coalesce((p_patch->>'due_at')::timestamptz, c.promise_due)
    WHERE c.case_id = p_case AND c.state = p_from
    RETURNING c.case_id, c.case_no INTO moved;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, k.state, k.case_no FROM cases k WHERE k.case_id = p_case;
        RETURN;
    END IF;
    INSERT INTO events (type, case_id, source, data)
    SELECT x.e->>'type', p_case, p_source,
           coalesce(x.e->'data', '{}'::jsonb)
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
