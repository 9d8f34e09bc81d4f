-- 0006: the SLA watchdog's record of what it fired, and spike detection.
--
-- Every warning, breach and escalation is recorded once, keyed by the case,
-- the clock, the deadline it is about, and the stage (0 warning, 1 breach,
-- 1 + N escalation level N). The watchdog's replicas all keep every clock in
-- memory; whichever fires first inserts the key, and the event is written in
-- the same statement only when the insert happened, so a restart or a second
-- replica never repeats one. A changed deadline (re-routed, a new promise) is
-- a new key: its clock starts over.
-- Deadlines are compared in whole milliseconds, the precision the watchdog
-- holds them in, so a deadline stored with microseconds still fires.

CREATE TABLE sla_fired (
    case_id   uuid NOT NULL,
    clock     text NOT NULL,         -- first_response | resolution | promise
    due_at    timestamptz NOT NULL,
    stage     int NOT NULL,          -- 0 warning, 1 breach, 1+N escalation level N
    fired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, clock, due_at, stage)
);

-- The clocks of the cases that still need work, with how far each got, for
-- the watchdog's start and for refreshing the cases an event changed
-- (p_cases NULL: every open case after p_after, a page at a time). Each use
-- has its own branch, so the page is a range scan of the primary key from
-- p_after: with one OR'ed condition every page re-read all the cases before
-- it (a million clocks took 25 s to load instead of 4).
CREATE FUNCTION plaint_sla_clocks(p_cases uuid[], p_after uuid, p_limit int)
RETURNS TABLE (case_id uuid, case_no text, state text, priority text, department text,
               assignee text, received_ms bigint,
               fr_due_ms bigint, fr_stage int,
               res_due_ms bigint, res_stage int,
               pr_start_ms bigint, pr_due_ms bigint, pr_stage int)
LANGUAGE sql STABLE AS $$
    WITH picked AS (
        (SELECT k.* FROM cases k
         WHERE p_cases IS NULL AND plaint_state_is_open(k.state)
           AND k.state NOT IN ('received', 'classified')
           AND k.case_id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
         ORDER BY k.case_id LIMIT p_limit)
        UNION ALL
        (SELECT k.* FROM cases k WHERE k.case_id = ANY (p_cases)
         ORDER BY k.case_id LIMIT p_limit)
    )
    SELECT c.case_id, c.case_no, c.state, c.priority, c.department, c.assignee,
           floor(extract(epoch FROM c.received_at) * 1000)::bigint,
           CASE WHEN c.acknowledged_at IS NULL AND plaint_state_is_open(c.state)
                THEN floor(extract(epoch FROM c.first_response_due) * 1000)::bigint END,
           (SELECT max(f.stage) FROM sla_fired f WHERE f.case_id = c.case_id
              AND f.clock = 'first_response' AND f.due_at = date_trunc('milliseconds', c.first_response_due)),
           CASE WHEN plaint_state_is_open(c.state)
                THEN floor(extract(epoch FROM c.resolution_due) * 1000)::bigint END,
           (SELECT max(f.stage) FROM sla_fired f WHERE f.case_id = c.case_id
              AND f.clock = 'resolution' AND f.due_at = date_trunc('milliseconds', c.resolution_due)),
           floor(extract(epoch FROM c.promise_at) * 1000)::bigint,
           CASE WHEN c.promise_kept_at IS NULL AND plaint_state_is_open(c.state)
                THEN floor(extract(epoch FROM c.promise_due) * 1000)::bigint END,
           (SELECT max(f.stage) FROM sla_fired f WHERE f.case_id = c.case_id
              AND f.clock = 'promise' AND f.due_at = date_trunc('milliseconds', c.promise_due))
    FROM picked c
    ORDER BY c.case_id
    LIMIT p_limit
$$;

-- Fires a batch of clock stages ([{case_id, clock, due_at, stage, type,
-- data}]): each is recorded and its event written only if the clock still
-- runs with that deadline and the stage was not recorded before. Returns the
-- stages recorded now (the others were already fired, or the clock stopped).
CREATE FUNCTION plaint_sla_fire(p_batch jsonb, p_source text)
RETURNS TABLE (case_id uuid, clock text, stage int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH wanted AS (
        SELECT (x->>'case_id')::uuid AS case_id, x->>'clock' AS clock,
               (x->>'due_at')::timestamptz AS due_at, (x->>'stage')::int AS stage,
               x->>'type' AS type, coalesce(x->'data', '{}'::jsonb) AS data,
               ord
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(x, ord)
    ), running AS (
        SELECT w.*, c.case_no, c.state
        FROM wanted w JOIN cases c ON c.case_id = w.case_id
        WHERE plaint_state_is_open(c.state)
          AND CASE w.clock
                WHEN 'first_response' THEN c.acknowledged_at IS NULL
                                           AND date_trunc('milliseconds', c.first_response_due) = w.due_at
                WHEN 'resolution' THEN date_trunc('milliseconds', c.resolution_due) = w.due_at
                WHEN 'promise' THEN c.promise_kept_at IS NULL
                                    AND date_trunc('milliseconds', c.promise_due) = w.due_at
                ELSE false END
    ), recorded AS (
        INSERT INTO sla_fired AS f (case_id, clock, due_at, stage)
        SELECT r.case_id, r.clock, r.due_at, r.stage FROM running r ORDER BY r.ord
        ON CONFLICT DO NOTHING
        RETURNING f.case_id, f.clock, f.due_at, f.stage
    ), logged AS (
        INSERT INTO events (type, case_id, source, data)
        SELECT r.type, r.case_id, p_source,
               r.data || jsonb_build_object('case_id', r.case_id, 'case_no', r.case_no,
                                            'clock', r.clock, 'state', r.state)
        FROM running r JOIN recorded d
          ON d.case_id = r.case_id AND d.clock = r.clock AND d.due_at = r.due_at
         AND d.stage = r.stage
        ORDER BY r.ord
        RETURNING 1
    ), escalated AS (
        UPDATE cases c SET escalation_level = greatest(c.escalation_level, d.stage - 1)
        FROM recorded d WHERE c.case_id = d.case_id AND d.stage >= 2
        RETURNING 1
    )
    -- logged and escalated run to completion although nothing reads them.
    SELECT d.case_id, d.clock, d.stage FROM recorded d;
    PERFORM pg_notify('plaint_events', '');
END
$$;

-- Crisis detection: a burst of similar complaints. For each category,
-- product, store and customer type, the complaints received in the last
-- p_window are compared with the baseline, the average per window over the
-- p_baseline before it. A value whose count reaches p_min and p_factor times
-- the baseline starts a spike: one alert.spike event, not one per case. The
-- spike ends when the count falls below the threshold again; only then can
-- the same value raise a new one. Run by one watchdog at a time (an advisory
-- lock). Returns the spikes started now.
CREATE TABLE spikes (
    spike_id   bigserial PRIMARY KEY,
    what       jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    peak       int NOT NULL
);
CREATE UNIQUE INDEX spikes_open_idx ON spikes (what) WHERE ended_at IS NULL;

CREATE FUNCTION plaint_detect_spikes(p_window interval, p_window_label text,
                                     p_baseline interval, p_factor numeric, p_min int,
                                     p_source text)
RETURNS TABLE (what jsonb, count bigint, baseline numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    windows numeric := greatest(extract(epoch FROM p_baseline) / extract(epoch FROM p_window), 1);
BEGIN
    IF NOT pg_try_advisory_xact_lock(7104, 1) THEN
        RETURN;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS spike_now (what jsonb, n bigint, base numeric)
        ON COMMIT DROP;
    DELETE FROM spike_now;
    INSERT INTO spike_now
    WITH recent AS (
        SELECT c.category, c.customer_type, c.target->>'product' AS product,
               c.target->>'store' AS store,
               c.received_at >= now() - p_window AS in_window
        FROM cases c
        WHERE c.received_at >= now() - p_window - p_baseline
    ), dims AS (
        SELECT jsonb_build_object('category', r.category) AS what, r.in_window FROM recent r
        WHERE r.category IS NOT NULL
        UNION ALL
        SELECT jsonb_build_object('product', r.product), r.in_window FROM recent r
        WHERE r.product IS NOT NULL
        UNION ALL
        SELECT jsonb_build_object('store', r.store), r.in_window FROM recent r
        WHERE r.store IS NOT NULL
        UNION ALL
        SELECT jsonb_build_object('customer_type', r.customer_type), r.in_window FROM recent r
    )
    SELECT d.what, count(*) FILTER (WHERE d.in_window),
           round(count(*) FILTER (WHERE NOT d.in_window) / windows, 2)
    FROM dims d GROUP BY d.what;
    -- Spikes that calmed down end.
    UPDATE spikes s SET ended_at = now()
    WHERE s.ended_at IS NULL AND NOT EXISTS (
        SELECT 1 FROM spike_now n WHERE n.what = s.what
          AND n.n >= p_min AND n.n >= p_factor * greatest(n.base, 1));
    -- New ones start, each with its event.
    RETURN QUERY
    WITH started AS (
        INSERT INTO spikes AS s (what, peak)
        SELECT n.what, n.n FROM spike_now n
        WHERE n.n >= p_min AND n.n >= p_factor * greatest(n.base, 1)
        ON CONFLICT (what) WHERE ended_at IS NULL DO UPDATE SET peak = greatest(s.peak, EXCLUDED.peak)
        RETURNING s.what, s.peak, (xmax = 0) AS fresh
    ), logged AS (
        INSERT INTO events (type, case_id, source, data)
        SELECT 'alert.spike', NULL, p_source, jsonb_build_object(
                   'case_id', NULL, 'case_no', NULL, 'what', st.what,
                   'window', p_window_label, 'count', n.n, 'baseline', n.base,
                   'threshold', round(p_factor * greatest(n.base, 1), 2),
                   'window_end', now())
        FROM started st JOIN spike_now n ON n.what = st.what
        WHERE st.fresh
        RETURNING data
    )
    SELECT l.data->'what', (l.data->>'count')::bigint, (l.data->>'baseline')::numeric
    FROM logged l;
    PERFORM pg_notify('plaint_events', '');
END
$$;
