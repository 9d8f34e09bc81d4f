-- 0002: the stage hand-off. PostgreSQL is the truth, ZeroMQ carries the work.
--
-- A stage (classifier, routing, ...) owns one input state. It claims a case
-- in that state with a lease and a token, computes, and completes with one
-- conditional statement that changes the state and writes the event together;
-- a redelivered message or a second replica finds the state already changed
-- (or another token) and changes nothing. Attempts are counted at claim time,
-- so a step that crashes its process counts too; after the configured number
-- of attempts the case is parked with its reason instead of blocking others.
--
-- A case that has had an attempt already (its replica failed or died) is a
-- suspect: a sweep claims it alone, from a replica with nothing else in
-- progress, so a case that kills its process cannot take innocent cases'
-- attempts with it. A replica renews the leases of the steps it is still
-- working on, so a slow step is never taken from a live replica.

ALTER TABLE cases
    ADD COLUMN category            text,
    ADD COLUMN priority            text,
    ADD COLUMN confidence          real,
    ADD COLUMN sentiment           text,
    ADD COLUMN repeat_of           uuid,
    ADD COLUMN signals             jsonb,
    ADD COLUMN department          text,
    ADD COLUMN departments         text[],
    ADD COLUMN assignee            text,
    ADD COLUMN first_response_due  timestamptz,
    ADD COLUMN resolution_due      timestamptz,
    ADD COLUMN stage_token         uuid,         -- the claim now holding the case
    ADD COLUMN stage_owner         text,         -- the process holding it (instance name)
    ADD COLUMN stage_lease_until   timestamptz,  -- after this, another claim may take it
    ADD COLUMN stage_attempts      int NOT NULL DEFAULT 0,
    -- When the case entered its stage's queue; a sweep takes it once this is
    -- older than the stage's patience. '-infinity' = at the next sweep.
    ADD COLUMN stage_since         timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN stage_error         text,         -- why the last attempt failed
    ADD COLUMN parked_at           timestamptz,
    ADD COLUMN parked_reason       text;

CREATE INDEX cases_stage_idx ON cases (state, stage_since) WHERE parked_at IS NULL;
CREATE INDEX cases_parked_idx ON cases (parked_at) WHERE parked_at IS NOT NULL;

-- The case as a stage sees it.
CREATE FUNCTION plaint_stage_view(c cases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(c) - 'stage_token'
$$;

-- Claims one case for a step, if it is still in p_state, not held, and has
-- had no attempt yet (suspects are left to the isolated sweep).
CREATE FUNCTION plaint_stage_claim(p_case uuid, p_state text, p_token uuid,
                                   p_lease interval, p_owner text)
RETURNS SETOF jsonb
LANGUAGE sql AS $$
    UPDATE cases c
    SET stage_token = p_token, stage_owner = p_owner, stage_lease_until = now() + p_lease,
        stage_attempts = c.stage_attempts + 1
    WHERE c.case_id = p_case AND c.state = p_state AND c.parked_at IS NULL
      AND (c.stage_lease_until IS NULL OR c.stage_lease_until < now())
      AND c.stage_attempts = 0
    RETURNING plaint_stage_view(c)
$$;

-- Parks cases whose attempts ran out while nobody holds them (the process
-- died mid-step each time), then claims work that has waited in p_state
-- longer than p_stale: messages lost, stages restarted, failures whose
-- backoff has passed. With p_isolated (the caller has nothing in progress) it
-- first looks for one suspect (a case with attempts already) and claims it
-- alone; otherwise it claims up to p_limit fresh cases. SKIP LOCKED lets
-- replicas sweep side by side.
CREATE FUNCTION plaint_stage_sweep(p_state text, p_token uuid, p_lease interval,
                                   p_stale interval, p_max int, p_limit int, p_source text,
                                   p_owner text, p_isolated boolean)
RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
DECLARE
    parked int;
BEGIN
    WITH exhausted AS (
        UPDATE cases c
        SET parked_at = now(), stage_token = NULL, stage_owner = NULL,
            stage_lease_until = NULL,
            parked_reason = coalesce(c.stage_error,
                'the ' || p_source || ' stage stopped while processing this case '
                || c.stage_attempts || ' times')
        WHERE c.case_id IN (
            SELECT k.case_id FROM cases k
            WHERE k.state = p_state AND k.parked_at IS NULL AND k.stage_attempts >= p_max
              AND (k.stage_lease_until IS NULL OR k.stage_lease_until < now())
            FOR UPDATE SKIP LOCKED)
        RETURNING c.case_id, c.case_no, c.parked_reason, c.stage_attempts
    ), logged AS (
        INSERT INTO events (type, case_id, source, data)
        SELECT 'case.parked', x.case_id, p_source,
               jsonb_build_object('case_id', x.case_id, 'case_no', x.case_no,
                                  'state', p_state, 'stage', p_source,
                                  'reason', x.parked_reason, 'attempts', x.stage_attempts)
        FROM exhausted x
        RETURNING 1
    )
    SELECT count(*) INTO parked FROM logged;
    IF parked > 0 THEN
        PERFORM pg_notify('plaint_events', '');
    END IF;

    IF p_isolated THEN
        RETURN QUERY
        UPDATE cases c
        SET stage_token = p_token, stage_owner = p_owner,
            stage_lease_until = now() + p_lease, stage_attempts = c.stage_attempts + 1
        WHERE c.case_id = (
            SELECT k.case_id FROM cases k
            WHERE k.state = p_state AND k.parked_at IS NULL
              AND k.stage_attempts BETWEEN 1 AND p_max - 1
              AND (k.stage_lease_until IS NULL OR k.stage_lease_until < now())
            ORDER BY k.stage_since
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
        RETURNING plaint_stage_view(c);
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    UPDATE cases c
    SET stage_token = p_token, stage_owner = p_owner, stage_lease_until = now() + p_lease,
        stage_attempts = c.stage_attempts + 1
    WHERE c.case_id IN (
        SELECT k.case_id FROM cases k
        WHERE k.state = p_state AND k.parked_at IS NULL AND k.stage_attempts = 0
          AND (k.stage_lease_until IS NULL OR k.stage_lease_until < now())
          AND k.stage_since < now() - p_stale
        ORDER BY k.stage_since
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    RETURNING plaint_stage_view(c);
END
$$;

-- Extends the leases of the claims a replica is still working on.
CREATE FUNCTION plaint_stage_renew(p_cases uuid[], p_tokens uuid[], p_lease interval)
RETURNS int
LANGUAGE sql AS $$
    WITH renewed AS (
        UPDATE cases c SET stage_lease_until = now() + p_lease
        FROM unnest(p_cases, p_tokens) AS h(case_id, token)
        WHERE c.case_id = h.case_id AND c.stage_token = h.token
        RETURNING 1
    )
    SELECT count(*)::int FROM renewed
$$;

-- Completes a step: the state change, the stage's columns and the event in
-- one statement. Returns false when the claim is no longer ours (another
-- replica finished or took it): then nothing changed.
CREATE FUNCTION plaint_stage_complete(p_case uuid, p_token uuid, p_in text, p_out text,
                                      p_patch jsonb, p_event text, p_data jsonb, p_source text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    done int;
BEGIN
    WITH moved AS (
        UPDATE cases c
        SET (category, priority, confidence, sentiment, repeat_of, signals, department,
             departments, assignee, first_response_due, resolution_due) =
            (SELECT r.category, r.priority, r.confidence, r.sentiment, r.repeat_of, r.signals,
                    r.department, r.departments, r.assignee, r.first_response_due,
                    r.resolution_due
             FROM jsonb_populate_record(c, p_patch) r),
            state = p_out, updated_at = now(), stage_since = now(),
            stage_token = NULL, stage_owner = NULL, stage_lease_until = NULL,
            stage_attempts = 0, stage_error = NULL
        WHERE c.case_id = p_case AND c.state = p_in AND c.stage_token = p_token
        RETURNING c.case_id, c.case_no
    ), logged AS (
        INSERT INTO events (type, case_id, source, data)
        SELECT p_event, m.case_id, p_source,
               p_data || jsonb_build_object('case_id', m.case_id, 'case_no', m.case_no,
                                            'state', p_out)
        FROM moved m
        RETURNING 1
    )
    SELECT count(*) INTO done FROM logged;
    IF done > 0 THEN
        PERFORM pg_notify('plaint_events', '');
    END IF;
    RETURN done > 0;
END
$$;

-- Records a failed step. The case is retried by a sweep after p_backoff, or
-- parked (with an event) once its attempts are used up.
CREATE FUNCTION plaint_stage_fail(p_case uuid, p_token uuid, p_in text, p_reason text,
                                  p_backoff interval, p_max int, p_source text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE cases c
    SET stage_error = p_reason, stage_token = NULL, stage_owner = NULL,
        stage_lease_until = now() + p_backoff * c.stage_attempts,
        parked_at = CASE WHEN c.stage_attempts >= p_max THEN now() END,
        parked_reason = CASE WHEN c.stage_attempts >= p_max THEN p_reason END
    WHERE c.case_id = p_case AND c.state = p_in AND c.stage_token = p_token
    RETURNING c.case_id, c.case_no, c.parked_at IS NOT NULL AS parked, c.stage_attempts
    INTO r;
    IF r.parked THEN
        INSERT INTO events (type, case_id, source, data)
        VALUES ('case.parked', r.case_id, p_source,
                jsonb_build_object('case_id', r.case_id, 'case_no', r.case_no, 'state', p_in,
                                   'stage', p_source, 'reason', p_reason,
                                   'attempts', r.stage_attempts));
        PERFORM pg_notify('plaint_events', '');
    END IF;
    RETURN coalesce(r.parked, false);
END
$$;

-- Hands an unfinished claim back (orderly shutdown): it does not count as
-- an attempt, and the case is free at once for another replica.
CREATE FUNCTION plaint_stage_release(p_case uuid, p_token uuid)
RETURNS void
LANGUAGE sql AS $$
    UPDATE cases c
    SET stage_token = NULL, stage_owner = NULL, stage_lease_until = NULL,
        stage_attempts = greatest(c.stage_attempts - 1, 0), stage_since = '-infinity'
    WHERE c.case_id = p_case AND c.stage_token = p_token
$$;

-- Operators put a parked case back in its stage's queue (plaintctl unpark);
-- subscribers learn of it through a case.unparked event.
CREATE FUNCTION plaint_stage_unpark(p_case uuid, p_actor text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE cases c
    SET parked_at = NULL, parked_reason = NULL, stage_attempts = 0, stage_error = NULL,
        stage_token = NULL, stage_owner = NULL, stage_lease_until = NULL,
        stage_since = '-infinity'
    WHERE c.case_id = p_case AND c.parked_at IS NOT NULL
    RETURNING c.case_id, c.case_no, c.state INTO r;
    IF r.case_id IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO events (type, case_id, source, data)
    VALUES ('case.unparked', r.case_id, 'plaintctl',
            jsonb_build_object('case_id', r.case_id, 'case_no', r.case_no, 'state', r.state,
                               'actor', p_actor));
    PERFORM pg_notify('plaint_events', '');
    RETURN true;
END
$$;
