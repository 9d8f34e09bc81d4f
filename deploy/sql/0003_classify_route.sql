-- 0003: what the classifier and routing stages look up while they work.
--
-- The classifier links a complaint to the same customer's earlier case
-- (repeat_of): the same customer id, phone number or e-mail address within a
-- window. Phone numbers and e-mail addresses arrive written many ways, so they
-- are compared normalised, through the same immutable functions the indexes
-- are built on. Routing picks the least-loaded agent, so it counts each
-- agent's open cases through a partial index that only holds open cases.

-- Digits only, the last ten: "+86 138-0013-8000" and "13800138000" are one
-- number, as are "+1 (555) 010-2000" and "5550102000".
CREATE FUNCTION plaint_norm_phone(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(right(regexp_replace(p, '[^0-9]', '', 'g'), 10), '')
$$;

CREATE FUNCTION plaint_norm_email(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(lower(btrim(p)), '')
$$;

CREATE INDEX cases_customer_id_idx ON cases (customer_id, received_at)
    WHERE customer_id IS NOT NULL;
CREATE INDEX cases_customer_phone_idx ON cases (plaint_norm_phone(customer_phone), received_at)
    WHERE customer_phone IS NOT NULL;
CREATE INDEX cases_customer_email_idx ON cases (plaint_norm_email(customer_email), received_at)
    WHERE customer_email IS NOT NULL;

-- The states in which a case still needs work from its assignee.
CREATE FUNCTION plaint_state_is_open(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_state NOT IN ('resolved', 'reviewed', 'closed', 'rejected')
$$;

CREATE INDEX cases_open_assignee_idx ON cases (assignee)
    WHERE assignee IS NOT NULL AND plaint_state_is_open(state);

-- The same customer's most recent earlier case within p_window, or no row;
-- age_ms is how much earlier it came.
-- "Earlier" is by received_at, then by case number (one batch shares one
-- received_at), so of two cases of one customer exactly one is the other's
-- repeat, whichever the stage sees first.
-- plpgsql rather than sql here and below: a sql function that cannot be
-- inlined is planned again at every call, which on a table with this many
-- indexes costs more than running it; plpgsql keeps its plans.
CREATE FUNCTION plaint_find_repeat(p_case uuid, p_window interval)
RETURNS TABLE (case_id uuid, case_no text, channel text, age_ms bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH me AS (
        SELECT c.case_id, c.case_no, c.received_at, c.customer_id,
               plaint_norm_phone(c.customer_phone) AS phone,
               plaint_norm_email(c.customer_email) AS email
        FROM cases c WHERE c.case_id = p_case
    ), earlier AS (
        SELECT k.case_id, k.case_no, k.channel, k.received_at
        FROM me JOIN cases k ON k.customer_id = me.customer_id
        WHERE k.customer_id IS NOT NULL
          AND k.received_at BETWEEN me.received_at - p_window AND me.received_at
        UNION
        SELECT k.case_id, k.case_no, k.channel, k.received_at
        FROM me JOIN cases k ON plaint_norm_phone(k.customer_phone) = me.phone
        WHERE k.customer_phone IS NOT NULL
          AND k.received_at BETWEEN me.received_at - p_window AND me.received_at
        UNION
        SELECT k.case_id, k.case_no, k.channel, k.received_at
        FROM me JOIN cases k ON plaint_norm_email(k.customer_email) = me.email
        WHERE k.customer_email IS NOT NULL
          AND k.received_at BETWEEN me.received_at - p_window AND me.received_at
    )
    SELECT e.case_id, e.case_no, e.channel,
           (extract(epoch FROM me.received_at - e.received_at) * 1000)::bigint
    FROM earlier e, me
    WHERE e.case_id <> me.case_id
      AND (e.received_at, length(e.case_no), e.case_no)
          < (me.received_at, length(me.case_no), me.case_no)
    ORDER BY e.received_at DESC, length(e.case_no) DESC, e.case_no DESC
    LIMIT 1;
END
$$;

-- Open cases per agent, for the least-loaded choice.
CREATE FUNCTION plaint_agent_loads(p_agents text[])
RETURNS TABLE (agent text, open_cases bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT c.assignee, count(*)
    FROM cases c
    WHERE c.assignee = ANY (p_agents) AND plaint_state_is_open(c.state)
    GROUP BY c.assignee;
END
$$;
