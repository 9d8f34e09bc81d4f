"""End-to-end tests of plaint-desk, the HTTP API: real PostgreSQL, real daemons, real HTTP.

What is checked (contract: "HTTP API" and "Case states"; proto/PROTOCOL.md section 12), in the
open set-up (no desk.json: every caller is an administrator, the actor comes from the body):
- POST /v1/complaints: 201, then 200 with the same case for the same (source, external_id);
  every kind of bad body gets 400/413 naming each field's path, and nothing is stored; the case
  is then classified and routed, and GET /v1/cases/{case_no} and /{case_id} show it with its
  timeline in seq order;
- the whole procedure (acknowledge, note, assign to another department, promise, propose,
  feedback unsatisfied twice, satisfied, review, close, rate) and the reject path, with every
  event in the timeline and in GET /v1/events, each valid per its schema, in seq order;
- every action not allowed in a state gets 409 naming the state and the allowed actions, and
  changes nothing;
- ten agents acting at once: one wins, nine get 409, one event;
- GET /v1/cases paging over 10,000 cases (and while more arrive), with every filter;
- GET /v1/events paging and its parameters;
- 404s, /healthz, /metrics, SIGTERM with a request in flight, bad settings;
- no contact data or complaint text in any daemon log (also checked at every teardown).
Every complaint text here was written for this file.
"""

import datetime
import json
import re
import secrets
import threading
import time
import uuid

import pytest

import harness
from harness import http, timeout, validate_event

CASE_NO = re.compile(r"^C-\d{8}-\d{6,}$")
UTC = datetime.timezone.utc

# The contract's actions table (PROTOCOL.md 12.4), written out again: where each action is
# allowed, in the order the desk lists them.
ALLOWED_IN = {
    "acknowledge": {"routed"},
    "note": {"routed", "acknowledged", "in_progress", "solution_proposed", "reopened", "resolved",
             "reviewed", "closed", "rejected"},
    "assign": {"routed", "acknowledged", "in_progress", "solution_proposed", "reopened"},
    "reject": {"routed", "acknowledged", "in_progress"},
    "propose": {"acknowledged", "in_progress", "reopened"},
    "promise": {"routed", "acknowledged", "in_progress", "solution_proposed", "reopened"},
    "feedback": {"solution_proposed"},
    "resolve": {"solution_proposed"},
    "reopen": {"solution_proposed", "resolved"},
    "review": {"resolved"},
    "close": {"reviewed", "rejected"},
    "rate": {"resolved", "reviewed", "closed"},
}
ACTIONS = list(ALLOWED_IN)


def allowed(state):
    return [a for a in ACTIONS if state in ALLOWED_IN[a]]


def rfc3339(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def in_hours(hours):
    return rfc3339(datetime.datetime.now(UTC) + datetime.timedelta(hours=hours))


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


# A valid body for each action (the wrong-state sweep posts these).
def valid_body(action):
    return {
        "acknowledge": {"comment": "first call made"},
        "note": {"note": "checked the order history"},
        "assign": {"assignee": "agent.e2e.other"},
        "reject": {"reason": "the product was not bought from us"},
        "propose": {"solution": "a replacement unit by courier", "solution_type": "replacement"},
        "promise": {"due_at": in_hours(48), "promise": "call back with the courier's answer"},
        "feedback": {"satisfied": True},
        "resolve": {"resolution": "replacement delivered"},
        "reopen": {"reason": "the replacement is faulty too"},
        "review": {"comment": "handled by the book"},
        "close": {"reason": "archived"},
        "rate": {"score": 4},
    }[action]


# ---------------------------------------------------------------------------- complaints


def complaint(plaint, kind="logistics", **extra):
    """A valid complaint.submit data object with unique contact data, registered as private."""
    tag = secrets.token_hex(4)
    digits = "".join(str(secrets.randbelow(10)) for _ in range(8))
    if kind == "quality":
        data = {
            "channel": "app",
            "customer": {"id": f"CU-{tag}", "name": f"林雨桐{tag}", "phone": f"+86137{digits}",
                         "email": f"lin.yt.{tag}@example.cn", "type": "individual", "lang": "zh"},
            "subject": f"电动牙刷三天就坏 {tag}",
            "body": f"新买的电动牙刷用了三天就充不进电，指示灯一直闪，换了插座也一样。{tag}",
            "demand": f"换一支新的 {tag}",
            "demand_type": "replacement",
            "target": {"product": "TB-3 电动牙刷", "order_id": f"SO-{tag}"},
        }
    else:
        data = {
            "channel": "web",
            "customer": {"id": f"CU-{tag}", "name": f"Orla Fenwick {tag}",
                         "phone": f"+44 7700 9{digits[:5]}", "email": f"orla.f.{tag}@example.org",
                         "type": "individual", "lang": "en"},
            "subject": f"Parcel marked delivered, never came {tag}",
            "body": (f"The courier marked my parcel as delivered on Monday, but nothing was left at "
                     f"my door or with the neighbours, and the tracking page is stuck. {tag}"),
            "demand": f"Find the parcel or send it again {tag}",
            "demand_type": "replacement",
            "target": {"order_id": f"WEB-{tag}"},
        }
    data.update(extra)
    c = data["customer"]
    plaint.remember_private(c["name"], c["phone"], c["email"], data["body"], data["subject"],
                            data["demand"])
    return data


class Desk:
    """A started plaint-desk and the calls the tests make to it."""

    def __init__(self, plaint, daemon):
        self.plaint = plaint
        self.daemon = daemon
        self.addr = daemon.http_addr

    def get(self, path):
        return http(self.addr, "GET", path)

    def post(self, path, body, headers=None):
        return http(self.addr, "POST", path, body, headers)

    def submit(self, data, source=None):
        return self.post("/v1/complaints", data, {"X-Plaint-Source": source} if source else None)

    def act(self, key, action, actor="agent.e2e", **fields):
        body = {"action": action, **({"actor": actor} if actor else {}), **fields}
        return self.post(f"/v1/cases/{key}/actions", body)

    def must_act(self, key, action, want_state, actor="agent.e2e", **fields):
        r = self.act(key, action, actor, **fields)
        assert r.status == 200, f"{action} on {key}: {r}"
        assert r.json["action"] == action and r.json["state"] == want_state, r.json
        assert r.json["actor"] == actor, r.json
        return r.json

    def case(self, key):
        r = self.get(f"/v1/cases/{key}")
        assert r.status == 200, f"GET /v1/cases/{key}: {r}"
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers
        return r.json

    def wait_state(self, key, state, timeout_s=20):
        def reached():
            c = self.case(key)
            return c if c["state"] == state else None
        return harness.wait_until(reached, timeout_s, f"case {key} did not reach state {state}")

    def wait_timeline(self, key, n, timeout_s=15):
        """The case once its timeline holds n events, every one numbered (the hub's sequencer
        numbers action events a moment after they commit)."""
        def done():
            c = self.case(key)
            t = c["timeline"]
            return c if len(t) >= n and all(e["seq"] is not None for e in t) else None
        c = harness.wait_until(done, timeout_s, f"case {key}: {n} numbered timeline events")
        assert len(c["timeline"]) == n, [e["type"] for e in c["timeline"]]
        return c

    def list_all(self, query="", limit=500, during=None, after=None):
        """Every case of GET /v1/cases?query (after the cursor after), following "next"; checks
        each page. during(page number) runs after each page (to add cases while paging)."""
        ids, pages = [], 0
        while True:
            q = f"limit={limit}" + (f"&{query}" if query else "")
            q += f"&after={after}" if after else ""
            r = self.get(f"/v1/cases?{q}")
            assert r.status == 200, f"GET /v1/cases?{q}: {r}"
            page = r.json
            assert set(page) >= {"cases", "count", "next"}, page.keys()
            assert page["count"] == len(page["cases"]) <= limit
            page_ids = [c["case_id"] for c in page["cases"]]
            order = [c["received_seq"] for c in page["cases"]]
            assert order == sorted(order), "a page is not in the order cases were stored"
            if after and str(after).isdigit():
                assert not order or order[0] > int(after), "a page starts before its cursor"
            ids.extend(page_ids)
            pages += 1
            if during:
                during(pages)
            if page["next"] is None:
                assert page["count"] < limit, "a full page without a next cursor"
                break
            assert page["next"] == str(order[-1]), "next is not the last case of the page"
            after = page["next"]
            assert pages < 10000, "paging does not end"
        assert len(ids) == len(set(ids)), "paging returned a case twice"
        return ids

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return r.body.decode("utf-8")


def start_stack(plaint, pipeline=True, intake=True, **desk_env):
    if intake:
        plaint.start_intake()
    if pipeline:
        plaint.start_classifier()
        plaint.start_routing()
    return Desk(plaint, plaint.start_desk(**desk_env))


def submit_routed(desk, data, **kw):
    r = desk.submit(data, **kw)
    assert r.status == 201, r
    return r.json["case_id"]


def error_paths(r):
    return [e["path"] for e in r.json["error"]["errors"]]


def count_cases(plaint):
    return plaint.sql("SELECT count(*) FROM cases")[0][0]


def metric_value(text, name, **labels):
    """The value of one sample of a metric in Prometheus text, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^([a-z_]+)(\{(.*)\})? ([0-9.e+-]+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


# The SQL of intake's group commit (plaint_submit_batch, 0001_cases_events.sql), called
# directly: N cases and their numbered case.received events, as intake stores them.
BULK_SQL = """
WITH g AS MATERIALIZED (
    SELECT i, plaint_uuid_v7()::text AS id,
           (ARRAY['phone','email','web','app','chat','social','store','letter'])[1 + i %% 8] AS ch,
           '+86139' || lpad(i::text, 8, '0') AS phone
    FROM generate_series(%s::int, %s::int) i)
SELECT count(*) FROM plaint_submit_batch(
    ARRAY(SELECT id FROM g ORDER BY i),
    ARRAY(SELECT 'e2e-bulk' FROM g ORDER BY i),
    ARRAY(SELECT 'bulk-' || i FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT ch FROM g ORDER BY i),
    ARRAY(SELECT 'CU-' || i FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT phone FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT 'en' FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT 'Bulk complaint number ' || i || ': the parcel is late.' FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT NULL::text FROM g ORDER BY i),
    ARRAY(SELECT jsonb_build_object('channel', ch, 'customer', jsonb_build_object('phone', phone),
                                    'body', 'Bulk complaint number ' || i)::text
          FROM g ORDER BY i),
    'plaint-intake')
"""


def bulk_insert(plaint, first, last):
    n = plaint.sql(BULK_SQL, first, last)[0][0]
    assert n == last - first + 1
    return n


# ---------------------------------------------------------------------------- 1. submitting


def bad_bodies(plaint):
    """(label, raw body, statuses allowed, paths that must be named)."""
    good = complaint(plaint)
    tag = secrets.token_hex(3)

    def with_(**fields):
        d = json.loads(json.dumps(good))
        d.update(fields)
        d["external_id"] = f"BAD-{tag}-{secrets.token_hex(3)}"
        return json.dumps(d, ensure_ascii=False).encode("utf-8")

    no_contact = dict(good["customer"])
    for k in ("id", "phone", "email"):
        no_contact.pop(k)
    no_customer = json.loads(with_())
    no_customer.pop("customer")
    no_body = json.loads(with_())
    no_body.pop("body")
    bad_utf8 = with_(body="@@BODY@@").replace(b"@@BODY@@", b"broken \xff\xfe bytes")
    bad_utf8_name = with_(customer=dict(good["customer"], name="@@N@@")).replace(
        b"@@N@@", b"Orla \xc3")
    return [
        ("not JSON", b"channel=web&body=the+parcel", {400}, [""]),
        ("an array", json.dumps([good]).encode(), {400}, [""]),
        ("a string", b'"the parcel is late"', {400}, [""]),
        ("empty HTTP body", b"", {400}, [""]),
        ("trailing garbage", with_() + b" {}", {400}, [""]),
        ("wrong types", with_(channel=5, customer="Orla", body=["late"], subject=7,
                              attachments="none", demand={"x": 1}), {400},
         ["channel", "customer", "body", "subject", "attachments", "demand"]),
        ("unknown channel", with_(channel="carrier_pigeon"), {400}, ["channel"]),
        ("empty body field", with_(body=""), {400}, ["body"]),
        ("body field missing", json.dumps(no_body).encode(), {400}, ["body"]),
        ("body of 65537 bytes", with_(body="b" * 65537), {413, 400}, ["body"]),
        ("invalid UTF-8 in body", bad_utf8, {400}, ["body"]),
        ("invalid UTF-8 in customer.name", bad_utf8_name, {400}, ["customer.name"]),
        ("no customer contact", with_(customer=no_contact), {400}, ["customer"]),
        ("no customer", json.dumps(no_customer).encode(), {400}, ["customer"]),
        ("unknown customer type", with_(customer=dict(good["customer"], type="gold")), {400},
         ["customer.type"]),
        ("subject of 201 characters", with_(subject="s" * 201), {400, 413}, ["subject"]),
        ("21 attachments", with_(attachments=[{"name": "a.jpg", "url": "https://e.example/a",
                                               "size": 1}] * 21), {400, 413}, ["attachments"]),
        ("occurred_at not a time", with_(occurred_at="last Monday"), {400}, ["occurred_at"]),
        ("several problems at once", with_(channel="fax", body="", occurred_at="soon",
                                           demand_type="money"), {400},
         ["channel", "body", "occurred_at", "demand_type"]),
    ]


def post_headers_only(addr, path, length):
    """POST with Content-Length: length and no body sent: a server that refuses the size
    answers at once (sending the body would only hit a closed connection)."""
    import http.client

    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout(10))
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        res = conn.getresponse()
        return harness.HttpResponse(res.status, dict(res.getheaders()), res.read())
    finally:
        conn.close()


def test_submit_over_http_then_classified_and_routed(plaint):
    desk = start_stack(plaint)
    data = complaint(plaint, external_id=f"WEB-{uuid.uuid4()}")
    r = desk.submit(data)
    assert r.status == 201, r
    got = r.json
    assert set(got) >= {"case_id", "case_no", "duplicate"} and got["duplicate"] is False, got
    uuid.UUID(got["case_id"])
    assert CASE_NO.match(got["case_no"]), got
    assert r.headers.get("location") == f"/v1/cases/{got['case_id']}", r.headers
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers

    # The same (source, external_id): the same case, 200.
    again = desk.submit(data)
    assert again.status == 200, again
    assert again.json == dict(got, duplicate=True)
    # Another source (X-Plaint-Source) is another idempotency namespace.
    crm = desk.submit(data, source="crm-e2e")
    assert crm.status == 201 and crm.json["case_id"] != got["case_id"], crm
    crm_again = desk.submit(data, source="crm-e2e")
    assert crm_again.status == 200 and crm_again.json == dict(crm.json, duplicate=True), crm_again
    # Without external_id there is no key: two cases.
    plain = {k: v for k, v in complaint(plaint, "quality").items() if k != "external_id"}
    one, two = desk.submit(plain), desk.submit(plain)
    assert one.status == two.status == 201 and one.json["case_id"] != two.json["case_id"]
    assert count_cases(plaint) == 4
    rows = dict(plaint.sql("SELECT case_id::text, source FROM cases"))
    assert rows[got["case_id"]] == "http" and rows[crm.json["case_id"]] == "crm-e2e"

    # Bad bodies: 4xx naming each field, nothing stored.
    for label, raw, statuses, paths in bad_bodies(plaint):
        r = desk.post("/v1/complaints", raw)
        assert r.status in statuses, f"{label}: {r}"
        assert r.json and "error" in r.json, f"{label}: {r}"
        err = r.json["error"]
        assert err["code"] == ("too_large" if r.status == 413 else "invalid"), f"{label}: {err}"
        assert err["message"], label
        named = [e["path"] for e in err["errors"]]
        for p in paths:
            assert p in named, f"{label}: no error names {p!r}: {err}"
        assert not any(p.startswith("data") for p in named), f"{label}: envelope paths: {named}"
        assert count_cases(plaint) == 4, f"{label}: something was stored"
    r = post_headers_only(desk.addr, "/v1/complaints", 2 << 20)
    assert r.status == 413 and r.json["error"]["code"] == "too_large", r

    # Classified and routed, shown the same by case_no and by case_id.
    case = desk.wait_state(got["case_id"], "routed")
    by_no = desk.case(got["case_no"])
    assert by_no == desk.case(got["case_id"])
    assert (case["case_id"], case["case_no"]) == (got["case_id"], got["case_no"])
    case = by_no
    c = data["customer"]
    assert case["channel"] == data["channel"] and case["source"] == "http"
    assert case["external_id"] == data["external_id"]
    assert (case["subject"], case["body"], case["demand"]) == (data["subject"], data["body"],
                                                               data["demand"])
    assert {k: case["customer"].get(k) for k in c} == c
    assert case["target"] == data["target"]
    for field in ("department", "assignee", "priority", "category"):
        assert isinstance(case[field], str) and case[field], f"{field}: {case[field]!r}"
    assert case["department"] in case["departments"]
    assert case["classification"]["category"] == case["category"]
    assert case["classification"]["priority"] == case["priority"]
    row = plaint.sql("SELECT department, assignee, priority, category, state FROM cases"
                     " WHERE case_id = %s", got["case_id"])[0]
    assert row == (case["department"], case["assignee"], case["priority"], case["category"],
                   "routed")

    case = desk.wait_timeline(got["case_id"], 3)
    t = case["timeline"]
    assert [e["type"] for e in t] == ["case.received", "case.classified", "case.routed"]
    seqs = [e["seq"] for e in t]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    assert [parse_time(e["at"]) for e in t] == sorted(parse_time(e["at"]) for e in t)
    for e in t:
        assert e["data"]["case_id"] == got["case_id"] and e["data"]["case_no"] == got["case_no"]
    classified, routed = t[1]["data"], t[2]["data"]
    assert (classified["category"], classified["priority"]) == (case["category"],
                                                                case["priority"])
    assert (routed["department"], routed["assignee"]) == (case["department"], case["assignee"])
    # The SLA clocks are the routed due times, running.
    fr = case["sla"]["first_response"]
    assert parse_time(fr["due_at"]) == parse_time(routed["first_response_due"])
    assert fr["met_at"] is None and fr["breached"] is False
    assert parse_time(case["sla"]["resolution"]["due_at"]) == parse_time(routed["resolution_due"])
    assert case["overdue"] is False and case["reopen_count"] == 0

    # The same events in the log, numbered the same.
    log = desk.get("/v1/events?after=0&limit=1000").json["events"]
    mine = [(e["data"]["seq"], e["type"]) for e in log if e["data"]["case_id"] == got["case_id"]]
    assert mine == [(e["seq"], e["type"]) for e in t]


# ---------------------------------------------------------------------------- 2. the procedure


def test_whole_procedure_and_reject_path(plaint):
    desk = start_stack(plaint)
    key = submit_routed(desk, complaint(plaint))
    rej = submit_routed(desk, complaint(plaint, "quality"))
    case = desk.wait_state(key, "routed")
    desk.wait_state(rej, "routed")
    case = desk.wait_timeline(key, 3)
    routed_seq = case["timeline"][-1]["seq"]
    home, routed_assignee = case["department"], case["assignee"]
    other = "finance" if home != "finance" else "legal"
    rej_departments = desk.case(rej)["departments"]
    promised = in_hours(30)
    text = lambda what: f"{what} {secrets.token_hex(3)}"  # noqa: E731
    # (action, fields, actor, state after, events written)
    steps = [
        ("acknowledge", {"comment": text("rang the customer back")}, "agent.e2e", "acknowledged",
         ["case.acknowledged"]),
        ("note", {"note": text("asked the courier for the GPS trace")}, "agent.e2e",
         "in_progress", ["case.noted"]),
        ("assign", {"assignee": "agent.fn.e2e", "department": other,
                    "comment": text("a refund may be due")}, "agent.e2e", "in_progress",
         ["case.assigned"]),
        ("promise", {"due_at": promised, "promise": text("an answer by tomorrow")},
         "agent.fn.e2e", "in_progress", ["case.promised"]),
        ("propose", {"solution": text("refund the postage"), "solution_type": "refund",
                     "amount": 12.5, "currency": "CNY"}, "agent.fn.e2e", "solution_proposed",
         ["case.solution_proposed"]),
        ("feedback", {"satisfied": False, "comment": text("wants the parcel, not money")},
         "agent.fn.e2e", "reopened", ["case.feedback", "case.reopened"]),
        ("propose", {"solution": text("send the order again"), "solution_type": "replacement"},
         "agent.fn.e2e", "solution_proposed", ["case.solution_proposed"]),
        ("feedback", {"satisfied": False}, "agent.fn.e2e", "reopened",
         ["case.feedback", "case.reopened"]),
        ("propose", {"solution": text("send again by express with an apology"),
                     "solution_type": "replacement"}, "agent.fn.e2e", "solution_proposed",
         ["case.solution_proposed"]),
        ("feedback", {"satisfied": True, "comment": text("fine")}, "agent.fn.e2e", "resolved",
         ["case.feedback", "case.resolved"]),
        ("review", {"comment": text("ok")}, "sup.fn.e2e", "reviewed", ["case.reviewed"]),
        ("close", {"reason": text("archived")}, "sup.fn.e2e", "closed", ["case.closed"]),
        ("rate", {"score": 5, "comment": text("quick in the end")}, "agent.fn.e2e", "closed",
         ["case.rated"]),
    ]
    for fields in (s[1] for s in steps):
        plaint.remember_private(*(v for v in fields.values() if isinstance(v, str) and " " in v))
    expected = []  # (type, state after, actor)
    state = "routed"
    for i, (action, fields, actor, want, events) in enumerate(steps):
        got = desk.must_act(key, action, want, actor, **fields)
        assert got["previous_state"] == state and got["case_id"] == key, got
        assert CASE_NO.match(got["case_no"])
        expected += [(t, want, actor) for t in events]
        state = want
        if action == "assign":
            # Cross-department: listed under both departments, and under the new assignee.
            for dept in (home, other, f"{home},{other}"):
                also = [rej] if set(dept.split(",")) & set(rej_departments) else []
                assert sorted(desk.list_all(f"department={dept}")) == sorted([key] + also), dept
            assert desk.list_all("assignee=agent.fn.e2e") == [key]
            assert desk.list_all(f"state=in_progress&department={other}") == [key]
            assert desk.list_all("state=routed") == [rej]
            if "store_ops" not in (home, other):
                assert key not in desk.list_all("department=store_ops"), "listed elsewhere"
        if action == "promise":
            # A promise in the past is refused, and changes nothing.
            before = desk.wait_timeline(key, len(desk.case(key)["timeline"]))
            r = desk.act(key, "promise", actor, due_at=in_hours(-1))
            assert r.status == 400 and error_paths(r) == ["due_at"], r
            r = desk.act(key, "promise", actor, due_at="tomorrow at noon")
            assert r.status == 400 and error_paths(r) == ["due_at"], r
            assert desk.case(key) == before
        if action == "feedback":
            reopens = sum(1 for s in steps[:i + 1] if s[0] == "feedback" and
                          not s[1]["satisfied"])
            assert desk.case(key)["reopen_count"] == reopens

    case = desk.wait_timeline(key, 3 + len(expected))
    assert case["state"] == "closed" and case["reopen_count"] == 2
    assert case["satisfied"] is True and case["csat"] == 5
    assert case["department"] == other and set(case["departments"]) == {home, other}
    assert case["assignee"] == "agent.fn.e2e"
    for field in ("acknowledged_at", "resolved_at", "reviewed_at", "closed_at"):
        assert case[field] is not None, field
    assert case["rejected_at"] is None
    assert parse_time(case["promise_due"]) == parse_time(promised)
    assert parse_time(case["sla"]["promise"]["due_at"]) == parse_time(promised)
    assert case["sla"]["first_response"]["met_at"] is not None
    assert case["sla"]["resolution"]["met_at"] is not None
    assert case["overdue"] is False

    t = case["timeline"][3:]
    assert [(e["type"], e["data"]["state"], e["data"]["actor"]) for e in t] == [
        (typ, st, act) for typ, st, act in expected], "timeline"
    seqs = [e["seq"] for e in case["timeline"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    reopened = [e["data"] for e in t if e["type"] == "case.reopened"]
    assert [d["reopen_count"] for d in reopened] == [1, 2]
    assert all(d["department"] == other for d in reopened)
    assigned = next(e["data"] for e in t if e["type"] == "case.assigned")
    assert (assigned["assignee"], assigned["department"]) == ("agent.fn.e2e", other)
    assert assigned["previous_assignee"] == routed_assignee
    assert next(e["data"] for e in t if e["type"] == "case.rated")["score"] == 5

    # The reject path.
    r = desk.act(rej, "reject", "agent.e2e")
    assert r.status == 400 and error_paths(r) == ["reason"], r
    r = desk.act(rej, "reject", "agent.e2e", reason="")
    assert r.status == 400 and error_paths(r) == ["reason"], r
    assert desk.case(rej)["state"] == "routed"
    reason = text("the lamp was bought from another shop")
    plaint.remember_private(reason)
    desk.must_act(rej, "reject", "rejected", reason=reason)
    r = desk.act(rej, "review", "sup.e2e")
    assert r.status == 409 and r.json["error"]["allowed"] == ["note", "close"], r
    desk.must_act(rej, "close", "closed", "sup.e2e")
    rcase = desk.wait_timeline(rej, 5)
    assert [e["type"] for e in rcase["timeline"][3:]] == ["case.rejected", "case.closed"]
    assert rcase["timeline"][3]["data"]["reason"] == reason
    assert rcase["rejected_at"] is not None and rcase["closed_at"] is not None

    # Every event of both cases in the log after the routing, in seq order, each valid.
    after = routed_seq
    log = []
    while True:
        page = desk.get(f"/v1/events?after={after}&limit=7").json
        log += page["events"]
        if not page["events"]:
            break
        after = page["next"]
    assert [e["data"]["seq"] for e in log] == sorted(e["data"]["seq"] for e in log)
    for e in log:
        validate_event(e)
    by_case = {}
    for e in log:
        by_case.setdefault(e["data"]["case_id"], []).append((e["data"]["seq"], e["type"]))
    assert by_case[key] == [(e["seq"], e["type"]) for e in t]
    assert by_case[rej][-2:] == [(e["seq"], e["type"]) for e in rcase["timeline"][3:]]


# ---------------------------------------------------------------------------- 3. wrong states


def test_every_wrong_state_action_gets_409_and_changes_nothing(plaint):
    desk = start_stack(plaint)
    key = submit_routed(desk, complaint(plaint))
    rej = submit_routed(desk, complaint(plaint, "quality"))
    desk.wait_state(key, "routed")
    desk.wait_state(rej, "routed")
    n409 = 0

    def sweep(k, state):
        nonlocal n409
        before = desk.wait_timeline(k, len(desk.case(k)["timeline"]))
        assert before["state"] == state
        for action in ACTIONS:
            if state in ALLOWED_IN[action]:
                continue
            r = desk.act(k, action, "sup.e2e", **valid_body(action))
            n409 += 1
            assert r.status == 409, f"{action} in {state}: {r}"
            err = r.json["error"]
            assert err["code"] == "conflict" and err["state"] == state, err
            assert err["action"] == action, err
            assert err["allowed"] == allowed(state), f"{action} in {state}: {err}"
            assert f'"{state}"' in err["message"] and action in err["message"], err
        after = desk.case(k)
        assert after == before, f"a refused action in {state} changed the case"

    path = [
        ("acknowledge", {}, "acknowledged"),
        ("note", {"note": "called the depot"}, "in_progress"),
        ("propose", {"solution": "resend", "solution_type": "replacement"}, "solution_proposed"),
        ("feedback", {"satisfied": False}, "reopened"),
        ("propose", {"solution": "refund", "solution_type": "refund"}, "solution_proposed"),
        ("feedback", {"satisfied": True}, "resolved"),
        ("review", {}, "reviewed"),
        ("close", {}, "closed"),
    ]
    sweep(key, "routed")
    for action, fields, want in path:
        desk.must_act(key, action, want, "sup.e2e", **fields)
        sweep(key, want)
    desk.must_act(rej, "reject", "rejected", reason="unfounded: wrong shop")
    sweep(rej, "rejected")
    # resolve and reopen, the actions the path above does not take.
    third = submit_routed(desk, complaint(plaint))
    desk.wait_state(third, "routed")
    for action, fields, want in [
            ("acknowledge", {}, "acknowledged"),
            ("propose", {"solution": "an apology", "solution_type": "apology"},
             "solution_proposed"),
            ("resolve", {"resolution": "apologised"}, "resolved"),
            ("reopen", {"reason": "the customer called again"}, "reopened"),
            ("propose", {"solution": "a voucher", "solution_type": "compensation"},
             "solution_proposed"),
            ("reopen", {}, "reopened"),
            ("propose", {"solution": "a refund", "solution_type": "refund"},
             "solution_proposed"),
            ("resolve", {}, "resolved"),
            ("rate", {"score": 2}, "resolved")]:
        desk.must_act(third, action, want, "sup.e2e", **fields)
        sweep(third, want)
    case = desk.case(third)
    assert case["reopen_count"] == 2 and case["csat"] == 2
    assert case["resolved_at"] is not None
    reopened = [e["data"] for e in case["timeline"] if e["type"] == "case.reopened"]
    assert [d["reopen_count"] for d in reopened] == [1, 2], reopened
    assert reopened[0]["reason"] == "the customer called again"
    assert all(d["department"] == case["department"] for d in reopened)
    # The refusals are counted.
    got = metric_value(desk.metrics(), "plaint_desk_conflicts_total")
    assert got == n409, f"plaint_desk_conflicts_total {got}, want {n409}"
    assert plaint.sql("SELECT count(*) FROM events WHERE type = 'case.acknowledged'")[0][0] == 2


# ---------------------------------------------------------------------------- 4. concurrency


def race(desk, key, bodies):
    """Posts every body to key's actions at the same moment, one thread each; returns the
    responses in the order of bodies."""
    barrier = threading.Barrier(len(bodies))
    out = [None] * len(bodies)

    def one(i):
        barrier.wait()
        try:
            out[i] = desk.post(f"/v1/cases/{key}/actions", bodies[i])
        except OSError as e:  # recorded, so the assertion shows it
            out[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout(30))
    return out


def test_ten_agents_acknowledge_at_once_one_wins(plaint):
    desk = start_stack(plaint, PLAINT_DESK_DB_CONNECTIONS=8)
    keys = [submit_routed(desk, complaint(plaint)) for _ in range(3)]
    for k in keys:
        desk.wait_state(k, "routed")
    for k in keys:
        bodies = [{"action": "acknowledge", "actor": f"agent.race.{i}"} for i in range(10)]
        res = race(desk, k, bodies)
        statuses = [getattr(r, "status", r) for r in res]
        assert sorted(statuses) == [200] + [409] * 9, statuses
        winner = bodies[statuses.index(200)]["actor"]
        for r in res:
            if r.status == 409:
                assert r.json["error"]["state"] == "acknowledged", r
        rows = plaint.sql("SELECT data->>'actor' FROM events WHERE case_id = %s"
                          " AND type = 'case.acknowledged'", k)
        assert rows == [(winner,)], rows
        case = desk.wait_timeline(k, 4)
        assert [e["type"] for e in case["timeline"]].count("case.acknowledged") == 1

    # A race between satisfied and unsatisfied feedback: one decides the state.
    k = keys[0]
    desk.must_act(k, "propose", "solution_proposed", solution="resend",
                  solution_type="replacement")
    bodies = [{"action": "feedback", "actor": f"agent.race.{i}", "satisfied": i % 2 == 0}
              for i in range(10)]
    res = race(desk, k, bodies)
    statuses = [getattr(r, "status", r) for r in res]
    assert sorted(statuses) == [200] + [409] * 9, statuses
    won = bodies[statuses.index(200)]
    want = "resolved" if won["satisfied"] else "reopened"
    case = desk.wait_timeline(k, 7)
    assert case["state"] == want
    assert [e["type"] for e in case["timeline"][4:]] == [
        "case.solution_proposed", "case.feedback", f"case.{want}"]
    assert case["timeline"][5]["data"]["actor"] == won["actor"]
    assert case["reopen_count"] == (0 if won["satisfied"] else 1)


def test_an_action_still_allowed_after_a_concurrent_change_is_applied(plaint):
    """A note racing an acknowledge: whichever commits first, the note is allowed in the state
    the other one left (routed, acknowledged), so it must not get a 409 that says it is not."""
    desk = start_stack(plaint, PLAINT_DESK_DB_CONNECTIONS=8)
    keys = [submit_routed(desk, complaint(plaint)) for _ in range(3)]
    contradictions = []
    for k in keys:
        desk.wait_state(k, "routed")
        bodies = [{"action": "acknowledge", "actor": "agent.ack"}] + [
            {"action": "note", "actor": f"agent.n{i}", "note": f"checked the depot, try {i}"}
            for i in range(9)]
        res = race(desk, k, bodies)
        assert res[0].status == 200, res[0]
        notes_ok = 0
        for body, r in zip(bodies[1:], res[1:]):
            assert r.status in (200, 409), r
            if r.status == 200:
                notes_ok += 1
                continue
            err = r.json["error"]
            if err["action"] in err["allowed"]:
                contradictions.append(f"{err['action']} refused in {err['state']} with "
                                      f"allowed={err['allowed']}: {err['message']}")
        noted = plaint.sql("SELECT count(*) FROM events WHERE case_id = %s"
                           " AND type = 'case.noted'", k)[0][0]
        assert noted == notes_ok
    assert not contradictions, (
        f"{len(contradictions)} of 27 notes got 409 although note is allowed in the state "
        f"named (the desk does not re-decide after losing the conditional update); first: "
        f"{contradictions[0]}")


def test_concurrent_assigns_record_each_previous_assignee(plaint):
    """Ten assigns at once all apply (assign keeps in_progress); each case.assigned event must
    name the assignee it replaced, so the timeline reads as one chain."""
    desk = start_stack(plaint, PLAINT_DESK_DB_CONNECTIONS=8)
    k = submit_routed(desk, complaint(plaint))
    first = desk.wait_state(k, "routed")["assignee"]
    desk.must_act(k, "acknowledge", "acknowledged")
    desk.must_act(k, "note", "in_progress", note="looking into it")
    bodies = [{"action": "assign", "actor": "sup.e2e", "assignee": f"agent.as{i}"}
              for i in range(10)]
    res = race(desk, k, bodies)
    assert [r.status for r in res] == [200] * 10, res
    case = desk.wait_timeline(k, 15)
    chain = [(e["data"]["previous_assignee"], e["data"]["assignee"])
             for e in case["timeline"] if e["type"] == "case.assigned"]
    assert len(chain) == 10
    want_prev = [first] + [to for _, to in chain[:-1]]
    assert [prev for prev, _ in chain] == want_prev, (
        f"case.assigned events do not chain: (previous_assignee, assignee) in timeline order "
        f"{chain}; want previous_assignee {want_prev}")
    assert case["assignee"] == chain[-1][1]


# ---------------------------------------------------------------------------- 5. paging


def test_paging_10000_cases_with_filters(plaint):
    total = 10000
    bulk_insert(plaint, 1, total)
    # Some cases as the pipeline leaves them: routed to logistics; every 25th to quality with
    # legal involved, P1; every 50th of those past its first-response deadline.
    plaint.sql("""
        UPDATE cases SET state = 'routed', category = 'logistics_delivery', priority = 'P2',
               department = 'logistics', departments = '{logistics}', assignee = 'agent.lg.bulk',
               first_response_due = now() + interval '1 day',
               resolution_due = now() + interval '2 days'
        WHERE substring(external_id FROM 6)::int % 10 = 0""")
    plaint.sql("""
        UPDATE cases SET category = 'product_quality', priority = 'P1', department = 'quality',
               departments = '{quality,legal}', assignee = 'agent.qa.bulk'
        WHERE substring(external_id FROM 6)::int % 25 = 0""")
    plaint.sql("""
        UPDATE cases SET first_response_due = now() - interval '1 hour'
        WHERE substring(external_id FROM 6)::int % 50 = 0""")
    plaint.remember_private(*(f"+86139{i:08d}" for i in (1, 777, 5000, 9999)))
    desk = start_stack(plaint, pipeline=False, intake=False)

    def ids(where, *params):
        """Case ids in the order the desk lists them: the order they were stored."""
        return [r[0] for r in plaint.sql(f"SELECT case_id::text FROM cases WHERE {where} "
                                         "ORDER BY received_seq", *params)]

    t0 = time.monotonic()
    everything = ids("true")
    extra = []

    def add_more(page):
        # Cases that arrive while a client pages come last, and are listed too.
        if page == 5:
            bulk_insert(plaint, total + 1, total + 100)
            extra.extend(ids("substring(external_id FROM 6)::int > %s", total))

    got = desk.list_all(during=add_more)
    assert len(extra) == 100 and not set(extra) & set(everything)
    assert got == everything + extra, "every case once, in the order stored"
    everything += extra

    # The default page is 50.
    first = desk.get("/v1/cases").json
    assert first["count"] == 50 and [c["case_id"] for c in first["cases"]] == everything[:50]
    assert first["next"] == str(first["cases"][49]["received_seq"])

    open_states = "state NOT IN ('resolved', 'reviewed', 'closed', 'rejected')"
    filters = [
        ("state=received", ids("state = 'received'")),
        ("state=routed", ids("state = 'routed'")),
        ("state=received,routed", everything),
        ("department=quality", ids("department = 'quality'")),
        ("department=legal", ids("'legal' = ANY (departments)")),
        ("department=logistics,legal", ids("department IS NOT NULL")),
        ("priority=P1", ids("priority = 'P1'")),
        ("category=logistics_delivery", ids("category = 'logistics_delivery'")),
        ("channel=phone", ids("channel = 'phone'")),
        ("channel=email,web", ids("channel IN ('email', 'web')")),
        ("assignee=agent.qa.bulk", ids("assignee = 'agent.qa.bulk'")),
        ("overdue=true", ids(f"first_response_due < now() AND {open_states}")),
        ("state=routed&priority=P2&channel=store", ids(
            "state = 'routed' AND priority = 'P2' AND channel = 'store'")),
        ("state=closed", []),
        ("department=nobody", []),
    ]
    for query, want in filters:
        assert want or query in ("state=closed", "department=nobody"), f"{query}: no data"
        assert desk.list_all(query) == want, query
    overdue_false = desk.list_all("overdue=false")
    overdue = set(ids("first_response_due < now()"))
    assert overdue_false == [i for i in everything if i not in overdue]
    # Small pages of a filter give the same cases.
    assert desk.list_all("priority=P1", limit=7) == ids("priority = 'P1'")

    # Bad parameters name themselves.
    for query, path in [("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
                        ("limit=-5", "limit"), ("after=C-20260101-000001", "after"),
                        ("after=xyz", "after"), ("overdue=maybe", "overdue"),
                        ("state=%zz", "state")]:
        r = desk.get(f"/v1/cases?{query}")
        assert r.status == 400, f"{query}: {r}"
        assert r.json["error"]["code"] == "invalid" and error_paths(r) == [path], f"{query}: {r}"
    r = desk.get("/v1/cases?limit=0&after=nope&overdue=1")
    assert r.status == 400 and sorted(error_paths(r)) == ["after", "limit", "overdue"], r
    elapsed = time.monotonic() - t0
    print(f"paging and filters over {len(everything)} cases: {elapsed:.1f} s")


def test_every_list_filter_takes_a_comma_separated_list(plaint):
    """PROTOCOL.md 12.3: each filter takes one value or a comma-separated list."""
    bulk_insert(plaint, 1, 90)
    plaint.sql("""
        UPDATE cases SET
            state = (ARRAY['received','routed','acknowledged'])[1 + n % 3],
            priority = (ARRAY['P1','P2','P3'])[1 + (n / 3) % 3],
            category = (ARRAY['logistics_delivery','product_quality','other'])[1 + (n / 9) % 3],
            department = (ARRAY['logistics','quality','customer_service'])[1 + (n / 9) % 3],
            departments = ARRAY[(ARRAY['logistics','quality','customer_service'])[1 + (n / 9) % 3]],
            assignee = (ARRAY['agent.x','agent.y','agent.z'])[1 + (n / 27) % 3]
        FROM (SELECT case_id AS id, substring(external_id FROM 6)::int AS n FROM cases) k
        WHERE k.id = cases.case_id""")
    desk = start_stack(plaint, pipeline=False, intake=False)
    failed = []
    for param, column in [("state", "state"), ("department", "department"),
                          ("priority", "priority"), ("category", "category"),
                          ("channel", "channel"), ("assignee", "assignee")]:
        values = sorted(r[0] for r in plaint.sql(f"SELECT DISTINCT {column} FROM cases"))
        assert len(values) >= 3, (param, values)
        for chosen in ([values[0]], values[:2], values):
            want = [r[0] for r in plaint.sql(
                f"SELECT case_id::text FROM cases WHERE {column} = ANY (%s) "
                "ORDER BY received_seq", chosen)]
            query = f"{param}={','.join(chosen)}"
            got = desk.list_all(query)
            if got != want:
                failed.append(f"{query}: {len(got)} cases, want {len(want)}")
    assert not failed, "list filters: " + "; ".join(failed)


def test_paging_while_cases_arrive_returns_every_case_once(plaint):
    """PROTOCOL.md 12.3: paging returns every matching case exactly once, also while new cases
    arrive. Two intakes (a supported set-up) commit their batches independently."""
    plaint.start_intake(PLAINT_INTAKE_BATCH_MAX=8)
    second = plaint.new_ports()
    plaint.start_intake(PLAINT_INTAKE_BATCH_MAX=8, **plaint.endpoints(second))
    desk = start_stack(plaint, pipeline=False, intake=False)
    ports = [plaint.ports["submit"], second["submit"]]
    stop = threading.Event()
    acked, problems = set(), []
    lock = threading.Lock()

    def client(n):
        import zmq

        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{ports[n % 2]}")
        inflight, deadline = 0, None
        try:
            while True:
                if stop.is_set():
                    deadline = deadline or time.monotonic() + timeout(10)
                    if inflight == 0 or time.monotonic() > deadline:
                        break
                while not stop.is_set() and inflight < 16:
                    msg = plaint.envelope({"channel": "api", "customer": {"id": f"CU-load-{n}"},
                                           "body": "the order arrived damaged"})
                    sock.send_multipart([b"", json.dumps(msg).encode()])
                    inflight += 1
                if sock.poll(100):
                    reply = json.loads(sock.recv_multipart()[-1])
                    inflight -= 1
                    with lock:
                        if reply["type"] == "complaint.accepted":
                            acked.add(reply["data"]["case_id"])
                        else:
                            problems.append(reply)
        finally:
            sock.close(linger=0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    listed, cursor, t0 = [], None, time.monotonic()
    try:
        while time.monotonic() - t0 < 3:
            r = desk.get("/v1/cases?limit=25" + (f"&after={cursor}" if cursor else ""))
            assert r.status == 200, r
            page = [c["case_id"] for c in r.json["cases"]]
            listed += page
            # next, or at the end (a short page, next null) the last case seen.
            cursor = r.json["next"] or (page[-1] if page else cursor)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout(20))
    assert not problems, problems[:3]
    listed += desk.list_all(after=cursor)
    every = [r[0] for r in plaint.sql("SELECT case_id::text FROM cases ORDER BY received_seq")]
    assert acked <= set(every)
    assert len(listed) == len(set(listed)), "a case was listed twice"
    missing = sorted(set(every) - set(listed))
    assert len(every) > 500, f"only {len(every)} cases arrived"
    assert not missing, (
        f"{len(missing)} of {len(every)} cases were never listed by a client paging while they "
        f"arrived")


# ---------------------------------------------------------------------------- 6. events


def test_events_paging_and_parameters(plaint):
    total = 2500
    bulk_insert(plaint, 1, total)
    desk = start_stack(plaint, pipeline=False, intake=False)
    seqs, after = [], 0
    while True:
        page = desk.get(f"/v1/events?after={after}&limit=1000").json
        got = [e["data"]["seq"] for e in page["events"]]
        assert len(got) <= 1000 and all(s > after for s in got) and got == sorted(got)
        seqs += got
        assert page["next"] == (got[-1] if got else after)
        if not got:
            break
        after = page["next"]
    assert seqs == list(range(1, total + 1))

    for after, limit in [(0, 1), (1234, 7), (2495, 100), (total, 10), (99999, 5), (0, 1000)]:
        page = desk.get(f"/v1/events?after={after}&limit={limit}").json
        got = [e["data"]["seq"] for e in page["events"]]
        want = list(range(after + 1, min(after + limit, total) + 1))
        assert got == want, f"after={after}&limit={limit}"
        assert page["next"] == (want[-1] if want else after)
    page = desk.get("/v1/events").json
    assert [e["data"]["seq"] for e in page["events"]] == list(range(1, 101))
    for e in page["events"][:40] + desk.get("/v1/events?after=2460").json["events"]:
        validate_event(e)
        assert e["type"] == "case.received" and e["source"] == "plaint-intake"

    for query, path in [("after=abc", "after"), ("after=-1", "after"), ("after=1.5", "after"),
                        ("after=99999999999999999999", "after"), ("limit=0", "limit"),
                        ("limit=1001", "limit"), ("limit=100000", "limit"),
                        ("limit=abc", "limit"), ("limit=%31%30x", "limit")]:
        r = desk.get(f"/v1/events?{query}")
        assert r.status == 400, f"{query}: {r}"
        err = r.json["error"]
        assert err["code"] == "invalid" and [e["path"] for e in err["errors"]] == [path], \
            f"{query}: {err}"
        assert path in err["message"], err


# ---------------------------------------------------------------------------- 7. HTTP basics


def test_not_found_health_metrics_and_sigterm(plaint):
    bulk_insert(plaint, 1, 3)
    received = plaint.sql("SELECT case_id::text, case_no FROM cases ORDER BY case_id")
    desk = start_stack(plaint, pipeline=False, intake=False, PLAINT_DESK_SUBMIT_TIMEOUT="1s")

    r = desk.get("/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}, r
    for path in (f"/v1/cases/{uuid.uuid4()}", "/v1/cases/C-20260101-999999",
                 "/v1/cases/no%20such%20case", "/v1/cases/" + "x" * 300, "/v1/cases/",
                 f"/v1/cases/{received[0][0]}/timeline", "/nope", "/v1/case", "/v1/eventsx",
                 "/v1/complaints/1"):
        r = desk.get(path)
        assert r.status == 404, f"{path}: {r}"
        assert r.json["error"]["code"] == "not_found", f"{path}: {r}"
    r = desk.act(str(uuid.uuid4()), "acknowledge")
    assert r.status == 404 and r.json["error"]["code"] == "not_found", r
    r = desk.act("C-20260101-999999", "note", note="anything")
    assert r.status == 404, r
    r = desk.post(f"/v1/cases/{received[0][0]}", {"action": "acknowledge", "actor": "a"})
    assert r.status == 404, r
    r = desk.get("/v1/complaints")
    assert r.status == 405, r
    # A case still waiting for the classifier allows nothing yet.
    r = desk.act(received[0][1], "acknowledge")
    assert r.status == 409, r
    assert r.json["error"]["state"] == "received" and r.json["error"]["allowed"] == [], r
    # The dashboard page and the statistics answer too.
    r = desk.get("/")
    assert r.status == 200 and r.headers.get("content-type", "").startswith("text/html"), r
    r = desk.get("/v1/stats?group_by=channel")
    assert r.status == 200 and r.json["total"]["volume"] == 3, r
    r = desk.get("/v1/stats?group_by=colour")
    assert r.status == 400 and error_paths(r) == ["group_by"], r

    # No intake: the submission is not confirmed in time (503), and nothing is stored.
    t0 = time.monotonic()
    r = desk.submit(complaint(plaint))
    assert r.status == 503 and r.json["error"]["code"] == "unavailable", r
    assert time.monotonic() - t0 < timeout(5)
    assert count_cases(plaint) == 3

    text = desk.metrics()
    assert "# TYPE plaint_desk_requests_total counter" in text
    n404 = metric_value(text, "plaint_desk_requests_total", route="case", status="4xx")
    assert n404 is not None and n404 >= 6, n404
    assert metric_value(text, "plaint_desk_requests_total", route="action", status="4xx") >= 4

    # SIGTERM with a request in flight: an action waiting on a row lock.
    plaint.sql("UPDATE cases SET state = 'routed', department = 'logistics',"
               " departments = '{logistics}' WHERE case_id = %s", received[1][0])
    import psycopg2

    lock = psycopg2.connect(plaint.db_url)
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT 1 FROM cases WHERE case_id = %s FOR UPDATE", (received[1][0],))
        box = []
        th = threading.Thread(target=lambda: box.append(_try(
            lambda: desk.act(received[1][0], "acknowledge"))))
        th.start()
        plaint.wait_until(lambda: plaint.sql(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'plaint-desk'"
            " AND wait_event_type = 'Lock'"), 10, "the action did not wait for the lock")
        t0 = time.monotonic()
        rc = desk.daemon.stop(timeout=10)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"plaint-desk exited {rc} on SIGTERM; log:\n{desk.daemon.tail()}"
        assert elapsed < 10
        th.join(timeout(10))
        assert box and (isinstance(box[0], OSError) or box[0].status == 503), box
    finally:
        lock.rollback()
        lock.close()


def test_promise_due_at_with_any_rfc3339_offset(plaint):
    """due_at is any RFC 3339 time in the future (offsets go to +-23:59): it is kept as the same
    instant, or refused with an error naming due_at, never refused without a field."""
    bulk_insert(plaint, 1, 1)
    key = plaint.sql("UPDATE cases SET state = 'routed', department = 'logistics',"
                     " departments = '{logistics}' RETURNING case_id::text")[0][0]
    desk = start_stack(plaint, pipeline=False, intake=False)
    unnamed = []
    for due in ["2031-06-01T08:00:00+08:00", "2031-06-01T08:00:00.5-03:30",
                "2031-06-01t08:00:00z", "2031-06-01T08:00:00+15:59", "2031-06-01T08:00:00+16:00",
                "2031-06-01T08:00:00-23:59", "2031-06-01T08:00:00+23:00"]:
        r = desk.act(key, "promise", due_at=due)
        if r.status == 200:
            got = parse_time(desk.case(key)["promise_due"])
            assert got == parse_time(due), f"{due}: stored as {got}"
        elif r.status != 400 or error_paths(r) != ["due_at"]:
            unnamed.append(f"{due}: {r.status} {r.body[:160]!r}")
    assert not unnamed, ("due_at values the desk accepted but the database refused, answered "
                         "without naming the field: " + "; ".join(unnamed))


def test_a_promise_is_kept_when_the_customer_hears_back(plaint):
    bulk_insert(plaint, 1, 1)
    key = plaint.sql("UPDATE cases SET state = 'acknowledged', acknowledged_at = now(),"
                     " department = 'logistics', departments = '{logistics}'"
                     " RETURNING case_id::text")[0][0]
    desk = start_stack(plaint, pipeline=False, intake=False)

    def promise():
        return desk.case(key)["sla"]["promise"]

    due = in_hours(4)
    desk.must_act(key, "promise", "in_progress", due_at=due)
    p = promise()
    assert parse_time(p["due_at"]) == parse_time(due) and p["made_at"] is not None, p
    assert p["met_at"] is None and p["breached"] is False, p
    desk.must_act(key, "note", "in_progress", note="asked the warehouse")  # not the customer
    assert promise()["met_at"] is None
    desk.must_act(key, "note", "in_progress", note="rang the customer", customer_contact=True)
    assert promise()["met_at"] is not None
    noted = plaint.sql("SELECT data FROM events WHERE type = 'case.noted' ORDER BY pending_id")
    assert [d[0].get("customer_contact") for d in noted] == [None, True]
    # A new promise is a new deadline; a solution keeps it.
    desk.must_act(key, "promise", "in_progress", due_at=in_hours(8))
    assert promise()["met_at"] is None
    desk.must_act(key, "propose", "solution_proposed", solution="an apology",
                  solution_type="apology")
    assert promise()["met_at"] is not None and promise()["breached"] is False
    # A promise that passed before the customer heard back: overdue until kept, breached.
    desk.must_act(key, "feedback", "reopened", satisfied=False)
    desk.must_act(key, "promise", "in_progress", due_at=in_hours(1))
    plaint.sql("UPDATE cases SET promise_due = now() - interval '1 minute'")
    case = desk.case(key)
    assert case["overdue"] is True and case["sla"]["promise"]["breached"] is True, case["sla"]
    assert desk.list_all("overdue=true") == [key]
    desk.must_act(key, "note", "in_progress", note="called her back", customer_contact=True)
    case = desk.case(key)
    assert case["overdue"] is False and case["sla"]["promise"]["breached"] is True, case["sla"]
    assert desk.list_all("overdue=true") == []


def _try(fn):
    try:
        return fn()
    except OSError as e:
        return e


def test_bad_settings_are_refused(plaint):
    busy = f"127.0.0.1:{harness.free_port()}"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", int(busy.split(":")[1])))
        s.listen()
        for value, words in [("not-an-address", "PLAINT_HTTP_ADDR"),
                             ("127.0.0.1:99999", "PLAINT_HTTP_ADDR"),
                             (busy, "PLAINT_HTTP_ADDR")]:
            d = plaint.daemon("plaint-desk", PLAINT_HTTP_ADDR=value, PLAINT_METRICS_ADDR="")
            d.start()
            try:
                rc = d.proc.wait(timeout(15))
            except Exception:
                pytest.fail(f"plaint-desk with PLAINT_HTTP_ADDR={value} kept running")
            assert rc != 0, value
            assert words in d.log_text(), f"{value}: {d.log_text()}"
    d = plaint.daemon("plaint-desk", PLAINT_DESK_DB_CONNECTIONS="0", PLAINT_METRICS_ADDR="",
                      PLAINT_HTTP_ADDR=f"127.0.0.1:{harness.free_port()}")
    d.start()
    assert d.proc.wait(timeout(15)) == 78
    assert "PLAINT_DESK_DB_CONNECTIONS" in d.log_text()


def test_database_down_gives_503_and_unhealthy_then_recovers(private_pg, plaint_factory):
    plaint = plaint_factory(private_pg.admin_url, drop=False)
    bulk_insert(plaint, 1, 2)
    key = plaint.sql("SELECT case_id::text FROM cases LIMIT 1")[0][0]
    desk = start_stack(plaint, pipeline=False, intake=False)
    assert desk.get("/v1/cases").status == 200
    private_pg.stop()
    plaint.wait_until(lambda: desk.get("/healthz").status == 503, 10,
                      "GET /healthz did not answer 503 with the database down")
    for r in (desk.get("/v1/cases"), desk.get(f"/v1/cases/{key}"), desk.get("/v1/events"),
              desk.act(key, "note", note="still there?")):
        assert r.status == 503 and r.json["error"]["code"] == "unavailable", r
    private_pg.start()
    plaint.wait_until(lambda: desk.get("/healthz").status == 200, 20,
                      "GET /healthz did not recover after the database came back")
    assert desk.get(f"/v1/cases/{key}").status == 200
    assert desk.daemon.alive()


# ---------------------------------------------------------------------------- 8. logs


def test_no_contact_data_or_complaint_text_in_logs(plaint):
    desk = start_stack(plaint)
    data = complaint(plaint, external_id=f"LOG-{uuid.uuid4()}")
    data["location"] = f"Flat 4, 12 Quayside Row {secrets.token_hex(3)}"
    data["target"]["employee"] = f"driver Wilmot {secrets.token_hex(3)}"
    plaint.remember_private(data["location"], data["target"]["employee"])
    key = submit_routed(desk, data)
    desk.submit(data)  # a duplicate
    # Refused submissions whose bad values are private text.
    secret_channel = f"my number is {data['customer']['phone']}"
    bad_email = f"orla at home {secrets.token_hex(3)}"
    plaint.remember_private(secret_channel, bad_email)
    fresh = {k: v for k, v in data.items() if k != "external_id"}
    r = desk.submit(dict(fresh, channel=secret_channel))
    assert r.status == 400 and error_paths(r) == ["channel"], r
    r = desk.submit(dict(fresh, customer=dict(data["customer"], email=bad_email)))
    assert r.status == 400 and error_paths(r) == ["customer.email"], r
    desk.wait_state(key, "routed")
    # Staff texts that quote the customer.
    note = f"customer {data['customer']['name']} on {data['customer']['phone']} called again"
    desk.must_act(key, "acknowledge", "acknowledged", comment=note)
    desk.must_act(key, "note", "in_progress", note=note)
    desk.must_act(key, "propose", "solution_proposed", solution=f"refund to {bad_email}",
                  solution_type="refund")
    r = desk.act(key, "rate", score=3, comment=note)
    assert r.status == 409
    r = desk.act(key, "note", note=note + "x" * 4000)
    assert r.status == 413, r
    desk.wait_timeline(key, 6)
    for d in plaint.daemons:
        text = d.log_text()
        assert text, f"{d.binary} logged nothing"
        leaked = sorted(s for s in plaint.contact_data if s in text)
        assert not leaked, f"{d.binary} logged private data: {leaked[:5]}"
    assert '"msg":"case action"' in desk.daemon.log_text()
