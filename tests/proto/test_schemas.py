"""Checks the protocol files in proto/ against themselves and against common/pl_msg.h.

- every schema in proto/schemas is a valid draft 2020-12 schema;
- every proto/examples/NAME.valid.N.json validates against schema NAME (events also against
  event.json, every message also against envelope.json), with format checking on;
- every NAME.invalid.N.json fails, and fails for the reason listed in INVALID_BECAUSE, so an
  invalid example cannot pass the test by being broken in some other way;
- every event and message type defined in pl_msg.h has a schema (and no schema lacks a type),
  the size limits and the protocol version agree with pl_msg.h, and PROTOCOL.md covers every type.

Run from the repository root: /usr/bin/python3 -m pytest -q tests/proto (or tests/proto/run.sh).
Needs python3-jsonschema >= 4.10 and python3-pytest.
"""

import json
import pathlib
import re
from urllib.parse import urljoin

import pytest
from jsonschema import Draft202012Validator, RefResolver

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
SCHEMAS = PROTO / "schemas"
EXAMPLES = PROTO / "examples"
PL_MSG_H = ROOT / "common" / "pl_msg.h"
PL_MSG_C = ROOT / "common" / "pl_msg.c"

EXAMPLE_NAME = re.compile(r"^(?P<schema>.+)\.(?P<kind>valid|invalid)\.(?P<n>[0-9]+)\.json$")

# Why each invalid example must fail: (instance path, failing keyword[, text in the message]).
INVALID_BECAUSE = {
    "complaint.submit.invalid.1.json": (["data", "channel"], "enum"),
    "complaint.submit.invalid.2.json": (["data", "customer"], "anyOf"),
    "complaint.submit.invalid.3.json": (["data", "body"], "minLength"),
    "complaint.submit.invalid.4.json": (["data", "subject"], "maxLength"),
    "complaint.submit.invalid.5.json": (["data", "attachments"], "maxItems"),
    "complaint.submit.invalid.6.json": (["data", "customer", "type"], "enum"),
    "complaint.submit.invalid.7.json": (["data", "external_id"], "maxLength"),
    "complaint.submit.invalid.8.json": (["data", "occurred_at"], "pattern"),
    "complaint.submit.invalid.9.json": (["data"], "required", "'body'"),
    "complaint.submit.invalid.10.json": (["data", "demand_type"], "enum"),
    "complaint.submit.invalid.11.json": (["data", "attachments", 0, "size"], "minimum"),
    "complaint.submit.invalid.12.json": (["v"], "const"),
    "complaint.submit.invalid.13.json": (["data", "body"], "pattern"),
    "complaint.submit.invalid.14.json": (["data", "customer", "phone"], "pattern"),
    "complaint.submit.invalid.15.json": (["data", "customer", "email"], "pattern"),
    "complaint.submit.invalid.16.json": (["data", "attachments", 0, "url"], "pattern"),
    "complaint.submit.invalid.17.json": (["data", "customer", "lang"], "pattern"),
    "complaint.submit.invalid.18.json": (["data", "external_id"], "minLength"),
    "complaint.submit.invalid.19.json": ([], "required", "'id'"),
    "complaint.submit.invalid.20.json": (["type"], "const"),
    "complaint.accepted.invalid.1.json": (["data", "case_id"], "pattern"),
    "complaint.accepted.invalid.2.json": ([], "required", "'correlation_id'"),
    "complaint.accepted.invalid.3.json": (["data", "case_no"], "pattern"),
    "error.invalid.1.json": (["data", "code"], "enum"),
    "error.invalid.2.json": (["data"], "required", "'message'"),
    "error.invalid.3.json": (["data"], "required", "'errors'"),
    "envelope.invalid.1.json": ([], "required", "'data'"),
    "envelope.invalid.2.json": (["v"], "const"),
    "envelope.invalid.3.json": (["at"], "pattern"),
    "envelope.invalid.4.json": (["source"], "minLength"),
    "event.invalid.1.json": (["data", "seq"], "minimum"),
    "event.invalid.2.json": (["data"], "required", "'case_no'"),
    "event.invalid.3.json": (["at"], "pattern"),
    "event.invalid.4.json": (["data", "seq"], "type"),
    "case.received.invalid.1.json": (["data", "state"], "const"),
    "case.received.invalid.2.json": (["data"], "required", "'received_at'"),
    "case.classified.invalid.1.json": (["data", "priority"], "enum"),
    "case.classified.invalid.2.json": (["data", "confidence"], "maximum"),
    "case.classified.invalid.3.json": (["data", "sentiment"], "enum"),
    "case.routed.invalid.1.json": (["data", "resolution_due"], "pattern"),
    "case.routed.invalid.2.json": (["data", "departments"], "minItems"),
    "case.assigned.invalid.1.json": (["data"], "required", "'assignee'"),
    "case.promised.invalid.1.json": (["data"], "required", "'due_at'"),
    "case.feedback.invalid.1.json": (["data", "satisfied"], "type"),
    "case.rated.invalid.1.json": (["data", "score"], "maximum"),
    "case.rated.invalid.2.json": (["data", "score"], "type"),
    "case.escalated.invalid.1.json": (["data", "level"], "minimum"),
    "sla.warning.invalid.1.json": (["data", "clock"], "enum"),
    "alert.spike.invalid.1.json": (["data", "case_id"], "type"),
    "alert.spike.invalid.2.json": (["data", "window"], "pattern"),
    "stage.work.invalid.1.json": (["data"], "required", "'state'"),
    "stage.work.invalid.2.json": (["data", "seq"], "minimum"),
}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA_FILES = sorted(SCHEMAS.rglob("*.json"))
SCHEMA_BY_NAME = {p.name[: -len(".json")]: p for p in SCHEMA_FILES}
STORE = {p.as_uri(): load(p) for p in SCHEMA_FILES}
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
VALID = [p for p in EXAMPLE_FILES if ".valid." in p.name]
INVALID = [p for p in EXAMPLE_FILES if ".invalid." in p.name]


def rel(path):
    return str(path.relative_to(ROOT))


def validator(schema_path):
    """A validator for one schema file whose relative $refs resolve to the sibling files."""
    schema = STORE[schema_path.as_uri()]
    resolver = RefResolver(base_uri=schema_path.as_uri(), referrer=schema, store=STORE)
    return Draft202012Validator(
        schema, resolver=resolver, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def schema_of(example):
    m = EXAMPLE_NAME.match(example.name)
    assert m, f"{rel(example)}: name is not <schema>.valid|invalid.<N>.json"
    name = m.group("schema")
    assert name in SCHEMA_BY_NAME, f"{rel(example)}: no schema named {name}"
    return SCHEMA_BY_NAME[name]


def schemas_for(example):
    """The schema an example is named after, plus event.json and envelope.json as applicable."""
    own = schema_of(example)
    out = [own]
    if own.parent.name == "events":
        out.append(SCHEMAS / "event.json")
    if own != SCHEMAS / "envelope.json":
        out.append(SCHEMAS / "envelope.json")
    return out


def flatten(errors):
    for e in errors:
        yield e
        yield from flatten(e.context or [])


def defines(prefix):
    """{NAME: "value"} for every #define PREFIX... "value" in pl_msg.h."""
    text = PL_MSG_H.read_text(encoding="utf-8")
    return dict(re.findall(rf'^#define\s+({prefix}\w+)\s+"([^"]*)"', text, re.M))


def int_define(name):
    text = PL_MSG_H.read_text(encoding="utf-8")
    m = re.search(rf"^#define\s+{name}\s+\(?([0-9]+)\)?\s*(/\*.*)?$", text, re.M)
    assert m, f"pl_msg.h has no integer #define {name}"
    return int(m.group(1))


def event_types():
    return sorted(defines("PL_EV_").values())


# ---------------------------------------------------------------- the schemas themselves


def test_schema_files_exist():
    assert SCHEMA_FILES, f"no schemas under {rel(SCHEMAS)}"
    assert len(SCHEMA_BY_NAME) == len(SCHEMA_FILES), "two schema files share a name"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=rel)
def test_schema_is_valid(path):
    schema = STORE[path.as_uri()]
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema.get("title") and schema.get("description"), "every schema has a title and a description"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=rel)
def test_schema_refs_resolve(path):
    """Every $ref points at something that exists (a typo would only fail on use)."""
    resolver = validator(path).resolver

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolver.resolve(urljoin(path.as_uri(), node["$ref"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(STORE[path.as_uri()])


# ---------------------------------------------------------------- examples


def test_example_names():
    assert EXAMPLE_FILES, f"no examples under {rel(EXAMPLES)}"
    for example in EXAMPLE_FILES:
        schema_of(example)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=rel)
def test_every_schema_has_a_valid_example(path):
    name = path.name[: -len(".json")]
    assert any(e.name.startswith(name + ".valid.") for e in VALID), f"no {name}.valid.N.json"


@pytest.mark.parametrize("example", VALID, ids=rel)
def test_valid_example(example):
    instance = load(example)
    for schema in schemas_for(example):
        errors = [f"{e.json_path}: {e.message}" for e in validator(schema).iter_errors(instance)]
        assert not errors, f"{rel(example)} against {rel(schema)}:\n" + "\n".join(errors)


def test_every_invalid_example_has_a_reason():
    names = {p.name for p in INVALID}
    assert names == set(INVALID_BECAUSE), (
        f"without a reason: {sorted(names - set(INVALID_BECAUSE))}; "
        f"reason without a file: {sorted(set(INVALID_BECAUSE) - names)}"
    )


@pytest.mark.parametrize("example", INVALID, ids=rel)
def test_invalid_example(example):
    instance = load(example)
    errors = list(flatten(validator(schema_of(example)).iter_errors(instance)))
    assert errors, f"{rel(example)} validates, but it must not"
    path, keyword, *text = INVALID_BECAUSE[example.name]
    assert any(
        list(e.absolute_path) == path and e.validator == keyword and all(t in e.message for t in text)
        for e in errors
    ), f"{rel(example)} fails, but not with {keyword} at {path} {text}:\n" + "\n".join(
        f"{list(e.absolute_path)} {e.validator}: {e.message}" for e in errors
    )


# ---------------------------------------------------------------- agreement with pl_msg.h


def test_every_event_type_has_a_schema():
    types = event_types()
    assert len(types) >= 22, "pl_msg.h: fewer PL_EV_* event types than the contract lists"
    have = sorted(p.name[: -len(".json")] for p in (SCHEMAS / "events").glob("*.json"))
    assert sorted(set(types) - set(have)) == [], "event types without a schema"
    assert sorted(set(have) - set(types)) == [], "event schemas for types pl_msg.h does not define"


@pytest.mark.parametrize("etype", event_types())
def test_event_schema_matches_its_type(etype):
    schema = STORE[(SCHEMAS / "events" / f"{etype}.json").as_uri()]
    assert schema["title"] == etype
    assert schema["properties"]["type"] == {"const": etype}
    assert schema["$ref"] == "../event.json"
    assert {"case_id", "case_no", "seq"} <= set(schema["properties"]["data"]["required"])


def test_every_message_type_has_a_schema():
    for name, mtype in defines("PL_MSG_").items():
        path = SCHEMAS / f"{mtype}.json"
        assert path.exists(), f"{name} {mtype!r} has no {rel(path)}"
        assert STORE[path.as_uri()]["properties"]["type"] == {"const": mtype}


def test_limits_match_pl_msg_h():
    envelope = load(SCHEMAS / "envelope.json")
    data = load(SCHEMAS / "complaint.submit.json")["properties"]["data"]["properties"]
    assert envelope["properties"]["v"]["const"] == int_define("PL_MSG_VERSION")
    assert envelope["properties"]["source"]["maxLength"] == int_define("PL_SOURCE_MAX")
    assert envelope["properties"]["id"]["maxLength"] == int_define("PL_MSG_ID_MAX")
    assert data["external_id"]["maxLength"] == int_define("PL_EXTERNAL_ID_MAX")
    assert data["subject"]["maxLength"] == int_define("PL_SUBJECT_MAX")
    assert data["body"]["maxLength"] == int_define("PL_BODY_MAX")
    assert data["demand"]["maxLength"] == int_define("PL_DEMAND_MAX")
    assert data["location"]["maxLength"] == int_define("PL_LOCATION_MAX")
    assert data["attachments"]["maxItems"] == int_define("PL_ATTACHMENTS_MAX")


def test_states_match_pl_msg_h():
    states = load(SCHEMAS / "envelope.json")["$defs"]["case_state"]["enum"]
    for name, state in defines("PL_STATE_").items():
        assert state in states, f"{name} {state!r} is not a case state in envelope.json"


ENUMS = {"pl_msg_channels": "channel", "pl_msg_customer_types": "customer_type",
         "pl_msg_demand_types": "demand_type"}


@pytest.mark.parametrize("array,defname", sorted(ENUMS.items()))
def test_enums_match_pl_msg_c(array, defname):
    if not PL_MSG_C.exists():
        pytest.skip("common/pl_msg.c is not written yet")
    text = PL_MSG_C.read_text(encoding="utf-8")
    m = re.search(rf"{array}\s*\[\s*\]\s*=\s*\{{(.*?)\}}", text, re.S)
    assert m, f"pl_msg.c does not define {array}"
    values = re.findall(r'"([^"]*)"', m.group(1))
    # The lists may be written once as X-macros: {CHANNELS(AS_STRING) NULL}.
    x = re.match(r"\s*(\w+)\(\w+\)", m.group(1))
    if not values and x:
        body = re.search(rf"^#define\s+{x.group(1)}\(X\)((?:.*\\\n)*.*)$", text, re.M)
        assert body, f"pl_msg.c: no #define {x.group(1)}(X)"
        values = re.findall(r"\bX\((\w+)\)", body.group(1))
    assert values == load(SCHEMAS / "envelope.json")["$defs"][defname]["enum"]


# ---------------------------------------------------------------- the document


def test_protocol_md_covers_every_type():
    text = (PROTO / "PROTOCOL.md").read_text(encoding="utf-8")
    missing = [t for t in [*event_types(), *defines("PL_MSG_").values()] if f"`{t}`" not in text]
    assert not missing, f"PROTOCOL.md does not mention {missing}"
    settings = ["PLAINT_DATABASE_URL", "PLAINT_CONFIG_DIR", "PLAINT_SUBMIT_ENDPOINT",
                "PLAINT_EVENTS_ENDPOINT", "PLAINT_HTTP_ADDR", "PLAINT_LOG_LEVEL",
                "PLAINT_CLASSIFY_ENDPOINT", "PLAINT_ROUTE_ENDPOINT", "PLAINT_DB_WAIT",
                "PLAINT_METRICS_ADDR"]
    assert not [s for s in settings if f"`{s}`" not in text]
