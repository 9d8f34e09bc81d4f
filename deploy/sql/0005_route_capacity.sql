-- 0005: an agent never holds more open cases than their capacity, however
-- many routing steps run at once.
--
-- Routing picks the least-loaded agent from counts it read a moment before;
-- replicas and concurrent steps read the same counts, so without this check
-- they would all pick the same agent. The completion locks the chosen agent
-- (a transaction-level advisory lock: two completions for one agent take
-- turns), counts the agent's open cases again under the lock, and refuses
-- with 'full' when the agent is at capacity; the router then decides again
-- from fresh counts. Returns 'done', 'full', or 'lost' (the claim is no
-- longer ours; nothing changed).
CREATE FUNCTION plaint_stage_complete_capped(p_case uuid, p_token uuid, p_in text, p_out text,
                                             p_patch jsonb, p_event text, p_data jsonb,
                                             p_source text, p_capacity int)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    agent text := p_patch->>'assignee';
BEGIN
    IF agent IS NOT NULL AND p_capacity IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(7112, hashtext(agent));
        -- A new statement after the lock: its snapshot sees every assignment
        -- committed by the completion that held the lock before us.
        IF (SELECT count(*) FROM cases c
            WHERE c.assignee = agent AND plaint_state_is_open(c.state)) >= p_capacity THEN
            RETURN 'full';
        END IF;
    END IF;
    RETURN CASE WHEN plaint_stage_complete(p_case, p_token, p_in, p_out, p_patch, p_event,
                                           p_data, p_source)
                THEN 'done' ELSE 'lost' END;
END
$$;
