"""End-to-end tests of the pipeline: plaint-intake -> plaint-classifier -> plaint-routing.

Real processes, real ZeroMQ, a fresh PostgreSQL database per test. What is checked:
- complaints in Chinese and English of several categories reach state `routed` with the events
  case.received -> case.classified -> case.routed in seq order, each valid against its schema
  (live on the event stream and in the event log); the department, the departments involved
  and the rule are what deploy/config/routing.json says for the case (worked out here by an
  independent reading of services/routing/README.md), the assignee is a person of that
  department, and the due times are what sla.json gives on the department's calendar;
- due times on business calendars: cases moved to chosen received_at instants (weekends,
  holidays, make-up days, the README's examples) before routing, with business-hour and
  working-day targets, against a calendar model built here from routing.json;
- with every calendar open and second-scale SLAs (a config copy), the assignee is an agent on
  duty who speaks the customer's language, and due times are received_at + sla.json's target;
  the least-loaded agent under capacity, then the queue owner, also for a backlog routed at
  once (PROTOCOL.md 5.5: "never above an agent's capacity");
- the involve rules (store target, named target department, safety) and the fallback;
- P1: safety, health, legal, regulator and media texts in both languages, with their signal;
  a VIP customer raises the priority by classifier.json's step;
- repeats by customer id, by phone written differently and by e-mail, the multi-channel signal
  when the earlier case came through another channel, the windows of classifier.json, and
  complaints of one customer submitted together forming one chain;
- two replicas of each stage, 200 complaints, one replica of each frozen then killed with
  SIGKILL mid-stream: every case routed, with exactly one case.classified and one case.routed;
- bad classifier.json, routing.json, sla.json or model file: exit 78 naming the file and the
  field; SIGHUP with a broken file keeps the old config, SIGHUP with a valid one applies it;
- low confidence (min_confidence 0.99 in a config copy) goes to the triage rule's owner;
- no contact data or complaint text in any daemon log (every test registers what it sends
  with remember_private; the harness checks at teardown; one test also checks explicitly);
- --help and --version of both daemons.

Stage timings are shortened (FAST) so that sweeps take over within a second or two; every wait
scales with PLAINT_TEST_TIMEOUT_MULTIPLIER through harness.timeout(). The complaint texts are
this file's own.
"""

import concurrent.futures
import datetime
import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import time
import urllib.request
import uuid
import zoneinfo

import pytest

import harness
from harness import timeout

UTC = datetime.timezone.utc
MS = datetime.timedelta(milliseconds=1)
CLASSIFIER, ROUTING = "plaint-classifier", "plaint-routing"
EX_CONFIG = 78

# Short hand-off timings for every stage process of these tests (see common/pl_stage.h).
FAST = {
    "PLAINT_STAGE_SWEEP": "200ms",
    "PLAINT_STAGE_PATIENCE": "1s",
    "PLAINT_STAGE_LEASE": "2s",
    "PLAINT_STAGE_BACKOFF": "100ms",
}

PIPELINE_EVENTS = ["case.received", "case.classified", "case.routed"]
CASE_COLUMNS = (
    "case_id", "case_no", "state", "channel", "customer_type", "lang", "target", "category",
    "priority", "confidence", "sentiment", "repeat_of", "signals", "department", "departments",
    "assignee", "received_at", "first_response_due", "resolution_due", "stage_token",
    "stage_attempts", "parked_at")


# ---------------------------------------------------------------------------- config files


def read_config(config_dir, name):
    return json.loads((pathlib.Path(config_dir) / name).read_text(encoding="utf-8"))


def write_config(config_dir, name, doc):
    (pathlib.Path(config_dir) / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1),
                                                 encoding="utf-8")


def always_open_config(plaint, sla_targets=None, min_confidence=None):
    """A copy of deploy/config where every calendar is open 24x7 (no holidays), so that every
    agent is on duty and due times are plain sums; sla_targets {"P1": "30s", ...} replaces the
    priorities' first-response targets; min_confidence replaces classifier.json's."""
    path = plaint.config_copy("config-open")
    routing = read_config(path, "routing.json")
    for cal in routing["calendars"].values():
        cal["hours"] = "24x7"
        cal.pop("holidays", None)
        cal.pop("working_days", None)
    write_config(path, "routing.json", routing)
    if sla_targets:
        sla = read_config(path, "sla.json")
        for prio, target in sla_targets.items():
            sla["priorities"][prio]["first_response"] = target
        write_config(path, "sla.json", sla)
    if min_confidence is not None:
        clf = read_config(path, "classifier.json")
        clf["min_confidence"] = min_confidence
        write_config(path, "classifier.json", clf)
    return path


class Rules:
    """routing.json, sla.json and classifier.json of one config folder."""

    def __init__(self, config_dir=harness.CONFIG_DIR):
        self.dir = pathlib.Path(config_dir)
        self.routing = read_config(config_dir, "routing.json")
        self.sla = read_config(config_dir, "sla.json")
        self.classifier = read_config(config_dir, "classifier.json")
        self.calendars = {name: Calendar(c) for name, c in self.routing["calendars"].items()}

    def owner(self, category):
        owners = [d for d, dept in self.routing["departments"].items()
                  if category in dept.get("categories", [])]
        return owners[0] if owners else None

    def department_calendar(self, department):
        return self.calendars[self.routing["departments"][department]["calendar"]]


# ---------------------------------------------------------------------------- durations, calendars

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": MS, "s": datetime.timedelta(seconds=1), "m": datetime.timedelta(minutes=1),
          "h": datetime.timedelta(hours=1), "d": datetime.timedelta(days=1)}


def duration(text):
    """A config duration ("90s", "24h", "1h30m", "250ms") as a timedelta."""
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum((int(n) * _UNITS[u] for n, u in parts), datetime.timedelta())


_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _hhmm(text):
    h, m = map(int, text.split(":"))
    return datetime.timedelta(hours=h, minutes=m)


class Calendar:
    """One calendar of routing.json, read as services/routing/README.md describes it: weekly
    local hours (or "24x7"), holidays closing whole dates, extra working days (Monday's hours
    unless given). Good enough for the shipped calendars (a zone without a gap or an overlap on
    the dates used)."""

    def __init__(self, spec):
        self.zone = zoneinfo.ZoneInfo(spec["zone"])
        self.weekly = {d: [] for d in range(7)}
        hours = spec["hours"]
        if hours == "24x7":
            self.weekly = {d: [("00:00", "24:00")] for d in range(7)}
        else:
            for key, intervals in hours.items():
                first, _, last = key.partition("-")
                a, b = _DAYS.index(first), _DAYS.index(last or first)
                for i in range((b - a) % 7 + 1):
                    self.weekly[(a + i) % 7] = [tuple(iv.split("-")) for iv in intervals]
        self.holidays = set()
        for h in spec.get("holidays", []):
            if isinstance(h, str):
                h = {"date": h}
            lo = datetime.date.fromisoformat(h.get("date") or h["from"])
            hi = datetime.date.fromisoformat(h.get("date") or h["to"])
            while lo <= hi:
                self.holidays.add(lo)
                lo += datetime.timedelta(days=1)
        self.extra = {}
        for w in spec.get("working_days", []):
            if isinstance(w, str):
                w = {"date": w}
            hours = w.get("hours")
            self.extra[datetime.date.fromisoformat(w["date"])] = (
                [tuple(iv.split("-")) for iv in hours] if hours else self.weekly[0])

    def intervals(self, date):
        """The date's opening hours as [(start, end)] instants (UTC)."""
        if date in self.holidays:
            return []
        spans = self.extra.get(date, self.weekly[date.weekday()])
        midnight = datetime.datetime.combine(date, datetime.time(), tzinfo=self.zone)
        out = []
        for a, b in spans:
            start = (midnight + _hhmm(a)).astimezone(UTC)
            end = (midnight + _hhmm(b)).astimezone(UTC)
            out.append((start, end))
        return out

    def local_date(self, instant):
        return instant.astimezone(self.zone).date()

    def next_opening(self, instant):
        """instant itself if the calendar is open then, else the next opening."""
        date = self.local_date(instant) - datetime.timedelta(days=1)
        for _ in range(1100):
            for start, end in self.intervals(date):
                if end > instant:
                    return max(start, instant)
            date += datetime.timedelta(days=1)
        raise AssertionError("the calendar never opens")

    def due(self, target, start):
        """The due time of an sla.json target counted from start on this calendar."""
        if "working_days" in target:
            s = self.next_opening(start)
            local = s.astimezone(self.zone)
            date, time_of_day = local.date(), local - datetime.datetime.combine(
                local.date(), datetime.time(), tzinfo=self.zone)
            left = target["working_days"]
            while left:
                date += datetime.timedelta(days=1)
                if self.intervals(date):
                    left -= 1
            at = datetime.datetime.combine(date, datetime.time(), tzinfo=self.zone) + time_of_day
            return self.next_opening(at.astimezone(UTC))
        within = duration(target["within"])
        if target.get("clock", "24x7") == "24x7":
            return start + within
        at, left = self.next_opening(start), within  # "business": open time only
        date = self.local_date(at) - datetime.timedelta(days=1)
        while True:
            for a, b in self.intervals(date):
                a = max(a, at)
                if b <= a:
                    continue
                if b - a >= left:
                    return a + left
                left -= b - a
            date += datetime.timedelta(days=1)


# ---------------------------------------------------------------------------- routing.json's answer


def signal_matches(wanted, signals):
    """README: "legal_threat" matches legal_threat and legal_threat:<detail>."""
    return any(s == w or s.startswith(w + ":") for w in wanted for s in signals or [])


def _primary(lang):
    return re.split(r"[-_]", lang or "")[0].lower()


def rule_matches(when, case):
    for key in ("category", "channel", "priority"):
        if key in when and case[key] not in when[key]:
            return False
    if "customer_type" in when and (case["customer_type"] or "individual") not in when[
            "customer_type"]:
        return False
    if "lang" in when and _primary(case["lang"]) not in [_primary(x) for x in when["lang"]]:
        return False
    if "signals" in when and not signal_matches(when["signals"], case["signals"]):
        return False
    if "triage" in when and when["triage"] != ("low_confidence" in (case["signals"] or [])):
        return False
    for field, want in when.get("target", {}).items():
        have = (case["target"] or {}).get(field)
        if (want is True and have is None) or (want is False and have is not None) or (
                isinstance(want, list) and have not in want):
            return False
    return True


def resolve(rules, ref, case):
    if ref == "$category":
        return rules.owner(case["category"])
    if ref == "$target":
        d = (case["target"] or {}).get("department")
        return d if d in rules.routing["departments"] else None
    return ref


def expected_route(rules, case):
    """{department, departments, rule, assignee (a named owner or None), complex} for a
    classified case, by services/routing/README.md's reading of routing.json and sla.json."""
    departments = []

    def involve(d):
        if d and d not in departments and len(departments) < 8:
            departments.append(d)

    decider = None
    for r in rules.routing["rules"]:
        if "department" in r and rule_matches(r.get("when", {}), case):
            resp = resolve(rules, r["department"], case)
            if resp:
                decider = r
                break
    if decider:
        involve(resp)
        rule, assignee = decider["name"], decider.get("assignee")
        for ref in decider.get("also", []):
            involve(resolve(rules, ref, case))
    else:
        fallback = rules.routing["fallback"]
        involve(fallback["department"])
        rule, assignee = "fallback", fallback["assignee"]
    for r in rules.routing["rules"]:
        if "department" not in r and rule_matches(r.get("when", {}), case):
            for ref in r.get("also", []):
                involve(resolve(rules, ref, case))
    cw = rules.sla.get("complex_when", {})
    complex_ = (case["priority"] in cw.get("priorities", [])
                or case["category"] in cw.get("categories", [])
                or (case["customer_type"] or "individual") in cw.get("customer_types", [])
                or signal_matches(cw.get("signals", []), case["signals"])
                or (cw.get("cross_department", False) and len(departments) > 1))
    return {"department": departments[0], "departments": departments, "rule": rule,
            "assignee": assignee, "complex": bool(complex_)}


def expected_dues(rules, case, department, complex_):
    prios = rules.sla["priorities"]
    prio = prios.get(case["priority"]) or prios[rules.sla.get("default_priority", "P2")]
    cal = rules.department_calendar(department)
    resolution = prio["resolution"]["complex" if complex_ else "simple"]
    return (cal.due(prio["first_response"], case["received_at"]),
            cal.due(resolution, case["received_at"]))


def raised(priority, steps):
    """priority raised by steps levels (P3 -> P2 -> P1), never above P1."""
    return f"P{max(1, int(priority[1]) - steps)}"


# ---------------------------------------------------------------------------- the pipeline


def start_pipeline(plaint, config_dir=None, classifiers=1, routers=1, **extra):
    """Intake, then the stage replicas (FAST timings, config_dir as PLAINT_CONFIG_DIR), each
    once its stage's database connection is up; returns (intake, classifiers, routers)."""
    env = dict(FAST, **extra)
    if config_dir:
        env["PLAINT_CONFIG_DIR"] = str(config_dir)
    intake = plaint.start_intake()
    clfs = [plaint.start_classifier(**env) for _ in range(classifiers)]
    routs = [plaint.start_routing(**env) for _ in range(routers)]
    # Their PULL sockets connect to the hub in the background; work handed out before that
    # is dropped and swept after PLAINT_STAGE_PATIENCE, which is correct but slower.
    time.sleep(0.2 * harness.multiplier())
    return intake, clfs, routs


def register(plaint, data):
    """Everything of a complaint that must never reach a log."""
    c = data.get("customer", {})
    plaint.remember_private(data.get("body"), data.get("subject"), data.get("demand"),
                            c.get("name"), c.get("phone"), c.get("email"),
                            (data.get("target") or {}).get("employee"), data.get("location"))


def submit(plaint, body, customer=None, channel="web", **fields):
    """Submits one complaint (registered as private) and returns its case_id."""
    if customer is None:
        customer = {"id": f"CUST-{secrets.token_hex(5)}"}
    data = {"channel": channel, "customer": customer, "body": body, **fields}
    register(plaint, data)
    reply = plaint.submit(data, external_id=f"pipeline-{uuid.uuid4()}")
    assert reply["type"] == "complaint.accepted", reply
    return reply["data"]["case_id"]


def case_row(plaint, case_id):
    row = plaint.sql(f"SELECT {', '.join(CASE_COLUMNS)} FROM cases WHERE case_id = %s",
                     case_id)
    assert row, f"no case {case_id}"
    case = dict(zip(CASE_COLUMNS, row[0]))
    case["case_id"] = str(case["case_id"])
    case["repeat_of"] = str(case["repeat_of"]) if case["repeat_of"] else None
    return case


def summary(plaint):
    rows = plaint.sql("SELECT state, parked_at IS NOT NULL, stage_token IS NOT NULL,"
                      " stage_attempts, count(*) FROM cases"
                      " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")
    return "cases (state, parked, held, attempts, count): " + repr(rows)


def wait_for(plaint, predicate, timeout_s, message, daemons=()):
    deadline = time.monotonic() + timeout(timeout_s)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            tails = "\n".join(f"--- {d.binary} pid {d.pid} ({'alive' if d.alive() else 'dead'})"
                              f":\n{d.tail(15)}" for d in daemons)
            pytest.fail(f"timed out after {timeout(timeout_s):.1f} s: {message}\n"
                        f"{summary(plaint)}\n{tails}", pytrace=False)
        time.sleep(0.05)


def wait_routed(plaint, ids, timeout_s=15, daemons=()):
    """Waits until every case is routed and every event is numbered; returns the rows."""
    ids = list(ids)

    def done():
        n = plaint.sql("SELECT count(*) FROM cases WHERE case_id = ANY(%s::uuid[])"
                       " AND state = 'routed'", ids)[0][0]
        unnumbered = plaint.sql("SELECT count(*) FROM events WHERE seq IS NULL")[0][0]
        return n == len(ids) and unnumbered == 0
    wait_for(plaint, done, timeout_s, f"not all {len(ids)} cases routed and numbered", daemons)
    return [case_row(plaint, i) for i in ids]


def case_events(plaint, case_id):
    """The case's events from the log, as wire envelopes, in seq order."""
    rows = plaint.sql("SELECT plaint_event_envelope(e) FROM events e WHERE case_id = %s"
                      " ORDER BY seq", case_id)
    return [json.loads(r[0]) for r in rows]


def check_events(plaint, case):
    """The case's events are exactly received, classified, routed, in seq order, each valid,
    carrying what the cases row holds. Returns {type: event}."""
    events = case_events(plaint, case["case_id"])
    assert [e["type"] for e in events] == PIPELINE_EVENTS, events
    seqs = [e["data"]["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
    for e in events:
        harness.validate_event(e)
        assert e["data"]["case_id"] == case["case_id"]
        assert e["data"]["case_no"] == case["case_no"]
    by_type = {e["type"]: e for e in events}
    clf, routed = by_type["case.classified"]["data"], by_type["case.routed"]["data"]
    assert by_type["case.classified"]["source"] == "classifier"
    assert by_type["case.routed"]["source"] == "routing"
    assert clf["state"] == "classified" and routed["state"] == "routed"
    for k in ("category", "priority", "sentiment", "repeat_of", "signals"):
        assert clf[k] == case[k], (k, clf[k], case[k])
    assert abs(clf["confidence"] - case["confidence"]) < 1e-3
    assert clf["triage"] == ("low_confidence" in case["signals"])
    for k in ("department", "departments", "assignee"):
        assert routed[k] == case[k], (k, routed[k], case[k])
    for k in ("first_response_due", "resolution_due"):
        assert parse_time(routed[k]) == case[k], (k, routed[k], case[k])
    return by_type


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def close_to(got, want):
    return abs(got - want) <= MS


def check_routed(plaint, case, rules, strict_assignee=False):
    """The routed case against routing.json and sla.json (rules). strict_assignee: every
    calendar is open, so the assignee must be an agent (not the queue owner) who speaks the
    customer's language when one of the department's agents does."""
    assert case["state"] == "routed"
    assert case["parked_at"] is None and case["stage_token"] is None
    assert case["stage_attempts"] == 0
    want = expected_route(rules, case)
    events = check_events(plaint, case)
    routed = events["case.routed"]["data"]
    assert (case["department"], case["departments"], routed["rule"], routed["complex"]) == (
        want["department"], want["departments"], want["rule"], want["complex"]), (case, want)
    dept = rules.routing["departments"][case["department"]]
    agents = {a["id"]: a for a in dept["agents"]}
    assert case["assignee"], case
    if want["assignee"]:
        assert case["assignee"] == want["assignee"]
    elif strict_assignee:
        assert case["assignee"] in agents, (case["assignee"], list(agents))
        speakers = [a for a, v in agents.items()
                    if _primary(case["lang"]) in [_primary(x) for x in v["languages"]]]
        if speakers:
            assert case["assignee"] in speakers, (case["lang"], case["assignee"], speakers)
    else:  # an agent, or the queue owner when none is on duty
        assert case["assignee"] in set(agents) | {dept["queue_owner"]}, case["assignee"]
    first, resolution = expected_dues(rules, case, case["department"], want["complex"])
    assert close_to(case["first_response_due"], first), (
        case["priority"], case["received_at"], case["first_response_due"], first)
    assert close_to(case["resolution_due"], resolution), (
        case["priority"], want["complex"], case["received_at"], case["resolution_due"],
        resolution)
    return events


def live_events(plaint, sub, ids):
    """The pipeline's events of the cases ids from the live stream: 3 per case, each valid, in
    seq order; returns them."""
    want = 3 * len(ids)
    got = []
    deadline = time.monotonic() + timeout(15)
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000)):
            pytest.fail(f"received {len(got)} of {want} live events", pytrace=False)
        topic, payload = sub.recv_multipart()
        event = json.loads(payload)
        assert topic.decode() == event["type"]
        if event["data"].get("case_id") in ids:
            got.append(event)
    seqs = [e["data"]["seq"] for e in got]
    assert seqs == sorted(seqs), "live events out of seq order"
    for e in got:
        harness.validate_event(e)
    return got


# ---------------------------------------------------------------------------- texts

# (lang, category, body): each written for these tests.
CATEGORY_TEXTS = [
    ("zh", "logistics_delivery",
     "我上周五在网店买的电饭煲，物流显示已签收，可我根本没收到包裹，快递员也联系不上，已经五天了。"),
    ("en", "logistics_delivery",
     "The parcel with my order of running shoes was supposed to arrive on Monday. The tracking "
     "has not moved for eight days and the courier says it is lost."),
    ("zh", "service_attitude",
     "营业厅的那个柜员态度非常差，我问了两遍怎么办理业务，她就翻白眼，说听不懂就别来了。"),
    ("en", "service_attitude",
     "The clerk at the service desk was rude to me, rolled his eyes and told me to stop wasting "
     "his time when I asked about my account."),
    ("zh", "billing_price",
     "这个月的账单扣了我两次会员费，同一笔费用重复扣款，请把多扣的钱退给我。"),
    ("en", "billing_price",
     "My credit card was billed twice for the same hotel booking, please reverse the second "
     "charge."),
    ("zh", "product_quality", "刚买的电动牙刷充不进电，用了三天就彻底坏了，做工很差。"),
    ("en", "product_quality",
     "The washing machine I bought last month makes a loud banging noise and the door seal is "
     "already torn."),
    ("zh", "after_sales", "手机送去售后维修已经一个月了，还没修好，也没人给我回电话。"),
    ("en", "after_sales",
     "I sent my phone for repair under warranty three weeks ago and nobody has told me anything "
     "about it since."),
]

# Low urgency (P3 with the shipped model): first response counts working days.
LOW_TEXTS = [
    ("en", "Just a small suggestion: the delivery notification could give a narrower time "
           "window. The parcel itself came fine."),
    ("zh", "快递比预计晚到了一天，不算什么大事，只是提个小建议，希望下次能准时一些。"),
]

RUDE_IN_STORE = ("zh", "门店收银员态度恶劣，我只是问了一句能不能开发票，她就冲我大喊大叫，还让我滚出去。")

# (lang, signal, body)
P1_TEXTS = [
    ("en", "safety", "The new laptop charger I bought started smoking on my desk and the plastic "
                     "melted around the plug."),
    ("zh", "safety", "我家的充电宝昨晚充电时突然冒烟，差点起火，吓死人了。"),
    ("en", "safety", "My son cut his hand badly on a sharp edge of the toy and we had to take him "
                     "to hospital."),
    ("en", "health", "We all had food poisoning after eating the chicken rice delivered from your "
                     "kitchen last night."),
    ("zh", "health", "吃了你们店的凉皮以后全家上吐下泻，怀疑是食物中毒。"),
    ("en", "legal_threat", "If you do not refund me this week, my lawyer will send you a letter "
                           "and I will take you to court."),
    ("zh", "legal_threat", "你们再不处理，我就去法院起诉你们，已经咨询了律师。"),
    ("en", "regulator", "I am going to report this to the consumer protection agency and the "
                        "better business bureau."),
    ("zh", "regulator", "我已经打了12315，还要向消费者协会反映这个问题。"),
    ("en", "media_threat", "I will tell the local news station and post this on social media so "
                           "everyone knows."),
    ("zh", "media_threat", "我要找媒体曝光你们这种行为，让大家都知道。"),
]

# Ordinary (P2) and minor (P3) texts, for the VIP lift.
P2_TEXT = ("en", "The replacement blender I bought arrived broken: the glass jug is cracked and "
                 "the lid does not fit.")
P3_TEXT = ("zh", "我觉得你们的包装可以更环保一点，这只是个小建议。")

# A clear case (the model is sure) and two it is less sure of.
CLEAR_TEXT = CATEGORY_TEXTS[1]
UNSURE_TEXTS = [CATEGORY_TEXTS[7], ("zh", "product_quality", LOW_TEXTS[1][1])]

STREAM_TEMPLATES = [
    ("zh", "订单{n}的快递已经延误一个星期了，物流信息一直不更新，麻烦尽快查一下。"),
    ("en", "Order {n}: the courier marked my desk lamp delivered but nothing was left at my door."),
    ("zh", "订单{n}被重复扣款两次，银行流水上有两笔，要求退还多扣的钱。"),
    ("en", "Order {n}: the kettle stopped heating after two days and the switch is loose."),
    ("zh", "订单{n}的售后维修拖了一个月还没结果，客服也不回电话。"),
    ("en", "Order {n}: the agent on the phone was rude and hung up on me twice."),
]


def cust(lang, **extra):
    return {"id": f"CUST-{secrets.token_hex(5)}", "lang": lang, **extra}


# ---------------------------------------------------------------------------- tests: the happy path


def test_complaints_of_each_category_are_classified_and_routed(plaint):
    """Ten complaints (five categories, zh and en), two low-urgency ones and a rude cashier
    in a store, through intake with the shipped config: each reaches `routed` with exactly
    received -> classified -> routed (valid, in seq order, live and in the log), in its
    category, at the department routing.json names for it, with a person of that department,
    and with the due times sla.json gives on the department's business calendar (P3: working
    days on cn_office, holidays and make-up days included)."""
    _, clfs, routs = start_pipeline(plaint)
    sub = plaint.subscribe("case.")
    rules = Rules()
    ids, wanted = [], {}
    for lang, category, body in CATEGORY_TEXTS:
        cid = submit(plaint, body, cust(lang))
        ids.append(cid)
        wanted[cid] = category
    low = [submit(plaint, body, cust(lang), channel="email") for lang, body in LOW_TEXTS]
    lang, body = RUDE_IN_STORE
    store = submit(plaint, body, cust(lang), channel="store",
                   target={"store": "SH-JA-07", "employee": "收银员 E2E-17"})
    every = ids + low + [store]
    cases = {c["case_id"]: c for c in wait_routed(plaint, every, 15, clfs + routs)}

    live = live_events(plaint, sub, set(every))
    for cid in every:
        mine = [e for e in live if e["data"]["case_id"] == cid]
        assert [e["type"] for e in mine] == PIPELINE_EVENTS
        assert mine == case_events(plaint, cid), "live and logged events differ"
        check_routed(plaint, cases[cid], rules)

    for cid, category in wanted.items():
        c = cases[cid]
        assert c["category"] == category, (c["category"], category)
        assert c["signals"] == [] and c["repeat_of"] is None
        assert c["department"] == rules.owner(category)  # the rule "by-category"
        assert c["priority"] in ("P2", "P3")
    for cid in low:
        assert cases[cid]["priority"] == "P3"
        assert cases[cid]["category"] == "logistics_delivery"
        assert "working_days" in rules.sla["priorities"]["P3"]["first_response"]
    s = cases[store]
    assert s["category"] == "service_attitude"
    assert s["department"] == "store_ops" and s["departments"][0] == "store_ops"
    # store-service-attitude also involves customer service: a cross-department case.
    assert "customer_service" in s["departments"]
    assert case_events(plaint, store)[2]["data"]["complex"] is True


def test_every_calendar_open_assignee_speaks_the_language_and_dues_are_exact(plaint):
    """With a config copy whose calendars are all open 24x7 and whose first-response targets
    are seconds (P1 30s, P2 90s, P3 2 working days), every case goes to an agent on duty of
    its department who speaks the customer's language, and the due times are received_at plus
    the targets."""
    cfg = always_open_config(plaint, sla_targets={
        "P1": {"within": "30s", "clock": "business"}, "P2": {"within": "90s"},
        "P3": {"working_days": 2}})
    _, clfs, routs = start_pipeline(plaint, cfg)
    rules = Rules(cfg)
    texts = CATEGORY_TEXTS + [(lang, None, body) for lang, body in LOW_TEXTS] + [
        (lang, None, body) for lang, _, body in P1_TEXTS[:2]]
    ids = [submit(plaint, body, cust(lang)) for lang, _, body in texts]
    cases = wait_routed(plaint, ids, 15, clfs + routs)
    seconds = {"P1": 30, "P2": 90, "P3": 2 * 86400}
    for c in cases:
        check_routed(plaint, c, rules, strict_assignee=True)
        delta = c["first_response_due"] - c["received_at"]
        assert abs(delta - datetime.timedelta(seconds=seconds[c["priority"]])) <= MS, delta
    assert {c["priority"] for c in cases} == {"P1", "P2", "P3"}
    english = [c for c in cases if c["lang"] == "en"]
    assert english and all(
        "en" in a["languages"]
        for c in english
        for a in rules.routing["departments"][c["department"]]["agents"]
        if a["id"] == c["assignee"])


def expected_assignee(rules, department, lang, loads):
    """README "The assignee", with every agent on duty: of the agents under capacity, the
    lowest open/capacity ratio among those who speak lang (else among all), ties to the first
    listed; nobody left: the queue owner."""
    dept = rules.routing["departments"][department]
    kept = [a for a in dept["agents"] if loads.get(a["id"], 0) < a["capacity"]]
    speakers = [a for a in kept
                if lang and _primary(lang) in [_primary(x) for x in a["languages"]]]
    pool = speakers or kept
    if not pool:
        return dept["queue_owner"]
    return min(pool, key=lambda a: max(loads.get(a["id"], 0), 0) / a["capacity"])["id"]


def open_loads(plaint):
    return dict(plaint.sql("SELECT assignee, count(*) FROM cases WHERE assignee IS NOT NULL"
                           " AND plaint_state_is_open(state) GROUP BY 1"))


def small_logistics_config(plaint, capacities=(2, 3)):
    """Every calendar open; the logistics agents hold at most capacities open cases."""
    cfg = always_open_config(plaint)
    routing = read_config(cfg, "routing.json")
    agents = routing["departments"]["logistics"]["agents"]
    assert len(agents) == len(capacities)
    for agent, cap in zip(agents, capacities):
        agent["capacity"] = cap
    write_config(cfg, "routing.json", routing)
    return cfg


def test_assignee_is_the_least_loaded_agent_then_the_queue_owner(plaint):
    """Logistics complaints one after the other (zh and en), with the logistics agents' capacity
    lowered to 2 and 3 in a config copy: each goes to the agent README's rule names for the open
    cases counted at that moment (language first, lowest open/capacity ratio, the first listed
    on a tie), never above capacity; when both are full, to the department's queue owner."""
    cfg = small_logistics_config(plaint)
    rules = Rules(cfg)
    _, clfs, routs = start_pipeline(plaint, cfg)
    zh, en = CATEGORY_TEXTS[0], CATEGORY_TEXTS[1]
    got = []
    for n, (lang, category, body) in enumerate([zh, zh, en, zh, en, zh, en]):
        loads = open_loads(plaint)
        cid = submit(plaint, f"{body} ({n})", cust(lang))
        (c,) = wait_routed(plaint, [cid], 10, clfs + routs)
        assert c["department"] == rules.owner(category) == "logistics"
        assert c["assignee"] == expected_assignee(rules, "logistics", lang, loads), (n, loads)
        got.append(c["assignee"])
    dept = rules.routing["departments"]["logistics"]
    for agent in dept["agents"]:
        assert got.count(agent["id"]) == agent["capacity"], got
    assert got[-2:] == [dept["queue_owner"]] * 2, got


def test_capacity_holds_for_a_backlog_routed_at_once(plaint):
    """The same capacities (2 and 3); twelve logistics complaints are classified while routing
    is down, then routing starts (as after a restart) and its sweep takes them together: still
    no agent gets more open cases than its capacity (PROTOCOL.md 5.5: "never above an agent's
    capacity"), and the other seven wait with the department's queue owner."""
    cfg = small_logistics_config(plaint)
    rules = Rules(cfg)
    intake = plaint.start_intake()
    clf = plaint.start_classifier(PLAINT_CONFIG_DIR=str(cfg), **FAST)
    lang, _, body = CATEGORY_TEXTS[0]
    ids = [submit(plaint, f"{body} ({n})", cust(lang)) for n in range(12)]
    wait_for(plaint, lambda: plaint.sql(
        "SELECT count(*) FROM cases WHERE state = 'classified'")[0][0] == len(ids), 15,
        "every case classified", [intake, clf])
    rout = plaint.start_routing(PLAINT_CONFIG_DIR=str(cfg), **FAST)
    cases = wait_routed(plaint, ids, 15, [clf, rout])
    dept = rules.routing["departments"]["logistics"]
    got = [c["assignee"] for c in cases]
    assert {c["department"] for c in cases} == {"logistics"}
    over = {a["id"]: got.count(a["id"]) for a in dept["agents"]
            if got.count(a["id"]) > a["capacity"]}
    assert not over, (f"agents over capacity {[(a['id'], a['capacity']) for a in dept['agents']]}:"
                      f" {over}; queue owner got {got.count(dept['queue_owner'])}")
    assert got.count(dept["queue_owner"]) == 12 - sum(a["capacity"] for a in dept["agents"])


SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _cst(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


# Start instants (Asia/Shanghai) around weekends, holidays and make-up days of cn_office.
BUSINESS_STARTS = [
    "2026-12-07T09:00",  # a Monday at opening
    "2026-12-09T10:00",  # README: from Wednesday 10:00, 3 working days is Monday 10:00
    "2026-12-11T20:00",  # README: from a closed Friday evening, Thursday 09:00
    "2026-09-30T17:00",  # before National Day; Saturday 2026-10-10 is a make-up day
    "2026-02-13T12:00",  # before the Spring Festival; Saturday 2026-02-14 is a make-up day
    "2026-09-19T11:00",  # a Saturday; Sunday 2026-09-20 is a make-up day
    "2027-02-04T15:00",  # the provisional 2027 Spring Festival
]


def test_due_times_on_business_calendars(plaint):
    """Due times on the departments' business calendars, with the shipped routing.json and an
    sla.json copy whose P2 targets count business hours (first response 9h, i.e. one office
    day; resolution 27h): cases are classified, then moved to chosen received_at instants
    before routing starts, so that weekends, holidays and make-up days are crossed. Each due
    time is the one services/routing/README.md's rules give (worked out here from routing.json),
    including its two examples and "due at a closing time, not at the next opening"."""
    cfg = plaint.config_copy()
    sla = read_config(cfg, "sla.json")
    sla["priorities"]["P2"]["first_response"] = {"within": "9h", "clock": "business"}
    sla["priorities"]["P2"]["resolution"]["simple"] = {"within": "27h", "clock": "business"}
    write_config(cfg, "sla.json", sla)
    rules = Rules(cfg)
    intake = plaint.start_intake()
    clf = plaint.start_classifier(PLAINT_CONFIG_DIR=str(cfg), **FAST)
    lang3, body3 = LOW_TEXTS[0]  # P3, logistics
    lang2, _, body2 = CATEGORY_TEXTS[5]  # P2, billing
    moved = {}
    for start in BUSINESS_STARTS:
        for lang, body, prio in ((lang3, body3, "P3"), (lang2, body2, "P2")):
            moved[submit(plaint, body, cust(lang))] = (_cst(start), prio)
    wait_for(plaint, lambda: plaint.sql(
        "SELECT count(*) FROM cases WHERE state = 'classified'")[0][0] == len(moved), 15,
        "every case classified", [intake, clf])
    for cid, (start, _) in moved.items():
        plaint.sql("UPDATE cases SET received_at = %s WHERE case_id = %s", start, cid)
    rout = plaint.start_routing(PLAINT_CONFIG_DIR=str(cfg), **FAST)  # its sweep takes them
    cases = {c["case_id"]: c for c in wait_routed(plaint, moved, 15, [clf, rout])}
    for cid, (start, prio) in moved.items():
        c = cases[cid]
        assert c["received_at"] == start
        assert c["priority"] == prio, c
        assert rules.routing["departments"][c["department"]]["calendar"] == "cn_office"
        check_routed(plaint, c, rules)
    due = {(start.astimezone(SHANGHAI).isoformat()[:16], prio): cases[cid]["first_response_due"]
           for cid, (start, prio) in moved.items()}
    assert due["2026-12-09T10:00", "P3"] == _cst("2026-12-14T10:00")
    assert due["2026-12-11T20:00", "P3"] == _cst("2026-12-17T09:00")
    assert due["2026-12-07T09:00", "P2"] == _cst("2026-12-07T18:00")
    assert due["2026-09-30T17:00", "P3"] == _cst("2026-10-10T17:00")
    assert due["2026-02-13T12:00", "P3"] == _cst("2026-02-25T12:00")
    assert due["2026-09-19T11:00", "P3"] == _cst("2026-09-23T09:00")
    assert due["2026-09-30T17:00", "P2"] == _cst("2026-10-08T17:00")


def test_involve_rules_target_department_and_fallback(plaint):
    """The involve rules and the fallback (a config copy sends category "other" to the
    fallback on purpose): a store target involves store_ops, a named target department is
    involved, an unknown one is ignored, a safety signal involves quality; a case of an
    unowned category goes to the fallback's department and named assignee with rule
    "fallback"."""
    cfg = plaint.config_copy()
    routing = read_config(cfg, "routing.json")
    routing["departments"]["customer_service"]["categories"].remove("other")
    routing["fallback"]["categories"] = ["other"]
    write_config(cfg, "routing.json", routing)
    rules = Rules(cfg)
    _, clfs, routs = start_pipeline(plaint, cfg)
    lang_q, _, body_q = CATEGORY_TEXTS[7]
    lang_b, _, body_b = CATEGORY_TEXTS[4]
    lang_s, _, body_s = P1_TEXTS[1]
    with_store = submit(plaint, body_q, cust(lang_q), target={"store": "GZ-TH-02"})
    named = submit(plaint, body_b, cust(lang_b), target={"department": "legal"})
    unknown = submit(plaint, body_b, cust(lang_b), target={"department": "no_such_dept"})
    both = submit(plaint, body_s, cust(lang_s),
                  target={"store": "SZ-NS-09", "department": "finance", "order_id": "SO-E2E-1"})
    lang_o, body_o = ("en", "It would be nice if the store offered paper bags instead of plastic "
                            "ones. Only a suggestion.")
    other = submit(plaint, body_o, cust(lang_o))
    cases = {c["case_id"]: c for c in wait_routed(
        plaint, [with_store, named, unknown, both, other], 15, clfs + routs)}
    for c in cases.values():
        check_routed(plaint, c, rules)
    assert cases[with_store]["departments"] == ["quality", "store_ops"]
    assert cases[named]["departments"] == ["finance", "legal"]
    assert cases[unknown]["departments"] == ["finance"]
    assert set(cases[both]["departments"]) >= {"quality", "store_ops", "finance"}
    o = cases[other]
    assert o["category"] == "other", o
    assert (o["department"], o["assignee"]) == (routing["fallback"]["department"],
                                                routing["fallback"]["assignee"])
    assert case_events(plaint, other)[2]["data"]["rule"] == "fallback"


# ---------------------------------------------------------------------------- tests: priority


def test_safety_legal_and_media_complaints_are_p1_with_their_signal(plaint):
    """Fire, smoke, injuries, food poisoning, lawyers and courts, 12315 and the consumer
    association, the media: P1 in both languages, with the signal that fired, routed with a
    first response due per sla.json's P1 target (1 h) and with the departments the involve
    rules add (legal for legal and regulator signals, quality for safety)."""
    _, clfs, routs = start_pipeline(plaint)
    rules = Rules()
    configured = {s["name"] for s in rules.classifier["signals"]}
    p1_target = rules.sla["priorities"]["P1"]["first_response"]
    assert p1_target.get("clock", "24x7") == "24x7"
    p1_within = duration(p1_target["within"])
    ids = []
    for lang, sig, body in P1_TEXTS:
        assert sig in configured
        ids.append(submit(plaint, body, cust(lang)))
    cases = wait_routed(plaint, ids, 15, clfs + routs)
    for (lang, sig, body), c in zip(P1_TEXTS, cases):
        assert c["priority"] == "P1", (body, c["priority"], c["signals"])
        assert signal_matches([sig], c["signals"]), (body, sig, c["signals"])
        check_routed(plaint, c, rules)
        assert close_to(c["first_response_due"] - c["received_at"], p1_within)
        if sig in ("legal_threat", "regulator"):
            assert "legal" in c["departments"], (body, c["departments"])
        if sig == "safety":
            assert "quality" in c["departments"], (body, c["departments"])


def test_vip_customer_raises_the_priority(plaint):
    """The same text from an individual and from a VIP: the VIP's case is raised by
    classifier.json's customer_types.vip.raise and carries its signal; nothing else changes."""
    _, clfs, routs = start_pipeline(plaint)
    rules = Rules()
    vip = rules.classifier["customer_types"]["vip"]
    pairs = []
    for lang, body in (P2_TEXT, P3_TEXT):
        plain = submit(plaint, body, cust(lang))
        lifted = submit(plaint, body, cust(lang, type="vip"))
        pairs.append((plain, lifted))
    wait_routed(plaint, [i for p in pairs for i in p], 15, clfs + routs)
    for plain_id, vip_id in pairs:
        plain, lifted = case_row(plaint, plain_id), case_row(plaint, vip_id)
        assert plain["customer_type"] == "individual" and lifted["customer_type"] == "vip"
        assert lifted["priority"] == raised(plain["priority"], vip["raise"]), (plain, lifted)
        assert lifted["priority"] != plain["priority"]
        assert vip["signal"] in lifted["signals"] and vip["signal"] not in plain["signals"]
        assert lifted["category"] == plain["category"]
        for c in (plain, lifted):
            check_routed(plaint, c, rules)


# ---------------------------------------------------------------------------- tests: repeats


def test_repeat_complaints_link_to_the_earlier_case(plaint):
    """The same customer twice: by customer id (same channel: repeat, not multi-channel, and
    the priority raised by classifier.json's repeat.raise), by a phone number written two
    ways ("+86 138-0013-8000", "13800138000"), by an e-mail address in other letter case;
    then the same phone through another channel: repeat and multi_channel, linked to the
    latest earlier case. A different customer's phone is not linked."""
    _, clfs, routs = start_pipeline(plaint)
    rules = Rules()
    rep = rules.classifier["repeat"]
    tag = secrets.token_hex(3)
    lang, _, body = CATEGORY_TEXTS[8]
    by_id = {"id": f"CUST-REPEAT-{tag}", "lang": lang}
    first = submit(plaint, body, by_id)
    again = submit(plaint, body, dict(by_id))

    phone_a = {"name": f"陈立{tag}", "phone": "+86 138-0013-8000", "lang": "zh"}
    phone_b = {"name": f"陈立{tag}", "phone": "13800138000", "lang": "zh"}
    phone_c = {"phone": "138 0013 8000", "lang": "zh"}
    other = {"phone": "+86 139-0013-8000", "lang": "zh"}
    lang, _, body2 = CATEGORY_TEXTS[0]
    p1 = submit(plaint, body2, phone_a, channel="phone")
    p2 = submit(plaint, body2 + " 第二次打电话来问了。", phone_b, channel="phone")
    p3 = submit(plaint, body2 + " 又在App里提交了一次。", phone_c, channel="app")
    stranger = submit(plaint, body2, other, channel="phone")

    _, _, body3 = CATEGORY_TEXTS[5]
    e1 = submit(plaint, body3, {"email": f"Lin.E2E.{tag}@Example.org", "lang": "en"},
                channel="email")
    e2 = submit(plaint, body3, {"email": f"lin.e2e.{tag}@example.ORG", "lang": "en"},
                channel="email")

    every = [first, again, p1, p2, p3, stranger, e1, e2]
    cases = {c["case_id"]: c for c in wait_routed(plaint, every, 15, clfs + routs)}
    for cid in every:
        check_routed(plaint, cases[cid], rules)

    for earliest in (first, p1, stranger, e1):
        assert cases[earliest]["repeat_of"] is None, cases[earliest]
        assert not signal_matches([rep["signal"], rep["multi_channel_signal"]],
                                  cases[earliest]["signals"])
    for later, earlier in ((again, first), (p2, p1), (e2, e1)):
        c = cases[later]
        assert c["repeat_of"] == earlier, (c["repeat_of"], earlier)
        assert rep["signal"] in c["signals"], c["signals"]
        assert rep["multi_channel_signal"] not in c["signals"], c["signals"]  # same channel
    assert cases[again]["priority"] == raised(cases[first]["priority"], rep["raise"])
    # Another channel within multi_channel_window: both signals, linked to the latest case.
    c = cases[p3]
    assert c["repeat_of"] == p2, (c["repeat_of"], p1, p2)
    assert rep["signal"] in c["signals"] and rep["multi_channel_signal"] in c["signals"]
    # repeat is in sla.json's complex_when: the complex resolution target applies.
    assert case_events(plaint, p3)[2]["data"]["complex"] is True


def test_repeats_submitted_together_form_one_chain(plaint):
    """Four complaints of one customer submitted at once (intake may store them in one batch,
    with one received_at): exactly one has no repeat_of, and each other case is the repeat of
    the one just before it by (received_at, case number): one chain, no case linked twice."""
    _, clfs, routs = start_pipeline(plaint)
    lang, _, body = CATEGORY_TEXTS[0]
    for k in range(3):
        customer = {"id": f"CUST-TOGETHER-{k}-{secrets.token_hex(3)}", "lang": lang}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda n: submit(plaint, f"{body} ({n})", dict(customer)),
                                range(4)))
        cases = wait_routed(plaint, ids, 10, clfs + routs)
        cases.sort(key=lambda c: (c["received_at"], len(c["case_no"]), c["case_no"]))
        assert cases[0]["repeat_of"] is None, cases[0]
        for earlier, later in zip(cases, cases[1:]):
            assert later["repeat_of"] == earlier["case_id"], [
                (c["case_no"], c["received_at"], c["repeat_of"]) for c in cases]


def test_repeat_windows_come_from_classifier_json(plaint):
    """The windows of classifier.json's repeat section, by moving earlier cases back in time
    (received_at): an earlier case older than repeat.window is not linked; one older than
    multi_channel_window but within repeat.window is a repeat through another channel without
    the multi-channel signal; a recent one through another channel is both."""
    _, clfs, routs = start_pipeline(plaint)
    rules = Rules()
    rep = rules.classifier["repeat"]
    window, multi = duration(rep["window"]), duration(rep["multi_channel_window"])
    assert multi < window
    customer = {"id": f"CUST-WINDOW-{secrets.token_hex(4)}", "lang": "en"}
    lang, _, body = CATEGORY_TEXTS[3]

    def case_at(channel, age):
        """A case of the customer, once routed moved back by age."""
        cid = submit(plaint, body, dict(customer), channel=channel)
        (c,) = wait_routed(plaint, [cid], 10, clfs + routs)
        if age:
            plaint.sql("UPDATE cases SET received_at = received_at - %s WHERE case_id = %s",
                       age, cid)
        return c

    old = case_at("web", window + datetime.timedelta(days=1))
    assert old["repeat_of"] is None
    beyond = case_at("web", multi + datetime.timedelta(hours=6))
    assert beyond["repeat_of"] is None, "linked to a case older than repeat.window"
    assert rep["signal"] not in beyond["signals"]
    within = case_at("phone", None)
    assert within["repeat_of"] == beyond["case_id"]
    assert rep["signal"] in within["signals"]
    assert rep["multi_channel_signal"] not in within["signals"], (
        "multi-channel signal for an earlier case older than multi_channel_window")
    recent = case_at("app", None)
    assert recent["repeat_of"] == within["case_id"]
    assert {rep["signal"], rep["multi_channel_signal"]} <= set(recent["signals"])
    for c in (old, beyond, within, recent):
        check_routed(plaint, c, rules)


# ---------------------------------------------------------------------------- tests: replicas


def _logged_cases(daemon, msg):
    return sum(1 for line in daemon.log_lines() if line.get("msg") == msg)


def _swept(daemon):
    return sum(int(l["count"]) for l in daemon.log_lines() if l.get("msg") == "swept stuck cases")


def test_two_replicas_each_survive_a_sigkill_mid_stream(plaint):
    """Two classifiers and two routers; 200 complaints submitted steadily. Once both victims
    have done some work, one classifier and one router are frozen (SIGSTOP) while 12 more
    complaints arrive, so that the hub certainly hands each victim work it never does, then
    killed with SIGKILL; the stream goes on. Every case ends routed, with exactly one
    case.classified and one case.routed event (from the classifier and routing stages), no
    claim left, nothing parked, each case's events in order, and the event log numbered 1..N
    without holes; the survivors' sweeps took over what the victims were handed."""
    _, clfs, routs = start_pipeline(plaint, classifiers=2, routers=2)
    victims = (clfs[0], routs[0])
    total, kill_at, frozen_n = 200, 80, 12
    ids = []

    def one(n):
        lang, template = STREAM_TEMPLATES[n % len(STREAM_TEMPLATES)]
        body = template.format(n=f"E2E-{n:03d}-{secrets.token_hex(3)}")
        ids.append(submit(plaint, body, cust(lang), channel=("web", "app", "phone")[n % 3]))

    n = 0
    while n < total:
        one(n)
        n += 1
        time.sleep(0.005)
        if n != kill_at:
            continue
        wait_for(plaint, lambda: _logged_cases(clfs[0], "case classified") > 0
                 and _logged_cases(routs[0], "case routed") > 0, 10,
                 "both victims have done some work", clfs + routs)
        for v in victims:
            v.proc.send_signal(signal.SIGSTOP)
        frozen = []
        for _ in range(frozen_n):
            one(n)
            frozen.append(ids[-1])
            n += 1
        # The surviving classifier's share gets classified and handed to both routers.
        wait_for(plaint, lambda: plaint.sql(
            "SELECT count(*) FROM cases WHERE case_id = ANY(%s::uuid[])"
            " AND state IN ('classified', 'routed')", frozen)[0][0] >= frozen_n // 3, 10,
            "the survivor classified its share of the work", clfs + routs)
        time.sleep(0.2 * harness.multiplier())
        for v in victims:
            v.kill9()
    cases = wait_routed(plaint, ids, 40, clfs + routs)
    assert len(ids) == total

    for v in victims:
        assert v.returncode == -signal.SIGKILL
    for d in (clfs[1], routs[1]):
        assert d.alive(), d.tail()
        assert _swept(d) > 0, f"{d.binary}: the survivor swept nothing:\n{d.tail()}"
    counts = plaint.sql(
        "SELECT type, source, count(*), count(DISTINCT case_id) FROM events"
        " WHERE case_id = ANY(%s::uuid[]) GROUP BY 1, 2 ORDER BY 1", ids)
    assert counts == [("case.classified", "classifier", total, total),
                      ("case.received", "plaint-intake", total, total),
                      ("case.routed", "routing", total, total)], counts
    bad = [c for c in cases if c["stage_token"] or c["parked_at"] or not c["department"]
           or not c["assignee"] or not c["first_response_due"] or not c["category"]]
    assert not bad, bad[:3]
    assert plaint.sql("SELECT count(*) FROM events WHERE type = 'case.parked'")[0][0] == 0
    n, lo, hi = plaint.sql("SELECT count(*), min(seq), max(seq) FROM events")[0]
    assert (n, lo, hi) == (3 * total, 1, 3 * total)
    order = plaint.sql(
        "SELECT count(*) FROM (SELECT case_id, array_agg(type ORDER BY seq) AS types"
        " FROM events GROUP BY case_id) t WHERE types <> %s::text[]", PIPELINE_EVENTS)
    assert order == [(0,)], "a case's events are not received, classified, routed in seq order"
    for d in (clfs[1], routs[1]):
        assert d.stop() == 0


# ---------------------------------------------------------------------------- tests: bad config


def _break_json(path):
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")


def _edit(name, fn):
    def apply(cfg):
        doc = read_config(cfg, name)
        fn(doc)
        write_config(cfg, name, doc)
    return apply


def _set(doc, keys, value):
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = value


def _garbage_model(plaint):
    path = plaint.tmp_path / "garbage.model"
    path.write_bytes(b"PLAINTMX" + os.urandom(4096))
    return path


def _write(path, data):
    path.write_bytes(data)
    return path


def _truncated_model(plaint):
    path = plaint.tmp_path / "truncated.model"
    path.write_bytes(pathlib.Path(default_model()).read_bytes()[:20000])
    return path


BAD_CONFIGS = {
    "classifier-json-syntax": (
        CLASSIFIER, lambda cfg: _break_json(cfg / "classifier.json"), None,
        ["classifier.json", "line"]),
    "classifier-min-confidence": (
        CLASSIFIER, _edit("classifier.json", lambda d: _set(d, ["min_confidence"], 1.5)), None,
        ["classifier.json", "min_confidence"]),
    "classifier-repeat-window": (
        CLASSIFIER, _edit("classifier.json", lambda d: _set(d, ["repeat", "window"], "soon")),
        None, ["classifier.json", "repeat.window"]),
    "classifier-model-garbage": (CLASSIFIER, None, _garbage_model, ["garbage.model"]),
    "classifier-model-truncated": (CLASSIFIER, None, _truncated_model, ["truncated.model"]),
    "classifier-model-empty": (
        CLASSIFIER, None, lambda p: _write(p.tmp_path / "empty.model", b""), ["empty.model"]),
    "classifier-model-missing": (
        CLASSIFIER, None, lambda p: p.tmp_path / "missing.model", ["missing.model"]),
    "routing-json-syntax": (
        ROUTING, lambda cfg: _break_json(cfg / "routing.json"), None, ["routing.json", "line"]),
    "routing-capacity": (
        ROUTING, _edit("routing.json", lambda d: _set(
            d, ["departments", "quality", "agents", 0, "capacity"], 0)), None,
        ["routing.json", "departments.quality.agents[0].capacity"]),
    "routing-unknown-department": (
        ROUTING, _edit("routing.json", lambda d: d["rules"].insert(
            0, {"name": "e2e-nowhere", "department": "no_such_department"})), None,
        ["routing.json", "rules[0].department", "no_such_department"]),
    "routing-unowned-category": (
        ROUTING, _edit("routing.json", lambda d: _set(
            d, ["departments", "logistics", "categories"], [])), None,
        ["routing.json", "logistics_delivery"]),
    "sla-duration": (
        ROUTING, _edit("sla.json", lambda d: _set(
            d, ["priorities", "P1", "first_response", "within"], "one hour")), None,
        ["sla.json", "priorities.P1.first_response"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_or_model_exits_78_naming_the_file_and_field(plaint, case):
    """A broken or wrong config file, or a missing, truncated or foreign model file: the
    daemon does not start; it exits 78 (EX_CONFIG) with a message naming the file and the
    field, and a hint."""
    binary, edit, model, words = BAD_CONFIGS[case]
    cfg = plaint.config_copy()
    if edit:
        edit(cfg)
    extra = {"PLAINT_CONFIG_DIR": str(cfg)}
    if model:
        extra["PLAINT_CLASSIFIER_MODEL"] = str(model(plaint))
    d = plaint.start_daemon(binary, **extra)
    rc = d.wait_exit(10)
    text = d.log_text()
    assert rc == EX_CONFIG, f"{binary} exited {rc}, want {EX_CONFIG}:\n{text}"
    for w in words:
        assert w in text, f"{w!r} is not in the message:\n{text}"
    assert "hint:" in text, text
    assert '"msg":"started"' not in text


# ---------------------------------------------------------------------------- tests: SIGHUP


def default_model():
    """The model file the classifier reads by default (from its --help)."""
    res = subprocess.run([harness.binary_path(CLASSIFIER), "--help"], capture_output=True,
                         text=True, timeout=timeout(10))
    m = re.search(r"PLAINT_CLASSIFIER_MODEL \(default: ([^)]+)\)", res.stdout)
    assert m, res.stdout
    return m.group(1)


def metric(daemon, name):
    with urllib.request.urlopen(f"http://{daemon.metrics_addr}/metrics",
                                timeout=timeout(5)) as r:
        text = r.read().decode()
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics:\n{text[:2000]}"
    return float(m.group(1))


def hup(daemon, log_line, count):
    daemon.proc.send_signal(signal.SIGHUP)
    return daemon.wait_log(log_line, 10, count=count)


def test_classifier_sighup_keeps_the_old_rules_on_a_bad_file_and_applies_a_good_one(plaint):
    """SIGHUP with a classifier.json that does not parse, then with a model file that is not
    a model: each reload fails with a message naming the file, the old model and rules stay
    and cases are classified as before. SIGHUP with a valid changed classifier.json
    (min_confidence 0.99): the next case goes to triage."""
    cfg = plaint.config_copy()
    model = plaint.tmp_path / "reload.model"
    good = pathlib.Path(default_model()).read_bytes()
    model.write_bytes(good)
    _, (clf,), (rout,) = start_pipeline(
        plaint, cfg, PLAINT_CLASSIFIER_MODEL=str(model))
    lang, _, body = UNSURE_TEXTS[0]

    def classify():
        cid = submit(plaint, body, cust(lang))
        (c,) = wait_routed(plaint, [cid], 10, [clf, rout])
        return c

    before = classify()
    assert "low_confidence" not in before["signals"] and before["confidence"] < 0.99

    original = (cfg / "classifier.json").read_text(encoding="utf-8")
    _break_json(cfg / "classifier.json")
    line = hup(clf, "reload failed", 1)
    assert "classifier.json" in line, line
    assert clf.alive()
    after_bad = classify()

    (cfg / "classifier.json").write_text(original, encoding="utf-8")
    tmp = plaint.tmp_path / "reload.model.new"
    tmp.write_bytes(b"not a model at all " * 100)
    os.replace(tmp, model)  # as plaintctl train writes: a new file renamed into place
    line = hup(clf, "reload failed", 2)
    assert str(model) in line, line
    after_bad_model = classify()
    for c in (after_bad, after_bad_model):
        assert (c["category"], c["priority"], c["signals"]) == (
            before["category"], before["priority"], before["signals"])
        assert abs(c["confidence"] - before["confidence"]) < 1e-3

    tmp.write_bytes(good)
    os.replace(tmp, model)
    _edit("classifier.json", lambda d: _set(d, ["min_confidence"], 0.99))(cfg)
    hup(clf, "model and rules reloaded", 1)
    changed = classify()
    assert "low_confidence" in changed["signals"], changed
    assert case_events(plaint, changed["case_id"])[1]["data"]["triage"] is True
    triage = [r for r in Rules(cfg).routing["rules"] if r.get("when", {}).get("triage")][0]
    assert (changed["department"], changed["assignee"]) == (
        triage["department"], triage["assignee"])
    assert metric(clf, "plaint_classifier_reload_failures_total") == 2
    assert metric(clf, "plaint_classifier_reloads_total") == 1
    assert clf.stop() == 0


def test_routing_sighup_keeps_the_old_plan_on_a_bad_file_and_applies_a_good_one(plaint):
    """SIGHUP with a routing.json naming an unknown department, then with an sla.json that does
    not parse: the reload fails naming the file and field, and cases are routed as before.
    SIGHUP with a valid change (a new first rule sending letters to after_sales, a 90 s P2
    first response): the next letter is routed by it."""
    cfg = always_open_config(plaint)
    _, clfs, (rout,) = start_pipeline(plaint, cfg)
    lang, category, body = CATEGORY_TEXTS[5]  # billing, P2

    def route():
        cid = submit(plaint, body, cust(lang), channel="letter")
        (c,) = wait_routed(plaint, [cid], 10, clfs + [rout])
        return c

    rules = Rules(cfg)
    before = route()
    check_routed(plaint, before, rules, strict_assignee=True)
    assert before["department"] == rules.owner(category)

    routing_text = (cfg / "routing.json").read_text(encoding="utf-8")
    sla_text = (cfg / "sla.json").read_text(encoding="utf-8")
    _edit("routing.json", lambda d: d["rules"].insert(
        0, {"name": "e2e-nowhere", "department": "no_such_department"}))(cfg)
    line = hup(rout, "reload failed", 1)
    assert "routing.json" in line and "rules[0].department" in line, line
    check_routed(plaint, route(), rules, strict_assignee=True)

    (cfg / "routing.json").write_text(routing_text, encoding="utf-8")
    _break_json(cfg / "sla.json")
    line = hup(rout, "reload failed", 2)
    assert "sla.json" in line, line
    check_routed(plaint, route(), rules, strict_assignee=True)

    (cfg / "sla.json").write_text(sla_text, encoding="utf-8")
    _edit("routing.json", lambda d: d["rules"].insert(
        0, {"name": "e2e-letters", "when": {"channel": ["letter"]},
            "department": "after_sales"}))(cfg)
    _edit("sla.json", lambda d: _set(d, ["priorities", "P2", "first_response"],
                                     {"within": "90s", "clock": "24x7"}))(cfg)
    hup(rout, "routing config reloaded", 1)
    after = route()
    new_rules = Rules(cfg)
    events = check_routed(plaint, after, new_rules, strict_assignee=True)
    assert events["case.routed"]["data"]["rule"] == "e2e-letters"
    assert after["department"] == "after_sales"
    if after["priority"] == "P2":
        assert close_to(after["first_response_due"] - after["received_at"],
                        datetime.timedelta(seconds=90))
    assert metric(rout, "plaint_routing_reload_failures_total") == 2
    assert metric(rout, "plaint_routing_reloads_total") == 1
    assert rout.stop() == 0


# ---------------------------------------------------------------------------- tests: triage


def test_low_confidence_goes_to_triage(plaint):
    """min_confidence 0.99 (a config copy): cases the model is less sure of are classified
    with triage true and the low_confidence signal, and routed to the triage rule's department
    and named owner; a case it is sure of is routed by its category."""
    cfg = always_open_config(plaint, min_confidence=0.99)
    _, clfs, routs = start_pipeline(plaint, cfg)
    rules = Rules(cfg)
    triage = [r for r in rules.routing["rules"] if r.get("when", {}).get("triage") is True]
    assert len(triage) == 1 and triage[0]["assignee"]
    unsure = [submit(plaint, body, cust(lang)) for lang, _, body in UNSURE_TEXTS]
    lang, category, body = CLEAR_TEXT
    clear = submit(plaint, body, cust(lang))
    cases = {c["case_id"]: c for c in wait_routed(plaint, unsure + [clear], 15, clfs + routs)}
    for cid in unsure:
        c = cases[cid]
        assert c["confidence"] < 0.99
        assert "low_confidence" in c["signals"], c
        events = check_routed(plaint, c, rules, strict_assignee=True)
        assert events["case.classified"]["data"]["triage"] is True
        assert events["case.routed"]["data"]["rule"] == triage[0]["name"]
        assert (c["department"], c["assignee"]) == (triage[0]["department"],
                                                    triage[0]["assignee"])
    c = cases[clear]
    assert c["confidence"] >= 0.99 and "low_confidence" not in c["signals"], c
    events = check_routed(plaint, c, rules, strict_assignee=True)
    assert events["case.classified"]["data"]["triage"] is False
    assert c["department"] == rules.owner(category)


# ---------------------------------------------------------------------------- tests: privacy


def test_no_contact_data_or_complaint_text_in_any_log(plaint):
    """Complaints with every personal field filled in (name, phone, e-mail, subject, demand,
    the employee complained about, the place), a repeat by phone through another channel, at
    log level debug: the daemons log about every case (by id), and not one of those strings,
    in any JSON form, appears in a log. The harness checks the same again at teardown."""
    intake, clfs, routs = start_pipeline(plaint)
    tag = secrets.token_hex(4)
    private = {
        "customer": {"id": f"CUST-PRIV-{tag}", "name": f"欧阳明月{tag}",
                     "phone": f"+86 137-{secrets.randbelow(10**4):04d}-"
                              f"{secrets.randbelow(10**4):04d}",
                     "email": f"ouyang.{tag}@example.cn", "type": "vip", "lang": "zh"},
        "subject": f"店员辱骂顾客 {tag}",
        "demand": f"要求店长当面道歉并赔偿 {tag}",
        "demand_type": "apology",
        "target": {"store": "BJ-CY-12", "employee": f"店员小李{tag}"},
        "location": f"北京市朝阳区某商场三楼 {tag}",
    }
    body1 = f"店员小李当着其他顾客的面骂我，还推了我一把，我要找媒体曝光。{tag}"
    body2 = f"Following up by app: the clerk insulted me and pushed me, nobody called back. {tag}"
    first = submit(plaint, body1, dict(private["customer"]), channel="store",
                   **{k: v for k, v in private.items() if k != "customer"})
    digits = re.sub(r"\D", "", private["customer"]["phone"])[2:]  # 137XXXXXXXX
    again = submit(plaint, body2, {"phone": digits, "lang": "en"}, channel="app")
    cases = {c["case_id"]: c for c in wait_routed(plaint, [first, again], 15, clfs + routs)}
    assert cases[again]["repeat_of"] == first

    private_strings = sorted(plaint.contact_data)
    assert body1 in private_strings and private["customer"]["phone"] in private_strings
    for d in [intake, *clfs, *routs]:
        text = d.log_text()
        for cid in (first, again):
            assert cid in text, f"{d.binary} logged nothing about {cid}"
        leaked = [s for s in private_strings for form in harness._json_forms(s) if form in text]
        assert not leaked, f"{d.binary} log holds {leaked[:3]}"


# ---------------------------------------------------------------------------- tests: flags


@pytest.mark.parametrize("binary,own", [
    (CLASSIFIER, ["PLAINT_CLASSIFY_ENDPOINT", "PLAINT_CLASSIFIER_MODEL"]),
    (ROUTING, ["PLAINT_ROUTE_ENDPOINT"]),
])
def test_help_and_version(binary, own):
    """--help (exit 0) lists every setting with its default, without a database or config;
    --version prints the name and version; an unknown flag is refused with a hint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAINT_")}
    env.update(PLAINT_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
               PLAINT_CONFIG_DIR="/nonexistent")

    def run(*args):
        return subprocess.run([harness.binary_path(binary), *args], env=env,
                              capture_output=True, text=True, timeout=timeout(10))

    res = run("--help")
    assert res.returncode == 0, res.stderr
    settings = ["PLAINT_DATABASE_URL", "PLAINT_CONFIG_DIR", "PLAINT_LOG_LEVEL",
                "PLAINT_METRICS_ADDR", "PLAINT_STAGE_LEASE", "PLAINT_STAGE_SWEEP",
                "PLAINT_STAGE_PATIENCE", "PLAINT_STAGE_BACKOFF", "PLAINT_STAGE_MAX_ATTEMPTS",
                "PLAINT_STAGE_CONCURRENCY", *own]
    for s in settings:
        assert re.search(rf"^{s} \(default: [^)]*\)\s+\S", res.stdout, re.M), (s, res.stdout)
    assert binary in res.stdout and "SIGTERM" in res.stdout
    if binary == CLASSIFIER:
        model = default_model()
        assert os.path.isfile(model), f"the default model {model} was not built"

    res = run("--version")
    assert res.returncode == 0
    assert re.fullmatch(rf"{binary} \d+\.\d+\.\d+\S*\n", res.stdout), res.stdout

    res = run("--no-such-flag")
    assert res.returncode not in (0, EX_CONFIG) and "--help" in res.stderr, res
