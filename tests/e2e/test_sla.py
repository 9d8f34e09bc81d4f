"""End-to-end tests of plaint-sla-watchdog: real PostgreSQL, the real pipeline, real processes.

Contract: "The case-event stream" (sla.warning, sla.breached, case.escalated, alert.spike);
proto/PROTOCOL.md section 13; services/routing/README.md (sla.json). Every test runs on a copy of
deploy/config whose SLAs are seconds on 24x7 clocks (warn_at 0.5, a three-rung default ladder
with afters of 1, 2 and 3 s; the shipped P1 ladder kept), all scaled by
PLAINT_TEST_TIMEOUT_MULTIPLIER, and with PLAINT_SLA_TICK=50ms. What is checked:

1. test_stages_acks_promises_p1_desk_and_metrics, one stack, several cases at once:
   - a case left alone: for first_response and resolution, the warning at start + warn_at x
     (due - start), the breach at due, escalations level 1..3 at due + after, each exactly once,
     within TOL of its instant (never early), with the right clock, due_at, to (the assignee, the
     department's supervisor / head, management.owner from routing.json), level and role; every
     event valid per its schema, in seq order per clock, and published on the stream in seq
     order; cases.escalation_level updated; GET /v1/cases/{id} shows escalation_level and the
     clocks breached;
   - acknowledged before the warning: no first_response stage at all, resolution all stages;
   - a promise (desk "promise", due a few seconds ahead, with a +08:00 offset) followed only by a
     note without customer_contact: the promise clock warns, breaches and escalates from the
     moment the promise was made; kept promises (a propose, a note with "customer_contact": true)
     fire nothing;
   - a promise made again before its warning (a later due_at): only the new deadline's clock
     fires;
   - a P1 case (a safety text): warned and breached, then escalated twice at the breach instant
     (supervisor and department head, the shipped P1 ladder), and not to management (2h);
   - a case resolved before any stage: nothing fires, and its clocks leave the book;
   - the watchdog's /metrics: plaint_sla_fired_total by type equals the events written, and
     plaint_sla_clocks equals the clocks the database says run.
2. test_promise_due_at_with_microseconds_breaches: a promise whose due_at has six fractional
   digits (the desk accepts it) breaches like any other.
3. test_restart_fires_nothing_twice_and_misses_nothing: kill -9 between stages, restart; later a
   SIGTERM (exit 0) and a restart: every stage of every case exactly once; stages due while no
   watchdog ran fire as soon as the next one has loaded, by that one.
4. test_two_replicas_fire_each_stage_once_and_one_carries_on: two watchdogs at once, many cases
   due together: every stage exactly once (sla_fired rows = events); kill -9 one, the other fires
   everything after on time.
5. test_spike_alert_once_per_burst: 8 complaints about one product within the window: exactly
   one alert.spike (what, window, count, baseline, threshold), valid per schema, none for the
   spread-out customer types, none more while the burst lasts; after the window empties the
   spike ends, and a new burst raises a second alert.
6. test_help_version_and_bad_settings: --help lists PLAINT_SLA_TICK and PLAINT_SPIKE_*; a broken
   sla.json and bad settings exit 78 naming the problem.
Every complaint text here was written for this file (P1: the safety text of test_pipeline.py).
"""

import datetime
import json
import pathlib
import re
import secrets
import threading
import time

import pytest

import harness
from harness import http, timeout, validate_event

UTC = datetime.timezone.utc
M = harness.multiplier()


def secs(seconds):
    return seconds * M


# The SLA of these tests (seconds, scaled): 24x7 clocks everywhere.
FR = secs(6.0)         # P2 and P3 first response
RES = secs(12.0)       # P2 and P3 resolution (simple and complex)
P1_FR = secs(4.0)
P1_RES = secs(3600.0)  # never reached here
WARN_AT = 0.5
LADDER = [("supervisor", secs(1.0)), ("department_head", secs(2.0)), ("management", secs(3.0))]
PROMISE = secs(4.0)    # promises are made this far ahead
TOL = secs(1.0)        # how late a stage may be
EARLY = 0.005          # "at" is truncated to ms and start times are rounded to ms
TICK = "50ms"
STAGE_TYPES = ("sla.warning", "sla.breached", "case.escalated")
CLOCKS = ("first_response", "resolution", "promise")

LOGISTICS_BODY = ("The courier marked my parcel as delivered on Tuesday evening, but nothing was "
                  "left at my door or with the neighbours, and the tracking page has not moved.")
SAFETY_BODY = ("The new laptop charger I bought started smoking on my desk and the plastic "
               "melted around the plug.")


# ---------------------------------------------------------------------------- time and config


def dur(seconds):
    return f"{int(round(seconds * 1000))}ms"


UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_dur(text):
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(int(n) * UNIT_S[u] for n, u in parts)


def epoch(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def rfc3339_in(seconds, offset_hours=0, micro=False):
    tz = datetime.timezone(datetime.timedelta(hours=offset_hours))
    t = datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)
    t = t.astimezone(tz)
    frac = f"{t.microsecond:06d}" if micro else f"{t.microsecond // 1000:03d}"
    off = "Z" if offset_hours == 0 else t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:]
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + frac + off


def sleep_until(wall):
    left = wall - time.time()
    if left > 0:
        time.sleep(left)


def read_json(path):
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))


def write_json(path, doc):
    pathlib.Path(path).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


class Stage:
    def __init__(self, stage, type_, at, level, role):
        self.stage, self.type, self.at, self.level, self.role = stage, type_, at, level, role

    def __repr__(self):
        return f"<stage {self.stage} {self.type} at {self.at:.3f} level {self.level} {self.role}>"


class Config:
    """The config copy of a test: routing.json with every calendar open 24x7, sla.json in
    seconds. stages() and person() say what the watchdog must do with it."""

    def __init__(self, plaint):
        self.path = plaint.config_copy("config-sla")
        self.routing = read_json(self.path / "routing.json")
        for cal in self.routing["calendars"].values():
            cal["hours"] = "24x7"
            cal.pop("holidays", None)
            cal.pop("working_days", None)
        write_json(self.path / "routing.json", self.routing)
        sla = read_json(self.path / "sla.json")
        p1 = sla["priorities"]["P1"]["escalation"]
        assert [(r["to"], parse_dur(r["after"])) for r in p1[:2]] == [
            ("supervisor", 0), ("department_head", 0)], f"the shipped P1 ladder changed: {p1}"
        sla["warn_at"] = WARN_AT
        for prio, p in sla["priorities"].items():
            p.pop("warn_at", None)
            fr, res = (P1_FR, P1_RES) if prio == "P1" else (FR, RES)
            p["first_response"] = {"within": dur(fr), "clock": "24x7"}
            p["resolution"] = {"simple": {"within": dur(res), "clock": "24x7"},
                               "complex": {"within": dur(res), "clock": "24x7"}}
        sla["escalation"]["ladder"] = [{"to": to, "after": dur(after)} for to, after in LADDER]
        write_json(self.path / "sla.json", sla)
        self.sla = sla

    def ladder(self, prio):
        return self.sla["priorities"][prio].get("escalation") or self.sla["escalation"]["ladder"]

    def stages(self, prio, start, due):
        warn_at = self.sla["priorities"][prio].get("warn_at", self.sla["warn_at"])
        warn_to = self.sla["escalation"].get("warn_to", "assignee")
        out = [Stage(0, "sla.warning", start + warn_at * (due - start) if due > start else due,
                     0, warn_to),
               Stage(1, "sla.breached", due, 0, "assignee")]
        for n, rung in enumerate(self.ladder(prio), 1):
            out.append(Stage(1 + n, "case.escalated", due + parse_dur(rung["after"]), n,
                             rung["to"]))
        return out

    def person(self, role, department, assignee):
        if role == "assignee":
            return assignee
        if role == "management":
            return self.routing["management"]["owner"]
        d = self.routing["departments"][department]
        return d["supervisor"] if role == "supervisor" else d["head"]


# ---------------------------------------------------------------------------- the stack


def complaint(plaint, kind="logistics", **extra):
    """A complaint.submit data object with unique contact data, registered as private."""
    tag = secrets.token_hex(4)
    digits = "".join(str(secrets.randbelow(10)) for _ in range(8))
    body = SAFETY_BODY if kind == "safety" else LOGISTICS_BODY
    data = {
        "channel": "web",
        "customer": {"id": f"CU-{tag}", "name": f"Maeve Tallis {tag}",
                     "phone": f"+44 7700 9{digits[:5]}", "email": f"maeve.t.{tag}@example.org",
                     "type": "individual", "lang": "en"},
        "subject": f"Complaint {tag}",
        "body": f"{body} Reference {tag}.",
        "demand": f"Sort it out please {tag}",
        "demand_type": "replacement",
        "target": {"order_id": f"WEB-{tag}"},
    }
    data.update(extra)
    c = data["customer"]
    plaint.remember_private(c["name"], c["phone"], c["email"], data["body"], data["subject"],
                            data["demand"])
    return data


def submit(plaint, kind="logistics", **extra):
    reply = plaint.submit(complaint(plaint, kind, **extra), timeout=10)
    assert reply["type"] == "complaint.accepted", reply
    return reply["data"]["case_id"]


def submit_many(plaint, n, kind="logistics", **extra):
    ids, errors = [None] * n, []

    def one(i):
        try:
            ids[i] = submit(plaint, kind, **extra)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return ids


def wait_routed(plaint, case_ids, timeout_s=20):
    def done():
        n = plaint.sql("SELECT count(*) FROM cases WHERE case_id = ANY(%s::uuid[])"
                       " AND state NOT IN ('received', 'classified')", list(case_ids))[0][0]
        return n == len(case_ids)
    harness.wait_until(done, timeout_s, f"{len(case_ids)} cases were not all routed")


def start_pipeline(plaint, cfg, desk=True):
    """intake (it numbers and publishes every event), classifier, routing and desk, all on the
    config copy; returns (SUB socket on every event, desk daemon or None)."""
    env = {"PLAINT_CONFIG_DIR": cfg.path}
    plaint.start_intake(**env)
    sub = plaint.subscribe("")
    plaint.start_classifier(**env)
    plaint.start_routing(**env)
    return sub, (plaint.start_desk(**env) if desk else None)


def start_watchdog(plaint, cfg, wait=True, **extra):
    env = {"PLAINT_CONFIG_DIR": cfg.path, "PLAINT_SLA_TICK": TICK, "PLAINT_SPIKE_EVERY": "0s"}
    env.update(extra)
    return plaint.start_watchdog(wait=wait, **env)


def act(desk, case_id, action, **fields):
    r = http(desk.http_addr, "POST", f"/v1/cases/{case_id}/actions",
             {"action": action, "actor": "agent.e2e", **fields})
    assert r.status == 200, f"{action} on {case_id}: {r}"
    return r.json


def desk_case(desk, case_id):
    r = http(desk.http_addr, "GET", f"/v1/cases/{case_id}")
    assert r.status == 200, f"GET /v1/cases/{case_id}: {r}"
    return r.json


# ---------------------------------------------------------------------------- what fired


def case_facts(plaint, case_id):
    row = plaint.sql(
        "SELECT state, priority, department, assignee, case_no,"
        " extract(epoch FROM received_at)::float8, extract(epoch FROM first_response_due)::float8,"
        " extract(epoch FROM resolution_due)::float8, extract(epoch FROM promise_at)::float8,"
        " extract(epoch FROM promise_due)::float8, escalation_level,"
        " extract(epoch FROM acknowledged_at)::float8"
        " FROM cases WHERE case_id = %s", case_id)[0]
    keys = ("state", "priority", "department", "assignee", "case_no", "received", "fr_due",
            "res_due", "promise_at", "promise_due", "escalation_level", "acknowledged")
    return dict(zip(keys, row), case_id=case_id)


def stage_events(plaint):
    """Every numbered sla.warning, sla.breached and case.escalated, in seq order, in wire form."""
    rows = plaint.sql("SELECT plaint_event_envelope(e) FROM events e WHERE seq IS NOT NULL"
                      " AND type = ANY(%s) ORDER BY seq", list(STAGE_TYPES))
    return [json.loads(r[0]) for r in rows]


def count_stage_events(plaint):
    return plaint.sql("SELECT count(*) FROM events WHERE seq IS NOT NULL AND type = ANY(%s)",
                      list(STAGE_TYPES))[0][0]


def stage_of(event):
    t, d = event["type"], event["data"]
    return 0 if t == "sla.warning" else 1 if t == "sla.breached" else 1 + d["level"]


def wait_stage_events(plaint, want, timeout_s, quiet_s=1.5):
    """Waits until want stage events are numbered, then quiet_s (scaled) more, so that a stage
    fired twice or past the ladder would show; returns them all."""
    harness.wait_until(lambda: count_stage_events(plaint) >= want, timeout_s,
                       f"{want} stage events (have {count_stage_events(plaint)})")
    time.sleep(secs(quiet_s))
    return stage_events(plaint)


def clock_window(facts, clock):
    """(start, due) of one clock of a case, epoch seconds."""
    if clock == "promise":
        return facts["promise_at"], facts["promise_due"]
    return facts["received"], facts["fr_due" if clock == "first_response" else "res_due"]


def check_clock(cfg, facts, events, clock, latest=None):
    """Problems (strings) with one clock of one case whose stages must have fired up to now:
    each exactly once, not early, no later than latest(want) (default want + TOL), with its
    data; a stage whose time is still to come must not have fired."""
    problems = []
    cid = facts["case_id"]
    mine = [e for e in events if e["data"]["case_id"] == cid and e["data"].get("clock") == clock]
    start, due = clock_window(facts, clock)
    if due is None:
        return [f"{cid} {clock}: the case has no deadline"]
    want = cfg.stages(facts["priority"], start, due)
    by_stage = {}
    for e in mine:
        by_stage.setdefault(stage_of(e), []).append(e)
    extra = sorted(set(by_stage) - {s.stage for s in want})
    if extra:
        problems.append(f"{cid} {clock}: stages past the ladder fired: {extra}")
    now = time.time()
    for s in want:
        got = by_stage.get(s.stage, [])
        if s.at > now - EARLY:
            if got:
                problems.append(f"{cid} {clock} stage {s.stage} ({s.type}) is due in "
                                f"{s.at - now:.1f} s but fired at {got[0]['at']}")
            continue
        if len(got) != 1:
            problems.append(f"{cid} {clock} stage {s.stage} ({s.type}) fired {len(got)} times")
            continue
        e, d = got[0], got[0]["data"]
        label = f"{cid} {clock} stage {s.stage} ({s.type})"
        at = epoch(e["at"])
        limit = latest(s.at) if latest else s.at + TOL
        if at < s.at - EARLY:
            problems.append(f"{label}: fired {s.at - at:.3f} s early (at {e['at']})")
        if at > limit:
            problems.append(f"{label}: fired {at - s.at:.3f} s after its time (limit "
                            f"{limit - s.at:.3f} s), at {e['at']}")
        if e["type"] != s.type:
            problems.append(f"{label}: type {e['type']}")
        if abs(epoch(d["due_at"]) - due) > 0.0011:
            problems.append(f"{label}: due_at {d['due_at']}, the deadline is {due:.3f}")
        who = cfg.person(s.role, facts["department"], facts["assignee"])
        if d.get("to") != who:
            problems.append(f"{label}: to {d.get('to')!r}, want {who!r} ({s.role})")
        if s.level and (d.get("level"), d.get("role")) != (s.level, s.role):
            problems.append(f"{label}: level/role {d.get('level')}/{d.get('role')}, want "
                            f"{s.level}/{s.role}")
        for k in ("department", "assignee", "priority", "case_no"):
            if d.get(k) != facts[k]:
                problems.append(f"{label}: data.{k} {d.get(k)!r}, the case has {facts[k]!r}")
    seqs = [e["data"]["seq"] for e in sorted(mine, key=stage_of)]
    if seqs != sorted(seqs):
        problems.append(f"{cid} {clock}: stages not in seq order: {seqs}")
    return problems


def check_silent(events, case_id, clock):
    got = [f"{e['type']}/{stage_of(e)}" for e in events
           if e["data"]["case_id"] == case_id and e["data"].get("clock") == clock]
    return [f"{case_id} {clock}: must fire nothing, fired {got}"] if got else []


def check_events_valid(events):
    for e in events:
        validate_event(e)
        assert e["data"]["clock"] in CLOCKS, e


def check_stream(plaint, sub, timeout_s=10):
    """The SUB socket got every numbered event once, in seq order (stage events included)."""
    last = plaint.sql("SELECT coalesce(max(seq), 0) FROM events WHERE seq IS NOT NULL")[0][0]
    seqs, deadline = [], time.monotonic() + timeout(timeout_s)
    while not seqs or seqs[-1] < last:
        left = deadline - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000)):
            pytest.fail(f"the stream stopped at seq {seqs[-1] if seqs else None} of {last}",
                        pytrace=False)
        topic, body = sub.recv_multipart()
        e = json.loads(body)
        assert topic.decode() == e["type"], (topic, e["type"])
        seqs.append(e["data"]["seq"])
    assert seqs == sorted(set(seqs)), f"the stream is not in seq order or repeats: {seqs}"
    want = [r[0] for r in plaint.sql("SELECT seq FROM events WHERE seq >= %s AND seq <= %s"
                                     " ORDER BY seq", seqs[0], last)]
    assert seqs == want, "the stream skipped events"


def metric_value(text, name, **labels):
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{(.*)\})? ([0-9.e+-]+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def metrics(daemon):
    r = http(daemon.metrics_addr, "GET", "/metrics")
    assert r.status == 200, r
    return r.body.decode("utf-8")


def source_of(daemon):
    line = daemon.wait_log('"msg":"started"', 15)
    return json.loads(line)["instance"]


# ---------------------------------------------------------------------------- 1. the stages


def test_stages_acks_promises_p1_desk_and_metrics(plaint):
    cfg = Config(plaint)
    sub, desk = start_pipeline(plaint, cfg)
    wd = start_watchdog(plaint, cfg)

    names = ["alone", "acked", "promise_broken", "promise_proposed", "promise_called",
             "promise_renewed", "resolved", "p1"]
    ids = dict(zip(names[:-1], submit_many(plaint, len(names) - 1)))
    ids["p1"] = submit(plaint, "safety")
    wait_routed(plaint, ids.values())
    facts = {k: case_facts(plaint, v) for k, v in ids.items()}
    assert facts["p1"]["priority"] == "P1", f"the safety text was not P1: {facts['p1']}"
    for k, f in facts.items():
        want_fr = P1_FR if f["priority"] == "P1" else FR
        assert abs(f["fr_due"] - f["received"] - want_fr) < 0.002, (k, f)

    act(desk, ids["acked"], "acknowledge", comment="called the customer back")
    act(desk, ids["promise_broken"], "acknowledge")
    act(desk, ids["promise_broken"], "promise", due_at=rfc3339_in(PROMISE, offset_hours=8),
        promise="call back with the courier's answer")
    act(desk, ids["promise_broken"], "note", note="asked the courier", customer_contact=False)
    act(desk, ids["promise_proposed"], "acknowledge")
    act(desk, ids["promise_proposed"], "promise", due_at=rfc3339_in(PROMISE))
    act(desk, ids["promise_proposed"], "propose", solution="a new parcel by courier",
        solution_type="replacement")
    act(desk, ids["promise_called"], "acknowledge")
    act(desk, ids["promise_called"], "promise", due_at=rfc3339_in(PROMISE))
    act(desk, ids["promise_called"], "note", note="phoned: the courier is on it",
        customer_contact=True)
    act(desk, ids["promise_renewed"], "acknowledge")
    act(desk, ids["promise_renewed"], "promise", due_at=rfc3339_in(PROMISE))
    act(desk, ids["promise_renewed"], "promise", due_at=rfc3339_in(PROMISE * 1.5))
    act(desk, ids["resolved"], "acknowledge")
    act(desk, ids["resolved"], "propose", solution="refund", solution_type="refund")
    act(desk, ids["resolved"], "resolve", resolution="refunded")
    facts = {k: case_facts(plaint, v) for k, v in ids.items()}
    for k in ("acked", "promise_broken", "promise_proposed", "promise_called",
              "promise_renewed", "resolved"):
        f = facts[k]
        if f["acknowledged"] >= f["received"] + WARN_AT * FR:
            pytest.fail(f"too slow to test: {k} was acknowledged after its warning time",
                        pytrace=False)

    rungs = len(cfg.ladder("P2"))
    assert len(cfg.ladder("P3")) == rungs
    want = {"alone": 2 * (2 + rungs), "acked": 2 + rungs, "promise_broken": 2 * (2 + rungs),
            "promise_proposed": 2 + rungs, "promise_called": 2 + rungs,
            "promise_renewed": 2 * (2 + rungs), "resolved": 0,
            "p1": 2 + 2}  # P1: warning, breach, and the two rungs at 0s (management is at 2h)
    last_due = max(facts[k]["res_due"] for k in names if k != "p1") + LADDER[-1][1]
    events = wait_stage_events(plaint, sum(want.values()), last_due - time.time() + 10)
    check_events_valid(events)

    problems = []
    for k in ("alone", "p1"):
        problems += check_clock(cfg, facts[k], events, "first_response")
    for k in ("alone", "acked", "promise_broken", "promise_proposed", "promise_called",
              "promise_renewed"):
        problems += check_clock(cfg, facts[k], events, "resolution")
    # The renewed promise: only the second deadline's clock (check_clock counts every stage
    # whatever its due_at, so a stage of the first promise would show as a duplicate).
    for k in ("promise_broken", "promise_renewed"):
        problems += check_clock(cfg, facts[k], events, "promise")
    for k in ("acked", "promise_broken", "promise_proposed", "promise_called", "promise_renewed",
              "resolved"):
        problems += check_silent(events, ids[k], "first_response")
    for k in ("promise_proposed", "promise_called", "alone", "acked", "p1", "resolved"):
        problems += check_silent(events, ids[k], "promise")
    problems += check_silent(events, ids["resolved"], "resolution")
    problems += check_silent(events, ids["p1"], "resolution")
    by_case = {v: 0 for v in ids.values()}
    for e in events:
        by_case[e["data"]["case_id"]] = by_case.get(e["data"]["case_id"], 0) + 1
    for k, n in want.items():
        if by_case[ids[k]] != n:
            problems.append(f"{k}: {by_case[ids[k]]} stage events, want {n}")
    # P1: both escalations at the breach instant.
    p1_esc = [e for e in events if e["data"]["case_id"] == ids["p1"]
              and e["type"] == "case.escalated"]
    due = facts["p1"]["fr_due"]
    if [e["data"]["level"] for e in p1_esc] != [1, 2] or not all(
            due - EARLY <= epoch(e["at"]) <= due + TOL for e in p1_esc):
        problems.append(f"p1: want levels 1 and 2 at the breach {due:.3f}: "
                        f"{[(e['data']['level'], e['at']) for e in p1_esc]}")

    # The case as the desk shows it, and the row.
    want_level = {"alone": rungs, "acked": rungs, "promise_broken": rungs,
                  "promise_proposed": rungs, "promise_called": rungs, "promise_renewed": rungs,
                  "resolved": 0, "p1": 2}
    for k, level in want_level.items():
        c = desk_case(desk, ids[k])
        row = case_facts(plaint, ids[k])["escalation_level"]
        if (c["escalation_level"], row) != (level, level):
            problems.append(f"{k}: escalation_level desk {c['escalation_level']} row {row}, "
                            f"want {level}")
        sla = c["sla"]
        fr_breached = k in ("alone", "p1")
        if sla["first_response"]["breached"] is not fr_breached:
            problems.append(f"{k}: desk first_response.breached {sla['first_response']}")
        if k not in ("resolved", "p1") and sla["resolution"]["breached"] is not True:
            problems.append(f"{k}: desk resolution.breached {sla['resolution']}")
        if k.startswith("promise_"):
            broken = k in ("promise_broken", "promise_renewed")
            p = sla["promise"]
            if p is None or p["breached"] is not broken or (p["met_at"] is None) is not broken:
                problems.append(f"{k}: desk promise clock {p}")
    timeline = [e["type"] for e in desk_case(desk, ids["alone"])["timeline"]]
    if timeline.count("case.escalated") != 2 * rungs:
        problems.append(f"alone: timeline {timeline}")

    # Metrics: what this watchdog recorded, and the clocks it holds.
    def clocks_agree():
        running = plaint.sql(
            "SELECT coalesce(sum((fr_due_ms IS NOT NULL)::int + (res_due_ms IS NOT NULL)::int"
            " + (pr_due_ms IS NOT NULL)::int), 0) FROM plaint_sla_clocks(NULL, NULL, 100000)")
        got = metric_value(metrics(wd), "plaint_sla_clocks")
        return got is not None and got == running[0][0]
    harness.wait_until(clocks_agree, 5, "plaint_sla_clocks differs from the running clocks")
    text = metrics(wd)
    for t in STAGE_TYPES:
        n = sum(1 for e in events if e["type"] == t)
        got = metric_value(text, "plaint_sla_fired_total", type=t)
        if got != n:
            problems.append(f"plaint_sla_fired_total{{type={t}}} is {got}, {n} events")
    if metric_value(text, "plaint_sla_cases") is None:
        problems.append("no plaint_sla_cases in /metrics")
    assert not problems, "\n".join(problems)
    check_stream(plaint, sub)


def test_promise_due_at_with_microseconds_breaches(plaint):
    """The desk takes due_at with any number of fractional digits and stores them all; the
    watchdog must still hold the case to that promise."""
    cfg = Config(plaint)
    _, desk = start_pipeline(plaint, cfg)
    start_watchdog(plaint, cfg)
    case_id = submit(plaint)
    wait_routed(plaint, [case_id])
    act(desk, case_id, "acknowledge")
    due_at = rfc3339_in(PROMISE, micro=True)
    act(desk, case_id, "promise", due_at=due_at)
    f = case_facts(plaint, case_id)
    sleep_until(f["promise_due"] + LADDER[-1][1] + TOL + 0.5)
    problems = check_clock(cfg, f, stage_events(plaint), "promise")
    stored, watched = plaint.sql(
        "SELECT c.promise_due::text, s.pr_due_ms FROM cases c,"
        " plaint_sla_clocks(ARRAY[c.case_id], NULL, 1) s WHERE c.case_id = %s", case_id)[0]
    assert not problems, (f"a promise due {due_at} (stored {stored}; plaint_sla_clocks gives "
                          f"pr_due_ms {watched}):\n" + "\n".join(problems))


# ---------------------------------------------------------------------------- 2. restarts


def run_cases(plaint, n, gap_s):
    """n complaints, one every gap_s seconds; returns their ids."""
    ids = []
    for _ in range(n):
        ids.append(submit(plaint))
        time.sleep(gap_s)
    return ids


def check_all(cfg, plaint, ids, events, latest=None):
    problems = []
    for cid in ids:
        f = case_facts(plaint, cid)
        for clock in ("first_response", "resolution"):
            problems += check_clock(cfg, f, events, clock, latest)
    rows = plaint.sql("SELECT count(*) FROM sla_fired")[0][0]
    if rows != len(events):
        problems.append(f"{rows} rows in sla_fired, {len(events)} stage events")
    return problems


def test_restart_fires_nothing_twice_and_misses_nothing(plaint):
    cfg = Config(plaint)
    start_pipeline(plaint, cfg, desk=False)
    w1 = start_watchdog(plaint, cfg)
    ids = run_cases(plaint, 8, secs(0.25))
    wait_routed(plaint, ids)
    first = case_facts(plaint, ids[0])
    t0 = first["received"]
    # Down from just after the first warnings until after the first breaches and escalations.
    harness.wait_until(lambda: count_stage_events(plaint) >= 1, FR, "no first warning")
    sleep_until(t0 + WARN_AT * FR + secs(0.8))
    t_kill = time.time()
    w1.kill9()
    sleep_until(t0 + FR + LADDER[1][1] + secs(0.3))
    t_start2 = time.time()
    w2 = start_watchdog(plaint, cfg)
    t_loaded2 = time.time()
    src2 = source_of(w2)
    # Then a clean stop between stages, and another.
    sleep_until(t0 + RES - secs(0.3))
    t_term = time.time()
    assert w2.stop() == 0, w2.tail()
    w3 = start_watchdog(plaint, cfg)
    t_loaded3 = time.time()

    windows = [(t_kill, t_loaded2), (t_term, t_loaded3)]

    def latest(want):
        # A stage due just before a kill may have been in flight (or not yet taken) then.
        for lo, hi in windows:
            if lo - secs(0.5) <= want <= hi:
                return hi + TOL
        return want + TOL

    last_due = max(case_facts(plaint, c)["res_due"] for c in ids) + LADDER[-1][1]
    events = wait_stage_events(plaint, len(ids) * 2 * (2 + len(LADDER)),
                               last_due - time.time() + 10)
    check_events_valid(events)
    problems = check_all(cfg, plaint, ids, events, latest)
    # What came due while no watchdog ran was fired by the restarted one, once it had loaded.
    facts = {c: case_facts(plaint, c) for c in ids}
    missed = [e for e in events if t_kill + 0.1 < due_of(cfg, facts, e) < t_start2]
    if not missed:
        problems.append("nothing came due while the watchdog was down: the test did not test")
    for e in missed:
        if e["source"] != src2:
            problems.append(f"{e['type']} {e['data']['clock']} of {e['data']['case_id']} came "
                            f"due while down, fired by {e['source']}, not the restarted {src2}")
    assert not problems, "\n".join(problems)
    assert w3.alive()


def due_of(cfg, facts, event):
    """When the stage of event was due (epoch seconds); facts by case id."""
    f = facts[event["data"]["case_id"]]
    start, due = clock_window(f, event["data"]["clock"])
    return next(s.at for s in cfg.stages(f["priority"], start, due) if s.stage == stage_of(event))


def test_two_replicas_fire_each_stage_once_and_one_carries_on(plaint):
    cfg = Config(plaint)
    start_pipeline(plaint, cfg, desk=False)
    w1 = start_watchdog(plaint, cfg, wait=False)
    w2 = start_watchdog(plaint, cfg, wait=False)
    for w in (w1, w2):
        w.wait_log('"msg":"clocks loaded"', 15)
    src1, src2 = source_of(w1), source_of(w2)
    ids = submit_many(plaint, 24)
    wait_routed(plaint, ids)
    t0 = min(case_facts(plaint, c)["received"] for c in ids)
    sleep_until(t0 + FR + LADDER[0][1] + secs(0.5))
    t_kill = time.time()
    w1.kill9()
    last_due = max(case_facts(plaint, c)["res_due"] for c in ids) + LADDER[-1][1]
    events = wait_stage_events(plaint, len(ids) * 2 * (2 + len(LADDER)),
                               last_due - time.time() + 10)
    check_events_valid(events)
    problems = check_all(cfg, plaint, ids, events)
    after = [e for e in events if epoch(e["at"]) > t_kill + 0.2]
    if not after:
        problems.append("nothing fired after the kill")
    wrong = {e["source"] for e in after} - {src2}
    if wrong:
        problems.append(f"after {src1} was killed, events came from {wrong}")
    bad_sources = {e["source"] for e in events} - {src1, src2}
    if bad_sources:
        problems.append(f"events from unknown sources {bad_sources}")
    by_source = {s: sum(1 for e in events if e["source"] == s) for s in (src1, src2)}
    print(f"stages fired by each replica: {by_source}")
    assert not problems, "\n".join(problems)
    assert w2.alive()


# ---------------------------------------------------------------------------- 3. spikes


def spike_events(plaint):
    rows = plaint.sql("SELECT plaint_event_envelope(e) FROM events e WHERE seq IS NOT NULL"
                      " AND type = 'alert.spike' ORDER BY seq")
    return [json.loads(r[0]) for r in rows]


def test_spike_alert_once_per_burst(plaint):
    window = 10
    plaint.start_intake()
    wd = plaint.start_watchdog(PLAINT_SPIKE_WINDOW=f"{window}s", PLAINT_SPIKE_BASELINE="1h",
                               PLAINT_SPIKE_MIN="5", PLAINT_SPIKE_EVERY="1s",
                               PLAINT_SLA_TICK=TICK)
    product = f"SPK-{secrets.token_hex(3)} kettle"
    types = ["individual", "enterprise", "vip"]

    def burst(n):
        out, errors = [], []

        def one(i):
            try:
                data = complaint(plaint, target={"product": product, "order_id": f"O-{i}"})
                data["customer"]["type"] = types[i % 3]
                reply = plaint.submit(data, timeout=10)
                assert reply["type"] == "complaint.accepted", reply
                out.append(reply["data"]["case_id"])
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        return out

    burst(8)
    harness.wait_until(lambda: spike_events(plaint), 8, "no alert.spike for 8 complaints")
    time.sleep(secs(3))  # three more rounds while the burst lasts
    burst(2)
    time.sleep(secs(2.5))
    spikes = spike_events(plaint)
    assert len(spikes) == 1, [e["data"] for e in spikes]
    e = spikes[0]
    validate_event(e)
    d = e["data"]
    assert d["what"] == {"product": product}, d
    assert d["case_id"] is None and d["case_no"] is None, d
    assert d["window"] == f"{window}s", d
    assert float(d["baseline"]) == 0, d
    assert float(d["threshold"]) == 3, d  # PLAINT_SPIKE_FACTOR 3 x max(baseline, 1)
    in_window = plaint.sql(
        "SELECT count(*) FROM cases WHERE target->>'product' = %s AND received_at <= %s"
        " AND received_at >= %s::timestamptz - %s::interval", product, d["window_end"],
        d["window_end"], f"{window} seconds")[0][0]
    assert 5 <= d["count"] == in_window, (d, in_window)
    assert metric_value(metrics(wd), "plaint_sla_spikes_total") == 1

    # The window empties: the spike ends; a new burst is a new spike.
    last = plaint.sql("SELECT extract(epoch FROM max(received_at))::float8 FROM cases")[0][0]
    sleep_until(last + window + 0.5)
    harness.wait_until(lambda: plaint.sql("SELECT count(*) FROM spikes WHERE ended_at IS NULL")
                       [0][0] == 0, 5, "the spike did not end after its window emptied")
    burst(8)
    harness.wait_until(lambda: len(spike_events(plaint)) >= 2, 8, "no alert for a new burst")
    time.sleep(secs(1.5))
    spikes = spike_events(plaint)
    assert len(spikes) == 2, [e["data"] for e in spikes]
    validate_event(spikes[1])
    d2 = spikes[1]["data"]
    assert d2["what"] == {"product": product} and d2["count"] >= 5, d2
    assert float(d2["baseline"]) > 0, d2  # the first burst is in the baseline now


# ---------------------------------------------------------------------------- 4. settings


def test_help_version_and_bad_settings(plaint, tmp_path):
    import subprocess

    exe = harness.binary_path("plaint-sla-watchdog")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=timeout(10),
                         env=plaint.env())
    assert res.returncode == 0, res
    for name in ("PLAINT_SLA_TICK", "PLAINT_SLA_BATCH", "PLAINT_SPIKE_EVERY",
                 "PLAINT_SPIKE_WINDOW", "PLAINT_SPIKE_BASELINE", "PLAINT_SPIKE_FACTOR",
                 "PLAINT_SPIKE_MIN", "PLAINT_DATABASE_URL", "PLAINT_CONFIG_DIR"):
        assert name in res.stdout, f"--help does not list {name}:\n{res.stdout}"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout(10),
                         env=plaint.env())
    assert res.returncode == 0 and res.stdout.startswith("plaint-sla-watchdog "), res

    broken = plaint.config_copy("config-broken")
    sla = read_json(broken / "sla.json")
    sla["warn_at"] = 1.5
    sla["escalation"]["ladder"] = [{"to": "management", "after": "1h"},
                                   {"to": "supervisor", "after": "0s"}]
    write_json(broken / "sla.json", sla)
    bad = [
        ({"PLAINT_CONFIG_DIR": str(broken)}, ["sla.json", "warn_at", "escalation.ladder"]),
        ({"PLAINT_SLA_TICK": "soon"}, ["PLAINT_SLA_TICK"]),
        ({"PLAINT_SLA_TICK": "1ms"}, ["PLAINT_SLA_TICK"]),
        ({"PLAINT_SPIKE_WINDOW": "0s", "PLAINT_SPIKE_MIN": "-3"},
         ["PLAINT_SPIKE_WINDOW", "PLAINT_SPIKE_MIN"]),
    ]
    for env, named in bad:
        d = plaint.daemon("plaint-sla-watchdog", **env)
        d.start()
        rc = d.wait_exit(15)
        text = d.log_text()
        assert rc == 78, f"{env}: exit {rc}, want 78:\n{text}"
        for n in named:
            assert n in text, f"{env}: the message does not name {n}:\n{text}"
