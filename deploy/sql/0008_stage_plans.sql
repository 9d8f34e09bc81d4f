-- 0008: the stage claims keep their plans.
--
-- plaint_stage_claim and plaint_stage_renew were sql functions that cannot
-- be inlined (they update), so PostgreSQL planned their UPDATE again at
-- every call; on the cases table, with its many indexes, planning cost more
-- than the update itself (67 us against 14 us a call for a miss). As plpgsql
-- functions they keep their plans. Same arguments, same results.

CREATE OR REPLACE FUNCTION plaint_stage_claim(p_case uuid, p_state text, p_token uuid,
                                              p_lease interval, p_owner text)
RETURNS SETOF jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE cases c
    SET stage_token = p_token, stage_owner = p_owner, stage_lease_until = now() + p_lease,
        stage_attempts = c.stage_attempts + 1
    WHERE c.case_id = p_case AND c.state = p_state AND c.parked_at IS NULL
      AND (c.stage_lease_until IS NULL OR c.stage_lease_until < now())
      AND c.stage_attempts = 0
    RETURNING plaint_stage_view(c);
END
$$;

CREATE OR REPLACE FUNCTION plaint_stage_renew(p_cases uuid[], p_tokens uuid[], p_lease interval)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    UPDATE cases c SET stage_lease_until = now() + p_lease
    FROM unnest(p_cases, p_tokens) AS h(case_id, token)
    WHERE c.case_id = h.case_id AND c.stage_token = h.token;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Room in every page for a new version of its rows: a claim or a lease
-- renewal changes no indexed column, so with free space on the page it is a
-- HOT update that touches none of the table's indexes.
ALTER TABLE cases SET (fillfactor = 70);
