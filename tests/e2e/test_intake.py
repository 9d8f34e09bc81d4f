"""End-to-end tests of plaint-intake and plaintctl: real PostgreSQL, real processes, real sockets.

What is checked (contract: "Submitting a complaint"; proto/PROTOCOL.md sections 2, 4 and 9):
- a valid complaint is acknowledged only once stored, with every field in `cases` and a
  `case.received` event;
- bad input of every kind gets an `error` naming the field, and nothing is stored;
- every client framing (REQ, DEALER with and without the empty delimiter) is answered;
- idempotency by (source, external_id), also under races within one intake and across two;
- no acknowledged case is lost when intake is killed, and retries create no duplicates;
- PostgreSQL stopping, pausing and restarting under a running intake;
- SIGTERM while submits are in flight; settings errors; schema version checks;
- plaintctl migrate, submit, case and events.
"""

import concurrent.futures
import datetime
import json
import os
import random
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid

import psycopg2
import pytest
import zmq

import harness
from harness import NoReply, timeout, validate

CASE_NO = re.compile(r"^C-(\d{8})-(\d{6,})$")
UTC = datetime.timezone.utc


# ---------------------------------------------------------------------------- complaints


def complaint(plaint, lang="en"):
    """A valid complaint.submit data object with unique contact data, registered as private."""
    tag = secrets.token_hex(4)
    phone_digits = "".join(random.choice("0123456789") for _ in range(8))
    if lang == "zh":
        data = {
            "channel": "phone",
            "customer": {"id": f"CUST-{tag}", "name": f"王秀英{tag}",
                         "phone": f"+86138{phone_digits}", "email": f"wang.xy.{tag}@example.cn",
                         "type": "vip", "lang": "zh"},
            "subject": f"移动电源充电时发烫冒烟 {tag}",
            "body": ("上周在门店买的移动电源，昨晚充电时外壳烫手，还冒出一股白烟，差点出事。"
                     f"请尽快处理。{tag}"),
            "demand": f"退货退款，并书面说明原因 {tag}",
            "demand_type": "refund",
            "target": {"product": "PB-20000 移动电源", "order_id": "SO20261118-5521",
                       "store": "SH-XH-03", "批次": "B-2026-11"},
            "occurred_at": "2026-11-24T21:40:00+08:00",
            "location": "上海市徐汇区",
            "attachments": [{"name": "充电宝.jpg", "size": 482113,
                             "url": "https://files.example.com/c/7f3e2a.jpg"}],
            "crm": {"priority": "高", "tags": ["安全", "电池"], "score": 7.5, "flag": True,
                    "nothing": None},
        }
    else:
        data = {
            "channel": "email",
            "customer": {"id": f"CUST-{tag}", "name": f"Zelda Quartermain {tag}",
                         "phone": f"+1 (415) 55{phone_digits[:5]}",
                         "email": f"zelda.q.{tag}@example.org", "type": "enterprise",
                         "lang": "en-GB"},
            "subject": f"Kettle switched itself on {tag}",
            "body": f"The kettle I bought last week switches itself on at night, boils dry. {tag}",
            "demand": f"A replacement and an explanation {tag}",
            "demand_type": "replacement",
            "target": {"product": "KT-9 kettle", "order_id": "ORD-55-1", "store": "LDN-02",
                       "employee": "E-1017", "department": "appliances", "batch": "B17"},
            "occurred_at": "2026-11-24T21:40:00.250-05:00",
            "location": "London, Shoreditch",
            "attachments": [{"name": "kettle.png", "url": "https://files.example.com/k.png",
                             "size": 0},
                            {"name": "receipt.pdf", "url": "http://files.example.com/r%20a.pdf"}],
            "crm_priority": "high",
            "meta": {"nested": {"list": [1, 2, {"deep": "yes"}]}},
        }
    c = data["customer"]
    plaint.remember_private(c["name"], c["phone"], c["email"], data["body"], data["subject"],
                            data["demand"])
    return data


def minimal_complaint(plaint):
    tag = secrets.token_hex(4)
    phone = "+86139" + "".join(random.choice("0123456789") for _ in range(8))
    body = f"Minimal complaint {tag}: the parcel never arrived."
    plaint.remember_private(phone, body)
    return {"channel": "web", "customer": {"phone": phone}, "body": body}


def assert_accepted(reply, request_id=None, duplicate=None):
    assert reply["type"] == "complaint.accepted", f"not accepted: {reply}"
    validate(reply, "complaint.accepted")
    if request_id is not None:
        assert reply["correlation_id"] == request_id
    if duplicate is not None:
        assert reply["data"]["duplicate"] is duplicate, reply
    return reply["data"]


def assert_no_private(text, plaint):
    leaked = [s for s in plaint.contact_data if s in text]
    assert not leaked, f"contact data or complaint text in a message: {leaked}"


def count_cases(plaint):
    return plaint.sql("SELECT count(*) FROM cases")[0][0]


# ---------------------------------------------------------------------------- a valid complaint


@pytest.mark.parametrize("lang", ["en", "zh", "minimal"])
def test_valid_submit_is_acked_and_stored(plaint, lang):
    plaint.start_intake()
    data = minimal_complaint(plaint) if lang == "minimal" else complaint(plaint, lang)
    external_id = None if lang == "minimal" else f"CRM-{lang}-{uuid.uuid4()}"
    msg_id = str(uuid.uuid4())
    before = datetime.datetime.now(UTC)
    reply = plaint.submit(data, external_id=external_id, source="crm-e2e", msg_id=msg_id)
    after = datetime.datetime.now(UTC)
    validate(reply, "envelope")
    got = assert_accepted(reply, msg_id, duplicate=False)
    assert_no_private(json.dumps(reply, ensure_ascii=False), plaint)
    m = CASE_NO.match(got["case_no"])
    assert m, got["case_no"]
    assert m.group(1) in {before.strftime("%Y%m%d"), after.strftime("%Y%m%d")}

    sent = dict(data, **({"external_id": external_id} if external_id else {}))
    rows = plaint.sql(
        "SELECT case_id::text, case_no, source, external_id, message_id, channel, customer_id,"
        " customer_name, customer_phone, customer_email, customer_type, lang, subject, body,"
        " demand, demand_type, target, occurred_at, location, attachments, submission, state,"
        " received_at FROM cases")
    assert len(rows) == 1
    (case_id, case_no, source, ext, message_id, channel, customer_id, name, phone, email,
     customer_type, lang_col, subject, body, demand, demand_type, target, occurred_at, location,
     attachments, submission, state, received_at) = rows[0]
    c = data["customer"]
    assert (case_id, case_no) == (got["case_id"], got["case_no"])
    assert (source, ext, message_id) == ("crm-e2e", external_id, msg_id)
    assert channel == data["channel"]
    assert (customer_id, name, phone, email) == (c.get("id"), c.get("name"), c.get("phone"),
                                                 c.get("email"))
    assert customer_type == c.get("type", "individual")
    assert lang_col == c.get("lang")
    assert (subject, body, demand, demand_type) == (data.get("subject"), data["body"],
                                                    data.get("demand"), data.get("demand_type"))
    assert target == data.get("target")
    assert attachments == data.get("attachments")
    assert location == data.get("location")
    # The data object as sent, unknown fields included; intake keeps the body in its own column
    # only (so that a commit does not write it twice).
    assert dict(submission, body=submission.get("body", body)) == sent, \
        "submission (with the body column) must hold the data object exactly as sent"
    for extra in ("crm", "crm_priority", "meta"):
        if extra in data:
            assert submission[extra] == data[extra]
    assert state == "received"
    slack = datetime.timedelta(seconds=5)
    assert before - slack <= received_at <= after + slack
    if lang == "zh":
        assert occurred_at == datetime.datetime(2026, 11, 24, 13, 40, tzinfo=UTC)
    elif lang == "en":
        assert occurred_at == datetime.datetime(2026, 11, 25, 2, 40, 0, 250000, tzinfo=UTC)
    else:
        assert occurred_at is None

    events = plaint.wait_until(
        lambda: plaint.sql("SELECT type, source, data, seq, plaint_event_envelope(e)"
                           " FROM events e WHERE case_id = %s AND seq IS NOT NULL", case_id),
        10, "the case.received event was not sequenced")
    assert len(events) == 1
    etype, esource, edata, seq, envelope = events[0]
    assert (etype, esource) == ("case.received", "plaint-intake")
    assert edata["case_id"] == case_id and edata["case_no"] == case_no
    assert edata["state"] == "received" and edata["channel"] == data["channel"]
    assert edata["source"] == "crm-e2e" and edata["external_id"] == external_id
    assert edata["customer_type"] == c.get("type", "individual")
    assert edata["lang"] == c.get("lang")
    event = json.loads(envelope)
    assert event["data"]["seq"] == seq == 1
    harness.validate_event(event)
    assert_no_private(envelope, plaint)


def test_empty_free_text_counts_as_absent(plaint):
    plaint.start_intake()
    data = complaint(plaint)
    data.update(subject="", demand=None, location="", target=None, occurred_at=None)
    data["customer"].update(name="", email="", lang=None)
    got = assert_accepted(plaint.submit(data, external_id="EMPTY-1"))
    row = plaint.sql("SELECT subject, demand, location, target, occurred_at, customer_name,"
                     " customer_email, lang, customer_phone, submission FROM cases"
                     " WHERE case_id = %s", got["case_id"])[0]
    assert row[:8] == (None,) * 8
    assert row[8] == data["customer"]["phone"]
    assert row[9]["subject"] == "" and row[9]["customer"]["email"] == ""  # kept as sent


def test_limits_at_the_boundary_are_accepted(plaint):
    """Exactly at every limit is fine: bytes for the body, characters for the rest."""
    plaint.start_intake()
    base = minimal_complaint(plaint)
    nested = 1
    for _ in range(29):  # root and data are levels 1 and 2: 32 in all
        nested = [nested]
    cases = {
        "body 65536 ASCII bytes": dict(base, body="a" * 65536),
        "body 65536 bytes of CJK": dict(base, body="中" * 21845 + "a"),
        "subject 200 CJK chars": dict(base, subject="投" * 200),
        "demand 2000 chars": dict(base, demand="d" * 2000),
        "location 200 chars": dict(base, location="地" * 200),
        "20 attachments": dict(base, attachments=[
            {"name": "n" * 255, "url": "https://e.example.com/" + "u" * 2000, "size": 2**53 - 1}
            for _ in range(20)]),
        "name 200 chars": dict(base, customer=dict(base["customer"], name="名" * 200)),
        "nesting depth 32": dict(base, extra=nested),
        "emoji by surrogate pair": dict(base, body="broken \U0001F600 charger"),
        "one-character body": dict(base, body="x"),
    }
    for i, (label, data) in enumerate(cases.items()):
        reply = plaint.submit(data, external_id="B" * 127 + str(i % 10))
        assert reply["type"] == "complaint.accepted", f"{label}: {reply}"
    # Lengths are characters, not bytes: 128 CJK characters are 384 bytes.
    assert_accepted(plaint.submit(base, external_id="号" * 128, source="源" * 128))
    assert count_cases(plaint) == len(cases) + 1
    bodies = {r[0] for r in plaint.sql("SELECT octet_length(body) FROM cases")}
    assert 65536 in bodies


@pytest.mark.parametrize("occurred_at", [
    "2026-11-24T21:40:00+08:00",
    "2026-11-24t21:40:00.5z",
    "2026-11-24T21:40:00.123456789-00:00",
    "2026-02-28T23:30:00-23:59",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999+00:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
])
def test_occurred_at_is_stored_as_the_same_instant_or_refused(plaint, occurred_at):
    """Any offset is accepted and stored in UTC: as the same instant (to the millisecond), never
    as another one."""
    plaint.start_intake()
    reply = plaint.submit(dict(minimal_complaint(plaint), occurred_at=occurred_at))
    if reply["type"] == "error":
        assert [e["path"] for e in reply["data"]["errors"]] == ["data.occurred_at"], reply
        return
    got = assert_accepted(reply)
    ms, text = plaint.sql("SELECT round(extract(epoch FROM occurred_at) * 1000)::bigint,"
                          " occurred_at::text FROM cases WHERE case_id = %s", got["case_id"])[0]
    assert ms == epoch_ms(occurred_at), f"{occurred_at} stored as {text}"


def epoch_ms(rfc3339):
    """The instant an RFC 3339 date-time names, in ms since 1970 (also outside 0001..9999 UTC,
    which datetime cannot hold), truncated to the millisecond."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
                 rfc3339)
    local = datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}+00:00")
    ms = int((local - datetime.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1000
    ms += int((m.group(3) or "0")[:3].ljust(3, "0"))
    if m.group(4) not in ("Z", "z"):
        sign = 1 if m.group(4)[0] == "+" else -1
        ms -= sign * (int(m.group(4)[1:3]) * 60 + int(m.group(4)[4:6])) * 60000
    return ms


def test_envelope_variants_are_accepted(plaint):
    """at may be absent or null or carry an offset; unknown envelope fields are ignored; v may be
    written 1.0."""
    plaint.start_intake()
    data = minimal_complaint(plaint)
    variants = {"no at": ("at", None), "null at": ("at", "null"),
                "at with offset": ("at", '"2026-11-25T11:00:00.5+08:00"'),
                "unknown field": ("reply_to", '{"x": [1]}'), "v as 1.0": ("v", "1.0")}
    for i, (label, (field, value)) in enumerate(variants.items()):
        msg = plaint.envelope(data, external_id=f"ENV-{i}")
        msg.pop(field, None)
        text = json.dumps(msg)[:-1] + (f', "{field}": {value}}}' if value else "}")
        reply = json.loads(plaint.send_raw([text.encode()])[0])
        assert_accepted(reply, msg["id"])
    assert count_cases(plaint) == len(variants)


def test_a_row_the_database_refuses_does_not_sink_its_batch(plaint):
    """The database refusing one row of a group commit gets that complaint an `invalid` error
    (path "data") and stores it nowhere; the others of its batch are stored and acknowledged."""
    plaint.start_intake(PLAINT_INTAKE_DB_CONNECTIONS=1)
    plaint.sql("ALTER TABLE cases ADD CONSTRAINT e2e_refuse CHECK (body NOT LIKE '%%REFUSE-ME%%')")
    data = minimal_complaint(plaint)
    poison = dict(data, body=data["body"] + " REFUSE-ME")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{plaint.ports['submit']}")
    try:
        sent = {}
        for i in range(60):
            msg = plaint.envelope(poison if i in (17, 41) else data, external_id=f"REF-{i}")
            sent[msg["id"]] = i
            sock.send_multipart([b"", dump(msg)])
        replies = {}
        while len(replies) < len(sent) and sock.poll(int(timeout(10) * 1000)):
            reply = json.loads(sock.recv_multipart()[1])
            replies[sent[reply["correlation_id"]]] = reply
    finally:
        sock.close(linger=0)
    assert len(replies) == 60
    for i, reply in replies.items():
        if i in (17, 41):
            validate(reply, "error")
            assert reply["data"]["code"] == "invalid", reply
            assert [e["path"] for e in reply["data"]["errors"]] == ["data"], reply
        else:
            assert_accepted(reply, duplicate=False)
    stored = {r[0] for r in plaint.sql("SELECT external_id FROM cases")}
    assert stored == {f"REF-{i}" for i in range(60)} - {"REF-17", "REF-41"}
    assert plaint.sql("SELECT count(*) FROM events")[0][0] == 58
    batches = [l for l in plaint.daemons[0].log_lines() if l.get("msg") == "batch done"]
    print(f"{len(batches)} batches logged")


# ---------------------------------------------------------------------------- bad input

NAME = "Bartholomew Privatename"
PHONE = "+8613912345678"
EMAIL = "bart.private@example-secret.com"
BODY = "Secret body text: my neighbour's dog ate the warranty card"
NAME_UTF8 = NAME.encode()


def base_message():
    return {
        "type": "complaint.submit", "v": 1, "id": str(uuid.uuid4()),
        "at": harness.now_rfc3339(), "source": "e2e-bad",
        "data": {
            "external_id": f"BAD-{uuid.uuid4()}", "channel": "web",
            "customer": {"id": "CUST-1", "name": NAME, "phone": PHONE, "email": EMAIL},
            "subject": "Bad input", "body": BODY, "demand": "none", "demand_type": "other",
            "target": {"product": "P-1"}, "occurred_at": "2026-11-24T21:40:00Z",
            "location": "Somewhere",
            "attachments": [{"name": "a.jpg", "url": "https://files.example.com/a.jpg",
                             "size": 10}],
        },
    }


def dump(msg):
    return json.dumps(msg, ensure_ascii=False).encode("utf-8")


def mutate(fn):
    """Frames of the base message changed by fn(msg) (fn may return a replacement)."""
    def build():
        msg = base_message()
        out = fn(msg)
        return [dump(out if out is not None else msg)]
    return build


def text(fn):
    """Frames of the base message's JSON text (bytes) changed by fn(bytes)."""
    def build():
        return [fn(dump(base_message()))]
    return build


def raw(*frames):
    return lambda: list(frames)


def setp(path, value):
    """fn setting msg[path...] = value (a path of keys and indexes)."""
    def fn(msg):
        node = msg
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return fn


def delp(path):
    def fn(msg):
        node = msg
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return fn


def nested(depth):
    return "[" * depth + "]" * depth


def big_frame():
    msg = base_message()
    msg["data"]["extra"] = "x" * (1024 * 1024)
    return [dump(msg)]


# (id, frames builder, code, path, correlation_id expected)
BAD = [
    # the frame as a whole
    ("not_json", raw(b"this is not json"), "invalid", "", False),
    ("empty_frame", raw(b""), "invalid", "", False),
    ("multi_frame", lambda: [dump(base_message()), dump(base_message())], "invalid", "", False),
    ("json_array", raw(b"[1, 2]"), "invalid", "", False),
    ("json_number", raw(b"42"), "invalid", "", False),
    ("raw_nul_byte", text(lambda b: b.replace(b"Secret body", b"Secret\x00body")), "invalid", "",
     False),
    ("raw_control_char", text(lambda b: b.replace(b"Secret body", b"Secret\x01body")), "invalid",
     "", False),
    ("nesting_100", mutate(setp(["data", "extra"], "@NEST@")), "invalid", "", False),
    ("nesting_100000", mutate(setp(["data", "extra"], "@NEST@")), "invalid", "", False),
    ("trailing_garbage", text(lambda b: b + b" garbage"), "invalid", "", False),
    ("two_json_values", text(lambda b: b + b + b"\n"), "invalid", "", False),
    ("leading_zero_number", text(lambda b: b.replace(b'"v": 1', b'"v": 01')), "invalid", "",
     False),
    ("nan_number", text(lambda b: b.replace(b'"v": 1', b'"v": NaN')), "invalid", "", False),
    ("bad_escape", text(lambda b: b.replace(b"Secret body", b"Secret \\x body")), "invalid", "",
     False),
    ("frame_over_1MiB", big_frame, "too_large", "", False),
    # strict JSON problems inside a field: the path names it
    ("invalid_utf8_body", text(lambda b: b.replace(b"Secret body", b"Secret \xc3\x28 body")),
     "invalid", "data.body", False),
    ("invalid_utf8_surrogate_bytes_body",
     text(lambda b: b.replace(b"Secret body", b"Secret \xed\xa0\x80 body")), "invalid",
     "data.body", False),
    ("invalid_utf8_customer_name",
     text(lambda b: b.replace(NAME_UTF8, NAME_UTF8[:5] + b"\xff\xfe" + NAME_UTF8[5:])),
     "invalid", "data.customer.name", False),
    ("nul_escape_body", text(lambda b: b.replace(b"Secret body", b"Secret\\u0000body")),
     "invalid", "data.body", False),
    ("lone_high_surrogate_body", text(lambda b: b.replace(b"Secret body", b"Secret\\ud800body")),
     "invalid", "data.body", False),
    ("lone_low_surrogate_subject", text(lambda b: b.replace(b"Bad input", b"Bad \\udc00input")),
     "invalid", "data.subject", False),
    ("huge_number_v_1e400", text(lambda b: b.replace(b'"v": 1', b'"v": 1e400')), "invalid", "v",
     False),
    ("huge_number_v_1e1000000", text(lambda b: b.replace(b'"v": 1', b'"v": 1e1000000')),
     "invalid", "v", False),
    ("huge_integer_attachment_size",
     text(lambda b: b.replace(b'"size": 10', b'"size": 123456789012345678901234567890')),
     "invalid", "data.attachments[0].size", False),
    ("huge_number_unknown_field", mutate(setp(["data", "score"], "@HUGE@")), "invalid",
     "data.score", False),
    ("duplicate_key_body", text(lambda b: b.replace(b'"body": ', b'"body": "twice", "body": ')),
     "invalid", "data.body", False),
    ("duplicate_key_type",
     text(lambda b: b.replace(b'"type": ', b'"type": "complaint.submit", "type": ', 1)),
     "invalid", "type", False),
    # the envelope
    ("type_other", mutate(setp(["type"], "complaint.other")), "invalid", "type", True),
    ("type_missing", mutate(delp(["type"])), "invalid", "type", True),
    ("type_empty", mutate(setp(["type"], "")), "invalid", "type", True),
    ("type_number", mutate(setp(["type"], 5)), "invalid", "type", True),
    ("v_2", mutate(setp(["v"], 2)), "invalid", "v", True),
    ("v_string", mutate(setp(["v"], "1")), "invalid", "v", True),
    ("v_missing", mutate(delp(["v"])), "invalid", "v", True),
    ("v_fraction", mutate(setp(["v"], 1.5)), "invalid", "v", True),
    ("id_missing", mutate(delp(["id"])), "invalid", "id", False),
    ("id_number", mutate(setp(["id"], 7)), "invalid", "id", False),
    ("id_empty", mutate(setp(["id"], "")), "invalid", "id", False),
    ("id_129_chars", mutate(setp(["id"], "i" * 129)), "too_large", "id", False),
    ("source_missing", mutate(delp(["source"])), "invalid", "source", True),
    ("source_array", mutate(setp(["source"], ["crm"])), "invalid", "source", True),
    ("source_129_chars", mutate(setp(["source"], "s" * 129)), "too_large", "source", True),
    ("at_not_rfc3339", mutate(setp(["at"], "yesterday at noon")), "invalid", "at", True),
    ("at_number", mutate(setp(["at"], 1764042718)), "invalid", "at", True),
    ("data_missing", mutate(delp(["data"])), "invalid", "data", True),
    ("data_string", mutate(setp(["data"], "complaint")), "invalid", "data", True),
    ("data_array", mutate(setp(["data"], [1])), "invalid", "data", True),
    ("data_null", mutate(setp(["data"], None)), "invalid", "data", True),
    # required fields of data
    ("channel_missing", mutate(delp(["data", "channel"])), "invalid", "data.channel", True),
    ("customer_missing", mutate(delp(["data", "customer"])), "invalid", "data.customer", True),
    ("body_missing", mutate(delp(["data", "body"])), "invalid", "data.body", True),
    ("customer_name_only", mutate(setp(["data", "customer"], {"name": NAME})), "invalid",
     "data.customer", True),
    ("customer_contacts_empty",
     mutate(setp(["data", "customer"], {"id": "", "phone": "", "email": "", "name": NAME})),
     "invalid", "data.customer", True),
    # enumerations
    ("channel_unknown", mutate(setp(["data", "channel"], "fax")), "invalid", "data.channel", True),
    ("customer_type_unknown", mutate(setp(["data", "customer", "type"], "alien")), "invalid",
     "data.customer.type", True),
    ("demand_type_unknown", mutate(setp(["data", "demand_type"], "money")), "invalid",
     "data.demand_type", True),
    # sizes
    ("body_65537_bytes", mutate(setp(["data", "body"], "b" * 65537)), "too_large", "data.body",
     True),
    ("body_65538_bytes_of_cjk", mutate(setp(["data", "body"], "中" * 21846)), "too_large",
     "data.body", True),
    ("subject_201_chars", mutate(setp(["data", "subject"], "s" * 201)), "too_large",
     "data.subject", True),
    ("demand_2001_chars", mutate(setp(["data", "demand"], "d" * 2001)), "too_large",
     "data.demand", True),
    ("external_id_129_chars", mutate(setp(["data", "external_id"], "e" * 129)), "too_large",
     "data.external_id", True),
    ("location_201_chars", mutate(setp(["data", "location"], "l" * 201)), "too_large",
     "data.location", True),
    ("customer_name_201_chars", mutate(setp(["data", "customer", "name"], "n" * 201)),
     "too_large", "data.customer.name", True),
    ("target_product_201_chars", mutate(setp(["data", "target", "product"], "p" * 201)),
     "too_large", "data.target.product", True),
    ("attachments_21", mutate(setp(["data", "attachments"], [
        {"name": f"{i}.jpg", "url": f"https://files.example.com/{i}.jpg"} for i in range(21)])),
     "too_large", "data.attachments", True),
    ("attachment_url_2049_chars",
     mutate(setp(["data", "attachments", 0, "url"], "https://e.example.com/" + "u" * 2027)),
     "too_large", "data.attachments[0].url", True),
    # values
    ("body_empty", mutate(setp(["data", "body"], "")), "invalid", "data.body", True),
    ("body_only_whitespace", mutate(setp(["data", "body"], " \t\n\u3000\u00a0")), "invalid",
     "data.body", True),
    ("external_id_empty", mutate(setp(["data", "external_id"], "")), "invalid",
     "data.external_id", True),
    ("attachment_without_url", mutate(delp(["data", "attachments", 0, "url"])), "invalid",
     "data.attachments[0].url", True),
    ("attachment_without_name", mutate(delp(["data", "attachments", 0, "name"])), "invalid",
     "data.attachments[0].name", True),
    ("attachment_url_ftp", mutate(setp(["data", "attachments", 0, "url"], "ftp://e.com/a")),
     "invalid", "data.attachments[0].url", True),
    ("attachment_url_no_host", mutate(setp(["data", "attachments", 0, "url"], "https:///a")),
     "invalid", "data.attachments[0].url", True),
    ("attachment_url_space",
     mutate(setp(["data", "attachments", 0, "url"], "https://e.example.com/a b.jpg")),
     "invalid", "data.attachments[0].url", True),
    ("attachment_size_negative", mutate(setp(["data", "attachments", 0, "size"], -1)), "invalid",
     "data.attachments[0].size", True),
    ("attachment_size_fraction", mutate(setp(["data", "attachments", 0, "size"], 1.5)),
     "invalid", "data.attachments[0].size", True),
    ("occurred_at_space_separated",
     mutate(setp(["data", "occurred_at"], "2026-11-24 21:40")), "invalid", "data.occurred_at",
     True),
    ("occurred_at_no_offset", mutate(setp(["data", "occurred_at"], "2026-11-24T21:40:00")),
     "invalid", "data.occurred_at", True),
    ("occurred_at_month_13", mutate(setp(["data", "occurred_at"], "2026-13-01T00:00:00Z")),
     "invalid", "data.occurred_at", True),
    ("email_without_at", mutate(setp(["data", "customer", "email"], "bart.example.com")),
     "invalid", "data.customer.email", True),
    ("email_without_dot_in_domain", mutate(setp(["data", "customer", "email"], "bart@localhost")),
     "invalid", "data.customer.email", True),
    ("phone_letters", mutate(setp(["data", "customer", "phone"], "call me maybe")), "invalid",
     "data.customer.phone", True),
    ("phone_two_digits", mutate(setp(["data", "customer", "phone"], "+12")), "invalid",
     "data.customer.phone", True),
    ("lang_one_letter", mutate(setp(["data", "customer", "lang"], "z")), "invalid",
     "data.customer.lang", True),
    ("lang_underscore", mutate(setp(["data", "customer", "lang"], "zh_CN")), "invalid",
     "data.customer.lang", True),
]

# Wrong JSON types, field by field.
WRONG_TYPES = [
    (["data", "external_id"], 5), (["data", "channel"], 1), (["data", "customer"], "C-1"),
    (["data", "customer", "id"], 5), (["data", "customer", "name"], 5),
    (["data", "customer", "phone"], 13800000000), (["data", "customer", "email"], True),
    (["data", "customer", "type"], 5), (["data", "customer", "lang"], ["zh"]),
    (["data", "subject"], 5), (["data", "body"], 5), (["data", "body"], ["text"]),
    (["data", "demand"], {}), (["data", "demand_type"], 5), (["data", "target"], "P-1"),
    (["data", "target", "product"], 5), (["data", "target", "order_id"], 5),
    (["data", "target", "store"], []), (["data", "target", "employee"], 5),
    (["data", "target", "department"], False),
    (["data", "occurred_at"], 5), (["data", "location"], 5), (["data", "attachments"], {}),
    (["data", "attachments", 0], "a.jpg"), (["data", "attachments", 0, "name"], 5),
    (["data", "attachments", 0, "url"], 5), (["data", "attachments", 0, "size"], "10"),
]


def path_text(path):
    out = ""
    for k in path:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


for _path, _value in WRONG_TYPES:
    _where = _path[:-1] + [f"[{_path[-1]}]"] if isinstance(_path[-1], int) else _path
    BAD.append((f"wrong_type_{path_text(_path).replace('.', '_')}_{type(_value).__name__}",
                mutate(setp(_path, _value)), "invalid", path_text(_path), True))


def _expand(frames):
    """Builders put placeholders where the JSON would be unwieldy to write as Python."""
    out = []
    for f in frames:
        f = f.replace(b'"@HUGE@"', b"-1e400")
        out.append(f)
    return out


def build_frames(case_id, builder):
    frames = _expand(builder())
    if case_id == "nesting_100":
        frames = [frames[0].replace(b'"@NEST@"', nested(98).encode())]
    elif case_id == "nesting_100000":
        frames = [frames[0].replace(b'"@NEST@"', nested(100000).encode())]
    return frames


@pytest.fixture(scope="class")
def bad_input_plaint(pg_admin_url, tmp_path_factory):
    """One intake for every bad-input case: it must answer them all and store nothing."""
    p = harness.Plaint(pg_admin_url, tmp_path_factory.mktemp("bad_input"), "bad_input")
    p.remember_private(NAME, PHONE, EMAIL, BODY)
    p.intake = p.start_intake()
    yield p
    p.teardown()


class TestBadInput:
    @pytest.mark.parametrize("case_id,builder,code,path,corr", BAD, ids=[b[0] for b in BAD])
    def test_bad_input_gets_error_and_nothing_is_stored(self, bad_input_plaint, case_id, builder,
                                                        code, path, corr):
        plaint = bad_input_plaint
        frames = build_frames(case_id, builder)
        msg_id = None
        try:
            parsed = json.loads(frames[0]) if len(frames) == 1 else None
            msg_id = parsed.get("id") if isinstance(parsed, dict) else None
        except (ValueError, RecursionError):
            pass
        reply = plaint.send_raw(frames, timeout=10)
        assert reply is not None, f"no reply to {case_id}; intake log:\n{plaint.intake.tail()}"
        assert len(reply) == 1
        text_reply = reply[0].decode("utf-8")
        msg = json.loads(text_reply)
        validate(msg, "error")
        assert msg["type"] == "error", msg
        assert msg["data"]["code"] == code, msg
        paths = [e["path"] for e in msg["data"]["errors"]]
        assert path in paths, f"no error with path {path!r}: {msg['data']['errors']}"
        if corr:
            assert msg.get("correlation_id") == msg_id, msg
        elif "correlation_id" in msg:
            assert isinstance(msg_id, str) and msg["correlation_id"] == msg_id, msg
        assert_no_private(text_reply, plaint)
        assert plaint.sql("SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM events)") \
            == [(0, 0)]

    def test_every_problem_is_listed(self, bad_input_plaint):
        plaint = bad_input_plaint
        msg = base_message()
        msg["data"]["channel"] = "fax"
        msg["data"]["customer"]["email"] = "@example.com"
        msg["data"]["subject"] = "s" * 300
        msg["data"]["attachments"][0]["url"] = "ftp://x.example.com/a"
        reply = json.loads(plaint.send_raw([dump(msg)])[0])
        validate(reply, "error")
        # A size problem among others: too_large wins, and every problem is listed.
        assert reply["data"]["code"] == "too_large"
        assert {e["path"] for e in reply["data"]["errors"]} == {
            "data.channel", "data.customer.email", "data.subject", "data.attachments[0].url"}
        assert "4 problems" in reply["data"]["message"]
        assert reply["correlation_id"] == msg["id"]

    def test_frame_over_8MiB_drops_the_connection_only(self, bad_input_plaint):
        plaint = bad_input_plaint
        assert plaint.send_raw([b"x" * (8 * 1024 * 1024 + 1)], dealer=True, timeout=1) is None
        assert plaint.intake.alive()

    def test_afterwards_nothing_is_stored_and_intake_still_answers(self, bad_input_plaint):
        plaint = bad_input_plaint
        assert count_cases(plaint) == 0
        assert plaint.sql("SELECT count(*) FROM events")[0][0] == 0
        assert plaint.intake.alive()
        assert_accepted(plaint.submit(minimal_complaint(plaint)))
        assert count_cases(plaint) == 1


# ---------------------------------------------------------------------------- client sockets


def test_req_and_dealer_clients_are_answered(plaint):
    plaint.start_intake()
    data = minimal_complaint(plaint)
    for kind in harness.SOCKET_KINDS:
        msg_id = str(uuid.uuid4())
        reply = plaint.submit(data, external_id=f"SOCK-{kind}", socket_type=kind, msg_id=msg_id)
        assert_accepted(reply, msg_id, duplicate=False)

    # Raw framing: a DEALER with the delimiter gets [empty, JSON]; without it, [JSON].
    msg = plaint.envelope(data, external_id="SOCK-RAW-1")
    reply = plaint.send_raw([b"", dump(msg)], dealer=True)
    assert len(reply) == 2 and reply[0] == b"", reply
    assert_accepted(json.loads(reply[1]), msg["id"])
    msg = plaint.envelope(data, external_id="SOCK-RAW-2")
    reply = plaint.send_raw([dump(msg)], dealer=True)
    assert len(reply) == 1, reply
    assert_accepted(json.loads(reply[0]), msg["id"])
    assert count_cases(plaint) == 5


def test_dealer_pipelines_requests_and_matches_by_correlation_id(plaint):
    plaint.start_intake()
    data = minimal_complaint(plaint)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{plaint.ports['submit']}")
    try:
        sent = {}
        for i in range(50):
            if i % 10 == 9:
                msg = base_message()
                msg["data"]["channel"] = "fax"  # answered at once, ahead of the good ones
                plaint.remember_private(NAME, PHONE, EMAIL, BODY)
            else:
                msg = plaint.envelope(data, external_id=f"PIPE-{i}")
            sent[msg["id"]] = msg
            sock.send_multipart([b"", dump(msg)])
        replies = {}
        deadline = time.monotonic() + timeout(10)
        while len(replies) < len(sent) and sock.poll(
                max(1, int((deadline - time.monotonic()) * 1000))):
            empty, payload = sock.recv_multipart()
            assert empty == b""
            reply = json.loads(payload)
            assert reply["correlation_id"] not in replies, "two replies to one request"
            replies[reply["correlation_id"]] = reply
        assert set(replies) == set(sent)
        for msg_id, reply in replies.items():
            want = "error" if sent[msg_id]["data"]["channel"] == "fax" else "complaint.accepted"
            assert reply["type"] == want, reply
    finally:
        sock.close(linger=0)
    assert count_cases(plaint) == 45


def test_a_complaint_waiting_at_startup_is_accepted(plaint):
    """A client that sent its complaint before intake (re)started, as clients do during a
    restart, gets it acknowledged once intake is up: the database is fine all along."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 1)
    sock.connect(f"tcp://127.0.0.1:{plaint.ports['submit']}")
    try:
        msg = plaint.envelope(minimal_complaint(plaint), external_id="STARTUP-1")
        sock.send_multipart([b"", dump(msg)])  # queued until intake binds
        plaint.start_daemon("plaint-intake")
        assert sock.poll(int(timeout(10) * 1000)), "no reply"
        reply = json.loads(sock.recv_multipart()[1])
    finally:
        sock.close(linger=0)
    assert_accepted(reply, msg["id"])


# ---------------------------------------------------------------------------- idempotency


def test_same_external_id_twice_gives_the_same_case(plaint):
    plaint.start_intake()
    first = complaint(plaint)
    second = complaint(plaint)  # other content: the first submission wins
    a = assert_accepted(plaint.submit(first, external_id="IDEM-1"), duplicate=False)
    b = assert_accepted(plaint.submit(second, external_id="IDEM-1"), duplicate=True)
    assert (a["case_id"], a["case_no"]) == (b["case_id"], b["case_no"])
    assert plaint.sql("SELECT body FROM cases") == [(first["body"],)]
    # The key is (source, external_id), compared exactly.
    c = assert_accepted(plaint.submit(first, external_id="IDEM-1", source="other-crm"),
                        duplicate=False)
    d = assert_accepted(plaint.submit(first, external_id="idem-1"), duplicate=False)
    assert len({a["case_id"], c["case_id"], d["case_id"]}) == 3
    # Without external_id there is no deduplication.
    e = assert_accepted(plaint.submit(first), duplicate=False)
    f = assert_accepted(plaint.submit(first), duplicate=False)
    assert e["case_id"] != f["case_id"]
    assert count_cases(plaint) == 5
    plaint.wait_until(lambda: plaint.sql(
        "SELECT count(*) FROM events WHERE type = 'case.received' AND seq IS NOT NULL")[0][0] == 5,
        10, "one case.received per case")


def race(plaint, external_id, ports_list, n=20):
    """n threads submit one external_id at once, round-robin over intakes; returns replies."""
    data = complaint(plaint)
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(timeout(10))
        return plaint.submit(data, external_id=external_id, timeout=10,
                             port=ports_list[i % len(ports_list)])

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def check_race(plaint, external_id, replies):
    datas = [assert_accepted(r) for r in replies]
    assert len({d["case_id"] for d in datas}) == 1, "one key gave several cases"
    assert len({d["case_no"] for d in datas}) == 1
    assert sum(1 for d in datas if d["duplicate"] is False) == 1, \
        f"want exactly one duplicate=false: {[d['duplicate'] for d in datas]}"
    assert plaint.sql("SELECT count(*) FROM cases WHERE external_id = %s", external_id) == [(1,)]
    assert plaint.sql("SELECT count(*) FROM events e JOIN cases c USING (case_id)"
                      " WHERE c.external_id = %s", external_id) == [(1,)]


def test_concurrent_submits_of_one_external_id_give_one_case(plaint):
    plaint.start_intake()
    for round_ in range(3):
        ext = f"RACE-{round_}"
        check_race(plaint, ext, race(plaint, ext, [plaint.ports["submit"]]))
    assert count_cases(plaint) == 3


def test_concurrent_submits_across_two_intakes_give_one_case(plaint):
    plaint.start_intake()
    second = plaint.new_ports()
    plaint.start_intake(**plaint.endpoints(second))
    ports = [plaint.ports["submit"], second["submit"]]
    for round_ in range(5):
        ext = f"RACE2-{round_}"
        check_race(plaint, ext, race(plaint, ext, ports))
    assert count_cases(plaint) == 5


# ---------------------------------------------------------------------------- crashes and restarts


class Client(threading.Thread):
    """Submits complaints with unique external_ids until told to stop; records what was acked."""

    def __init__(self, plaint, n, data, reply_timeout=2.0):
        super().__init__(daemon=True)
        self.plaint, self.n, self.data, self.reply_timeout = plaint, n, data, reply_timeout
        self.stop_flag = threading.Event()
        self.acked = {}       # external_id -> case_id
        self.unacked = []     # external_ids without complaint.accepted, in order
        self.noreply = []     # external_ids without any reply
        self.errors = []      # every error reply
        self.failure = None

    def run(self):
        try:
            i = 0
            while not self.stop_flag.is_set():
                ext = f"C{self.n}-{i:05d}"
                i += 1
                try:
                    reply = self.plaint.submit(self.data, external_id=ext,
                                               timeout=self.reply_timeout)
                except NoReply:
                    self.unacked.append(ext)
                    self.noreply.append(ext)
                    continue
                if reply["type"] == "complaint.accepted":
                    self.acked[ext] = reply["data"]["case_id"]
                else:
                    self.errors.append(reply)
                    self.unacked.append(ext)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.failure = e


def acked_total(clients):
    return sum(len(c.acked) for c in clients)


def test_kill9_during_submits_loses_nothing_and_retries_duplicate_nothing(plaint):
    intake = plaint.start_intake()
    data = complaint(plaint)
    clients = [Client(plaint, n, data) for n in range(8)]
    for c in clients:
        c.start()
    plaint.wait_until(lambda: acked_total(clients) >= 120, 20, "clients got 120 acks")
    intake.kill9()
    for c in clients:
        c.stop_flag.set()
    for c in clients:
        c.join(timeout(30))
        assert not c.is_alive() and c.failure is None, c.failure
    for c in clients:
        for e in c.errors:
            assert e["data"]["code"] == "unavailable", e

    intake = plaint.start_intake()
    stored = dict(plaint.sql("SELECT external_id, case_id::text FROM cases"))
    for c in clients:
        for ext, case_id in c.acked.items():
            assert stored.get(ext) == case_id, f"acked {ext} is not in the database"

    # Each client resubmits its unacknowledged complaints with the same key until acked.
    def resubmit(c):
        for ext in c.unacked:
            deadline = time.monotonic() + timeout(20)
            while True:
                try:
                    reply = plaint.submit(c.data, external_id=ext, timeout=5)
                    if reply["type"] == "complaint.accepted":
                        c.acked[ext] = reply["data"]["case_id"]
                        break
                    assert reply["data"]["code"] == "unavailable", reply
                except NoReply:
                    pass
                assert time.monotonic() < deadline, f"{ext} not acked after restart"
                time.sleep(0.1)

    unacked = sum(len(c.unacked) for c in clients)
    committed_unacked = sum(1 for c in clients for ext in c.unacked if ext in stored)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(resubmit, clients))
    submitted = {ext for c in clients for ext in list(c.acked) + c.unacked}
    print(f"{len(submitted)} complaints; {unacked} unacknowledged at the kill, of which "
          f"{committed_unacked} had been committed")
    rows = plaint.sql("SELECT external_id, count(*) FROM cases GROUP BY external_id")
    counts = dict(rows)
    assert set(counts) == submitted, "lost or unexpected cases"
    assert all(v == 1 for v in counts.values()), "duplicate cases"
    for c in clients:
        for ext, case_id in c.acked.items():
            assert dict(plaint.sql("SELECT external_id, case_id::text FROM cases"
                                   " WHERE external_id = %s", ext))[ext] == case_id
    assert intake.alive()


class PipelineClient(threading.Thread):
    """A DEALER that keeps up to `window` requests outstanding, matching replies by
    correlation_id, until told to stop; then it waits for the replies still due."""

    def __init__(self, plaint, n, data, window=32):
        super().__init__(daemon=True)
        self.plaint, self.n, self.data, self.window = plaint, n, data, window
        self.stop_flag = threading.Event()
        self.pending = {}     # msg id -> external_id
        self.acked = {}
        self.errors = []
        self.failure = None

    def run(self):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{self.plaint.ports['submit']}")
        try:
            i = 0
            quiet_until = None
            while True:
                if self.stop_flag.is_set():
                    quiet_until = quiet_until or time.monotonic() + timeout(2)
                    if time.monotonic() > quiet_until or not self.pending:
                        break
                elif len(self.pending) < self.window:
                    msg = self.plaint.envelope(self.data, external_id=f"P{self.n}-{i:05d}")
                    i += 1
                    self.pending[msg["id"]] = msg["data"]["external_id"]
                    sock.send_multipart([b"", json.dumps(msg).encode()])
                    continue
                if sock.poll(50):
                    _, payload = sock.recv_multipart()
                    reply = json.loads(payload)
                    ext = self.pending.pop(reply["correlation_id"])
                    if reply["type"] == "complaint.accepted":
                        self.acked[ext] = reply["data"]["case_id"]
                    else:
                        self.errors.append(reply)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.failure = e
        finally:
            sock.close(linger=0)

    @property
    def unanswered(self):
        return list(self.pending.values())


def check_sigterm_run(plaint, intake, clients):
    """SIGTERM while the clients submit; then every reply is `complaint.accepted` (and stored)
    or `unavailable`, and a request never answered was never stored."""
    plaint.wait_until(lambda: acked_total(clients) >= 150, 20, "clients got 150 acks")
    t0 = time.monotonic()
    rc = intake.stop()  # the clients go on submitting meanwhile
    elapsed = time.monotonic() - t0
    for c in clients:
        c.stop_flag.set()
    for c in clients:
        c.join(timeout(30))
        assert not c.is_alive() and c.failure is None, c.failure
    assert rc == 0, f"intake exited {rc} on SIGTERM; log:\n{intake.tail()}"
    assert elapsed < 10
    stored = dict(plaint.sql("SELECT external_id, case_id::text FROM cases"))
    unanswered = [ext for c in clients if isinstance(c, PipelineClient) for ext in c.unanswered]
    unanswered += [ext for c in clients if isinstance(c, Client) for ext in c.noreply]
    for c in clients:
        for ext, case_id in c.acked.items():
            assert stored.get(ext) == case_id, f"acked {ext} is not in the database"
        for e in c.errors:
            validate(e, "error")
            assert e["data"]["code"] == "unavailable", e
    # Intake answers every request it has read; one it never read was never stored.
    assert not [ext for ext in unanswered if ext in stored], \
        "stored complaints whose reply never came"
    assert '"msg":"stopped"' in intake.log_text()
    print(f"SIGTERM: exit {rc} after {elapsed * 1000:.0f} ms; {acked_total(clients)} acked, "
          f"{sum(len(c.errors) for c in clients)} errors, {len(unanswered)} unanswered")


def test_sigterm_with_submits_in_flight(plaint):
    intake = plaint.start_intake()
    data = complaint(plaint)
    clients = [Client(plaint, n, data, reply_timeout=2) for n in range(8)]
    for c in clients:
        c.start()
    check_sigterm_run(plaint, intake, clients)


def test_sigterm_with_pipelined_dealers_in_flight(plaint):
    """As above, with DEALERs that keep 32 requests each in flight: batches are in progress and
    requests are queued unread when the signal comes."""
    # See lsan-libzmq.supp: an intermittent leak report inside libzmq (4.3.4) at this shutdown,
    # of messages intake never received; suppressed for this test's intake only.
    intake = plaint.start_intake(
        LSAN_OPTIONS=f"suppressions={harness.ROOT / 'tests/e2e/lsan-libzmq.supp'}")
    data = complaint(plaint)
    clients = [Client(plaint, n, data, reply_timeout=2) for n in range(4)]
    clients += [PipelineClient(plaint, n, data) for n in range(3)]
    for c in clients:
        c.start()
    check_sigterm_run(plaint, intake, clients)


# ---------------------------------------------------------------------------- PostgreSQL outages


def submit_until_accepted(plaint, data, external_id, within):
    deadline = time.monotonic() + timeout(within)
    last = None
    while time.monotonic() < deadline:
        try:
            last = plaint.submit(data, external_id=external_id, timeout=5)
            if last["type"] == "complaint.accepted":
                return last["data"]
            assert last["data"]["code"] == "unavailable", last
        except NoReply:
            last = "no reply"
        time.sleep(0.1)
    pytest.fail(f"{external_id} not accepted within {timeout(within):.0f} s; last: {last}")


def test_postgres_stopped_then_started(private_pg, plaint_factory):
    plaint = plaint_factory(private_pg.admin_url, drop=False)
    intake = plaint.start_intake()
    data = complaint(plaint)
    assert_accepted(plaint.submit(data, external_id="PG-0"))

    private_pg.stop()
    t0 = time.monotonic()
    try:
        reply = plaint.submit(data, external_id="PG-1", timeout=10)
    except NoReply:
        pytest.fail("no reply within 10 s while PostgreSQL is down")
    elapsed = time.monotonic() - t0
    validate(reply, "error")
    assert reply["data"]["code"] == "unavailable", reply
    assert reply["data"]["errors"] == []
    assert elapsed < timeout(5), f"unavailable came after {elapsed:.2f} s"
    print(f"unavailable after {elapsed * 1000:.0f} ms with PostgreSQL stopped")

    private_pg.start()
    t0 = time.monotonic()
    got = submit_until_accepted(plaint, data, "PG-1", within=10)
    print(f"accepted {time.monotonic() - t0:.2f} s after PostgreSQL started again")
    assert intake.alive(), "intake must survive the outage without a restart"
    assert got["duplicate"] is False
    assert plaint.sql("SELECT external_id FROM cases ORDER BY 1") == [("PG-0",), ("PG-1",)]
    plaint.wait_until(lambda: plaint.sql("SELECT count(*) FROM events WHERE seq IS NOT NULL")
                      == [(2,)], 10, "both events sequenced after the restart")


def test_postgres_restarted_while_idle(private_pg, plaint_factory):
    plaint = plaint_factory(private_pg.admin_url, drop=False)
    intake = plaint.start_intake()
    data = complaint(plaint)
    assert_accepted(plaint.submit(data, external_id="IDLE-1"))
    # Every connection (the batch ones and the hub's) logs "database ready"
    # once at start, and again when it reconnects by itself.
    ready = intake.log_text().count('"msg":"database ready"')
    private_pg.stop()
    private_pg.start()
    intake.wait_log('"msg":"database ready"', 10, count=2 * ready)
    assert_accepted(plaint.submit(data, external_id="IDLE-2"), duplicate=False)
    assert count_cases(plaint) == 2


def test_postgres_paused_gives_unavailable_within_intake_timeout(private_pg, plaint_factory):
    """A database that hangs (not down: no connection error) still gets an answer in time."""
    plaint = plaint_factory(private_pg.admin_url, drop=False)
    intake = plaint.start_intake(PLAINT_INTAKE_TIMEOUT="2s", PLAINT_INTAKE_QUEUE_MAX=4)
    data = complaint(plaint)
    assert_accepted(plaint.submit(data, external_id="PAUSE-0"))
    pids = private_pg.pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        try:
            reply = plaint.submit(data, external_id="PAUSE-1", timeout=10)
        except NoReply:
            pytest.fail("no reply within 10 s while PostgreSQL hangs")
        elapsed = time.monotonic() - t0
        # A burst beyond the queue: every request still gets its answer in time, none accepted.
        burst = []
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(plaint.submit, data, external_id=f"PAUSE-B{i}", timeout=10)
                       for i in range(12)]
            burst = [f.result() for f in futures]
        burst_elapsed = time.monotonic() - t0 - elapsed
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
    assert elapsed < 2 + timeout(1), f"unavailable after {elapsed:.2f} s, timeout is 2 s"
    print(f"unavailable after {elapsed * 1000:.0f} ms with PostgreSQL paused")
    assert all(r["type"] == "error" and r["data"]["code"] == "unavailable" for r in burst), burst
    assert burst_elapsed < 2 + timeout(1.5), f"burst answered after {burst_elapsed:.2f} s"
    submit_until_accepted(plaint, data, "PAUSE-1", within=15)
    assert intake.alive()
    rows = dict(plaint.sql("SELECT external_id, count(*) FROM cases GROUP BY 1"))
    assert rows.get("PAUSE-0") == 1 and rows.get("PAUSE-1") == 1
    # A burst complaint answered `unavailable` may still have been committed (the protocol
    # allows it when the connection broke after the commit was sent), but only once.
    assert all(v == 1 for v in rows.values())


# ---------------------------------------------------------------------------- settings


def run_intake(plaint, *args, **extra):
    return subprocess.run([harness.binary_path("plaint-intake"), *args], env=plaint.env(**extra),
                          capture_output=True, text=True, timeout=timeout(30),
                          cwd=str(harness.ROOT))


def test_help_and_version(plaint):
    res = run_intake(plaint, "--help")
    assert res.returncode == 0, res.stderr
    for name in ("PLAINT_DATABASE_URL", "PLAINT_SUBMIT_ENDPOINT", "PLAINT_EVENTS_ENDPOINT",
                 "PLAINT_LOG_LEVEL", "PLAINT_CONFIG_DIR", "PLAINT_CLASSIFY_ENDPOINT",
                 "PLAINT_ROUTE_ENDPOINT", "PLAINT_INTAKE_TIMEOUT", "PLAINT_INTAKE_BATCH_MAX"):
        assert name in res.stdout, f"--help does not list {name}"
    res = run_intake(plaint, "--version")
    assert res.returncode == 0, res.stderr
    assert re.match(r"^plaint-intake \d+\.\d+\.\d+", res.stdout), res.stdout
    res = run_intake(plaint, "--frobnicate")
    assert res.returncode != 0 and "--frobnicate" in res.stderr


def test_bad_settings_exit_78_naming_every_variable(plaint):
    res = run_intake(plaint, PLAINT_SUBMIT_ENDPOINT="tcp:/*:7101", PLAINT_INTAKE_TIMEOUT="5x")
    assert res.returncode == 78, (res.returncode, res.stderr)
    assert "PLAINT_SUBMIT_ENDPOINT" in res.stderr and "PLAINT_INTAKE_TIMEOUT" in res.stderr
    assert "tcp:/*:7101" in res.stderr and "5x" in res.stderr


@pytest.mark.parametrize("name,value", [
    ("PLAINT_EVENTS_ENDPOINT", "udp://127.0.0.1:1"),
    ("PLAINT_LOG_LEVEL", "loud"),
    ("PLAINT_INTAKE_DB_CONNECTIONS", "0"),
    ("PLAINT_INTAKE_BATCH_MAX", "many"),
    ("PLAINT_DB_WAIT", "-1s"),
])
def test_one_bad_setting_exits_78(plaint, name, value):
    res = run_intake(plaint, **{name: value})
    assert res.returncode == 78, (res.returncode, res.stderr)
    assert name in res.stderr


def test_unmigrated_database_is_refused_naming_both_versions(plaint):
    empty = plaint.create_database(migrate=False)
    res = run_intake(plaint, PLAINT_DATABASE_URL=empty, PLAINT_DB_WAIT="5s")
    assert res.returncode != 0
    assert "version 0" in res.stderr, res.stderr
    assert f"version {plaint.schema_version}" in res.stderr, res.stderr


def test_older_and_newer_schema_are_refused(plaint):
    need = plaint.schema_version
    assert need and need >= 1
    plaint.sql("DELETE FROM plaint_schema WHERE version = %s", need)
    res = run_intake(plaint)
    assert res.returncode != 0
    assert f"version {need - 1}" in res.stderr and f"version {need}" in res.stderr, res.stderr
    plaint.sql("INSERT INTO plaint_schema (version, name) VALUES (%s, 'back'), (%s, 'future')",
               need, need + 1)
    res = run_intake(plaint)
    assert res.returncode != 0
    assert f"version {need + 1}" in res.stderr and f"version {need}" in res.stderr, res.stderr


# ---------------------------------------------------------------------------- plaintctl


def versions(plaint, url):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM plaint_schema ORDER BY version")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_ctl_migrate_twice_and_concurrently(plaint):
    need = plaint.schema_version
    url = plaint.create_database(migrate=False)
    first = plaint.ctl("migrate", db_url=url)
    second = plaint.ctl("migrate", db_url=url)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    assert f"version {need} ({need} migrations applied now)" in first.stdout, first.stdout
    assert f"version {need} (0 migrations applied now)" in second.stdout, second.stdout
    assert versions(plaint, url) == list(range(1, need + 1))

    for _ in range(3):
        url = plaint.create_database(migrate=False)
        procs = [subprocess.Popen([harness.binary_path("plaintctl"), "migrate"],
                                  env=plaint.env(PLAINT_DATABASE_URL=url), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=timeout(60)) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert f"schema is at version {need}" in out, out
            assert not harness._scan_sanitizer(err)
        applied = sorted(int(re.search(r"\((\d+) migrations? applied", o).group(1))
                         for o, _ in outs)
        assert applied == [0, 0, need], applied
        assert versions(plaint, url) == list(range(1, need + 1))
    # And a daemon accepts the result.
    d = plaint.start_intake(PLAINT_DATABASE_URL=url)
    assert d.alive()


def test_ctl_submit_prints_the_reply(plaint, tmp_path):
    plaint.start_intake()
    data = complaint(plaint, "zh")
    data["external_id"] = "CTL-1"
    path = tmp_path / "complaint.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    res = plaint.ctl("submit", str(path))
    assert res.returncode == 0, res.stderr
    reply = json.loads(res.stdout)
    got = assert_accepted(reply, duplicate=False)
    assert plaint.sql("SELECT source, external_id FROM cases WHERE case_id = %s",
                      got["case_id"]) == [("plaintctl", "CTL-1")]
    # A whole envelope is sent as it is; stdin works too.
    msg = plaint.envelope(data, external_id="CTL-1", source="plaintctl")
    res = plaint.ctl("submit", "-", input=json.dumps(msg, ensure_ascii=False))
    assert res.returncode == 0, res.stderr
    assert_accepted(json.loads(res.stdout), msg["id"], duplicate=True)
    # An error reply is printed too, with a failing status.
    res = plaint.ctl("submit", "-", input=json.dumps(dict(data, channel="fax")))
    assert res.returncode != 0
    reply = json.loads(res.stdout)
    assert reply["type"] == "error" and reply["data"]["errors"][0]["path"] == "data.channel"


def test_ctl_case_prints_the_case_with_its_timeline(plaint):
    plaint.start_intake()
    data = complaint(plaint)
    got = assert_accepted(plaint.submit(data, external_id="CASE-1"))
    plaint.wait_until(lambda: plaint.sql("SELECT count(*) FROM events WHERE seq IS NOT NULL")
                      == [(1,)], 10, "event sequenced")
    for key in (got["case_no"], got["case_id"], got["case_id"].upper()):
        res = plaint.ctl("case", key)
        assert res.returncode == 0, res.stderr
        case = json.loads(res.stdout)
        assert case["case_id"] == got["case_id"] and case["case_no"] == got["case_no"]
        assert case["state"] == "received" and case["body"] == data["body"]
        assert [e["type"] for e in case["timeline"]] == ["case.received"]
        harness.validate_event(case["timeline"][0])
        assert case["timeline"][0]["data"]["seq"] == 1
    res = plaint.ctl("case", "C-19700101-000000")
    assert res.returncode != 0 and "C-19700101-000000" in res.stderr


def test_ctl_events_replays_in_seq_order(plaint):
    plaint.start_intake()
    data = minimal_complaint(plaint)
    cases = [assert_accepted(plaint.submit(data, external_id=f"EV-{i}")) for i in range(12)]
    plaint.wait_until(lambda: plaint.sql("SELECT count(*) FROM events WHERE seq IS NOT NULL")
                      == [(12,)], 10, "events sequenced")
    res = plaint.ctl("events", "--after", "0")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [e["data"]["seq"] for e in events] == list(range(1, 13))
    assert [e["data"]["case_id"] for e in events] == [c["case_id"] for c in cases]
    for e in events:
        harness.validate_event(e)
    res = plaint.ctl("events", "--after", "9")
    assert [json.loads(l)["data"]["seq"] for l in res.stdout.splitlines()] == [10, 11, 12]
    res = plaint.ctl("events", "--after", "0", "--prefix", "sla.")
    assert res.returncode == 0 and res.stdout.strip() == ""
