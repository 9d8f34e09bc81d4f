#!/usr/bin/env python3
"""Plaint's classifier against a TF-IDF + linear SVM baseline on the real labelled complaints.

Reads the labelled data set (default /work/shared/data, or ../shared/data next to the
repository; never part of the repository), splits every language by a hash of each item's id
(deterministic: the same ids always fall on the same side), writes the parts as JSON Lines into a
scratch folder outside the repository, then on the same split:

  plaint     `plaintctl train` on the train part, `plaintctl eval --json --rules` on the rest
  baseline   scikit-learn: TfidfVectorizer (English: word 1-2 grams + char_wb 2-5 grams;
             Chinese: char 1-3 grams; sublinear tf) and one LinearSVC per head
  default    the shipped default model (trained at build time from deploy/seed), evaluated on
             the same test part (it never saw the data; it knows no not_complaint category and
             no positive/neutral/negative sentiment, so those heads score low by construction)

and prints per language and head: n, accuracy, macro-F1, then documents/s of prediction on one
core (all heads at once, texts in memory) and Plaint's ratio to the baseline, and P1 recall:
of the model's priority head, of the rules alone (deploy/config/classifier.json), and of the
final decision (the model's priority combined with the rules, as plaint-classifier decides).

The sets:
  en  en.jsonl: every item with a category or a sentiment. category is scored on the items
      that have one (CFPB narratives and airline tweets), sentiment on the airline tweets
      (positive / neutral / negative). No item has a priority.
  zh  zh-labelled.jsonl: category (with not_complaint), priority (P1..P3, null for
      not_complaint) and sentiment (calm / dissatisfied / angry / positive).

Honest tuning: --validation carves a validation part out of the train part (a second hash) and
evaluates on it instead of the test part, so options are chosen without looking at the test.

Run it with a Python that has scikit-learn (Debian's python3-sklearn: /usr/bin/python3), or use
the wrapper tests/bench/clf_compare.sh, which picks one. Timing pins this process and its
children to one CPU (os.sched_setaffinity) and keeps numerical libraries to one thread.
"""

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

# One thread for numpy/scipy, set before they are imported (sklearn is imported lazily).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEADS = ("category", "priority", "sentiment")
LANGS = ("en", "zh")
EXIT_NO_DATA = 2
EXIT_NO_TOOLS = 3

EPILOG = """\
wrapper:
  tests/bench/clf_compare.sh [OPTIONS]     the same, with a Python that has scikit-learn
                                           ($PYTHON if set, else /usr/bin/python3)
examples:
  tests/bench/clf_compare.sh --bin build/bin
  tests/bench/clf_compare.sh --bin build/bin --json > var/clf_compare.json
  tests/bench/clf_compare.sh --validation --train-args "--epochs 20 --l2 1e-6"
exit status: 0 done; 1 a tool failed; 2 no data folder; 3 no binaries or no scikit-learn
"""


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------- data and split


def default_data_dir():
    for d in (pathlib.Path("/work/shared/data"), ROOT.parent / "shared" / "data"):
        if (d / "zh-labelled.jsonl").is_file() or (d / "en.jsonl").is_file():
            return d
    return pathlib.Path("/work/shared/data")


def bucket(salt, item_id):
    """0..9999 from a hash of salt and the item's id."""
    digest = hashlib.sha256(f"{salt}:{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_set(data_dir, lang):
    """The labelled items of one language as training lines (id, text, three labels)."""
    if lang == "en":
        rows = read_jsonl(data_dir / "en.jsonl")
        items = [{"id": r["id"], "lang": "en", "text": r["text"], "category": r.get("category"),
                  "priority": None, "sentiment": r.get("sentiment")} for r in rows]
    else:
        rows = read_jsonl(data_dir / "zh-labelled.jsonl")
        items = [{"id": r["id"], "lang": "zh", "text": r["text"], "category": r.get("category"),
                  "priority": r.get("priority"), "sentiment": r.get("sentiment")} for r in rows]
    return [it for it in items if it["text"].strip() and any(it[h] for h in HEADS)]


def split(items, test_percent, salt, validation, val_percent):
    """(train, test) by id; with validation, (train minus val, val) from the train part."""
    cut = int(round(test_percent * 100))
    train = [it for it in items if bucket(salt, it["id"]) >= cut]
    test = [it for it in items if bucket(salt, it["id"]) < cut]
    if validation:
        vcut = int(round(val_percent * 100))
        test = [it for it in train if bucket(salt + "/validation", it["id"]) < vcut]
        train = [it for it in train if bucket(salt + "/validation", it["id"]) >= vcut]
    return train, test


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")


def categories_file(config_dir, items, path):
    """The categories config plus any category the data uses that it lacks (not_complaint)."""
    doc = json.loads((config_dir / "categories.json").read_text(encoding="utf-8"))
    known = {c["id"] for c in doc["categories"]}
    for cat in sorted({it["category"] for it in items if it["category"]} - known):
        doc["categories"].append({"id": cat, "name": {"en": cat, "zh": cat},
                                  "description": "added by clf_compare for the data set"})
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- Plaint


def run(cmd, what):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise Failure(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
                      f"{proc.stderr.strip()}")
    return proc.stdout


def plaint_train(bin_dir, train_file, cats, model, train_args):
    t0 = time.perf_counter()
    run([str(bin_dir / "plaintctl"), "train", "--categories", str(cats), "--out", str(model),
         *train_args, str(train_file)], "plaintctl train")
    return time.perf_counter() - t0


def class_recall(head, label):
    for c in head.get("classes", []):
        if c["label"] == label:
            return c["recall"], int(c["support"])
    return None, 0


def plaint_eval(bin_dir, model, test_file, config_dir, time_s):
    out = run([str(bin_dir / "plaintctl"), "eval", "--json", "--model", str(model),
               "--time", str(time_s), "--rules", str(config_dir), str(test_file)],
              "plaintctl eval")
    doc = json.loads(out)
    heads = {}
    for name, h in doc["heads"].items():
        heads[name] = {"n": int(h["n"]), "accuracy": h["accuracy"], "macro_f1": h["macro_f1"],
                       "unknown_labels": int(h["unknown_labels"])}
        if name == "priority":
            heads[name]["p1_recall"], heads[name]["p1_support"] = class_recall(h, "P1")
    result = {"docs": int(doc["docs"]), "docs_per_s": doc["docs_per_s"], "heads": heads}
    dec = doc.get("decision")
    if dec and "priority" in dec:
        p = dec["priority"]
        recall, support = class_recall(p, "P1")
        r = dec["rules_alone"]
        result["decision"] = {"n": int(p["n"]), "accuracy": p["accuracy"],
                              "macro_f1": p["macro_f1"], "p1_recall": recall,
                              "p1_support": support}
        result["rules"] = {"p1_recall": r["p1_recall"], "p1_precision": r["p1_precision"],
                           "p1_labelled": int(r["p1_labelled"]), "p1_both": int(r["p1_both"]),
                           "non_p1_flagged": int(r["non_p1_flagged"]),
                           "non_p1_labelled": int(r["non_p1_labelled"]),
                           "docs_per_s": dec["rules_docs_per_s"]}
    if dec and "sentiment" in dec:
        p = dec["sentiment"]
        result["decision_sentiment"] = {"n": int(p["n"]), "accuracy": p["accuracy"],
                                        "macro_f1": p["macro_f1"]}
    return result


# ---------------------------------------------------------------------------- baseline


def baseline(lang, train, test, time_s, c_value):
    """TF-IDF + LinearSVC per head; the figures and documents/s of prediction (all heads)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score, recall_score
    from sklearn.pipeline import make_union
    from sklearn.svm import LinearSVC

    if lang == "zh":
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    else:
        vec = make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))
    t0 = time.perf_counter()
    x_train = vec.fit_transform([it["text"] for it in train])
    models = {}
    for head in HEADS:
        rows = [i for i, it in enumerate(train) if it[head]]
        if rows and len({train[i][head] for i in rows}) > 1:
            model = LinearSVC(C=c_value, random_state=0)
            models[head] = model.fit(x_train[rows], [train[i][head] for i in rows])
    train_s = time.perf_counter() - t0
    texts = [it["text"] for it in test]
    x_test = vec.transform(texts)
    heads = {}
    for head, model in models.items():
        rows = [i for i, it in enumerate(test) if it[head]]
        if not rows:
            continue
        truth = [test[i][head] for i in rows]
        pred = model.predict(x_test[rows])
        heads[head] = {"n": len(rows), "accuracy": float(accuracy_score(truth, pred)),
                       "macro_f1": float(f1_score(truth, pred, average="macro"))}
        if head == "priority" and "P1" in truth:
            heads[head]["p1_recall"] = float(recall_score(truth, pred, labels=["P1"],
                                                          average="macro"))
            heads[head]["p1_support"] = truth.count("P1")
    # documents/s: vectorise and predict every head, repeated for at least time_s
    done, t0 = 0, time.perf_counter()
    while texts:
        x = vec.transform(texts)
        for model in models.values():
            model.predict(x)
        done += len(texts)
        if time.perf_counter() - t0 >= time_s:
            break
    elapsed = time.perf_counter() - t0
    return {"docs": len(texts), "docs_per_s": done / elapsed if elapsed > 0 else 0.0,
            "heads": heads, "train_s": train_s}


# ---------------------------------------------------------------------------- the run


def pin_one_cpu(cpu):
    allowed = sorted(os.sched_getaffinity(0))
    if cpu is None:
        cpu = allowed[-1]
    if cpu not in allowed:
        raise Failure(f"--cpu {cpu} is not one of this process's CPUs {allowed}")
    os.sched_setaffinity(0, {cpu})
    return cpu


def compare_language(lang, args, work):
    items = load_set(args.data, lang)
    train, test = split(items, args.test_percent, args.salt, args.validation,
                        args.validation_percent)
    if args.max_train and len(train) > args.max_train:
        train = sorted(train, key=lambda it: bucket(args.salt + "/subset", it["id"]))
        train = train[:args.max_train]
    train_file, test_file = work / f"{lang}.train.jsonl", work / f"{lang}.test.jsonl"
    write_jsonl(train_file, train)
    write_jsonl(test_file, test)
    cats = categories_file(args.config, items, work / f"{lang}.categories.json")
    model = work / f"{lang}.model"
    result = {"train": len(train), "test": len(test),
              "test_part": "validation" if args.validation else "test"}
    result["plaint_train_s"] = plaint_train(args.bin, train_file, cats, model, args.train_args)
    result["plaint"] = plaint_eval(args.bin, model, test_file, args.config, args.time)
    if not args.no_default:
        default_model = args.default_model or args.bin.parent / "share" / "plaint" / "default.model"
        if default_model.is_file():
            result["default"] = plaint_eval(args.bin, default_model, test_file, args.config,
                                            args.time)
            result["default"]["model"] = str(default_model)
        else:
            result["default"] = None
            print(f"clf_compare: no default model at {default_model}; skipped", file=sys.stderr)
    if not args.no_baseline:
        base_train = train
        if args.baseline_max_train and len(train) > args.baseline_max_train:
            base_train = sorted(train, key=lambda it: bucket(args.salt + "/subset", it["id"]))
            base_train = base_train[:args.baseline_max_train]
        result["baseline"] = baseline(lang, base_train, test, args.time, args.baseline_c)
        result["baseline"]["train"] = len(base_train)
        if result["baseline"]["docs_per_s"] > 0:
            result["ratio_docs_per_s"] = (result["plaint"]["docs_per_s"]
                                          / result["baseline"]["docs_per_s"])
    return result


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def print_table(report):
    print(f"data {report['data']}; split: {report['test_percent']:g}% by sha256(salt:id), "
          f"salt \"{report['salt']}\"; evaluated on the {report['test_part']} part; "
          f"one CPU ({report['cpu']}); plaintctl train "
          f"{' '.join(report['train_args']) or '(defaults)'}")
    cols = f"{'lang':4} {'head':10} {'system':16} {'n':>5} {'accuracy':>8} {'macro-F1':>8} " \
           f"{'vs base':>8} {'P1 recall':>10}"
    for lang, r in report["languages"].items():
        print(f"\n{lang}: train {r['train']}, {r['test_part']} {r['test']} items")
        print(cols)
        base = r.get("baseline") or {}
        systems = [("plaint (split)", r["plaint"]), ("baseline svm", base),
                   ("plaint default", r.get("default") or {})]
        for head in HEADS:
            for name, s in systems:
                h = (s.get("heads") or {}).get(head)
                if not h:
                    continue
                b = (base.get("heads") or {}).get(head)
                delta = h["macro_f1"] - b["macro_f1"] if b and name != "baseline svm" else None
                p1 = ""
                if h.get("p1_recall") is not None:
                    p1 = f"{h['p1_recall']:.3f}/{h['p1_support']}"
                unknown = h.get("unknown_labels")
                note = f" (unknown labels: {unknown})" if unknown else ""
                print(f"{lang:4} {head:10} {name:16} {h['n']:5d} {h['accuracy']:8.4f} "
                      f"{h['macro_f1']:8.4f} {fmt(delta, '+8.4f'):>8} {p1:>10}{note}")
        for name, s in systems[:1] + systems[2:]:
            d = s.get("decision")
            if d:
                print(f"{lang:4} {'priority*':10} {name:16} {d['n']:5d} {d['accuracy']:8.4f} "
                      f"{d['macro_f1']:8.4f} {'':>8} {d['p1_recall']:.3f}/{d['p1_support']:<4}"
                      "  *final decision: model + rules")
        for name, s in systems[:1] + systems[2:]:
            d = s.get("decision_sentiment")
            b = (base.get("heads") or {}).get("sentiment")
            own = (s.get("heads") or {}).get("sentiment") or {}
            if d and own.get("unknown_labels", 0) < d["n"]:  # else the labels do not compare
                delta = d["macro_f1"] - b["macro_f1"] if b else None
                print(f"{lang:4} {'sentiment*':10} {name:16} {d['n']:5d} {d['accuracy']:8.4f} "
                      f"{d['macro_f1']:8.4f} {fmt(delta, '+8.4f'):>8} {'':>10}"
                      "  *final decision: angry when the rules' anger cues fire")
        rules = r["plaint"].get("rules")
        if rules and rules["p1_labelled"]:
            print(f"{lang:4} {'P1 rules':10} {'rules alone':16} {rules['p1_labelled']:5d} "
                  f"recall {rules['p1_recall']:.3f} ({rules['p1_both']}/{rules['p1_labelled']}), "
                  f"precision {rules['p1_precision']:.3f}, non-P1 flagged "
                  f"{rules['non_p1_flagged']}/{rules['non_p1_labelled']}")
        line = f"docs/s (one core, all heads): plaint {r['plaint']['docs_per_s']:.0f}"
        if base:
            line += (f", baseline {base['docs_per_s']:.0f}, "
                     f"ratio {r.get('ratio_docs_per_s', 0):.1f}x")
        if r.get("default"):
            line += f"; default model {r['default']['docs_per_s']:.0f}"
        if rules:
            line += f"; rules alone {rules['docs_per_s']:.0f}"
        print(line)
        line = f"training: plaint {r['plaint_train_s']:.2f} s"
        if base:
            line += f", baseline {base['train_s']:.2f} s (on {base['train']} items)"
        print(line)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="clf_compare.py", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=pathlib.Path, default=None,
                   help="the data folder with en.jsonl and zh-labelled.jsonl "
                        "(default /work/shared/data, else ../shared/data beside the repository)")
    p.add_argument("--bin", type=pathlib.Path, default=ROOT / "build" / "bin",
                   help="the folder of plaintctl (default build/bin)")
    p.add_argument("--config", type=pathlib.Path, default=ROOT / "deploy" / "config",
                   help="categories.json and classifier.json (default deploy/config)")
    p.add_argument("--default-model", type=pathlib.Path, default=None,
                   help="the shipped model (default BIN/../share/plaint/default.model)")
    p.add_argument("--work", type=pathlib.Path, default=None,
                   help="scratch folder for the split and the model (default: a new temporary "
                        "folder, removed afterwards); must not be inside the repository, "
                        "except under var/")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--lang", default="en,zh", help="languages, comma-separated (default en,zh)")
    p.add_argument("--test-percent", type=float, default=20.0, help="test part (default 20)")
    p.add_argument("--salt", default="plaint-clf-compare-1", help="the split's hash salt")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on a validation part carved out of the train part instead "
                        "of the test part (for tuning)")
    p.add_argument("--validation-percent", type=float, default=20.0,
                   help="share of the train part held out by --validation (default 20)")
    p.add_argument("--train-args", default="",
                   help='more options for plaintctl train, e.g. "--epochs 20 --bits 18"')
    p.add_argument("--max-train", type=int, default=0,
                   help="train both systems on at most N items per language (0 = all)")
    p.add_argument("--baseline-max-train", type=int, default=0,
                   help="train the baseline on at most N of the train items (0 = all)")
    p.add_argument("--baseline-c", type=float, default=1.0, help="LinearSVC's C (default 1)")
    p.add_argument("--time", type=float, default=1.0,
                   help="seconds each system predicts the test part again and again for "
                        "documents/s (default 1)")
    p.add_argument("--cpu", type=int, default=None,
                   help="the CPU to pin to (default the highest this process may use)")
    p.add_argument("--no-baseline", action="store_true", help="skip scikit-learn")
    p.add_argument("--no-default", action="store_true", help="skip the shipped default model")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = p.parse_args(argv)
    args.langs = [x for x in args.lang.split(",") if x]
    bad = [x for x in args.langs if x not in LANGS]
    if bad:
        p.error(f"--lang: unknown {bad}; use en and/or zh")
    args.train_args = args.train_args.split()
    return args


def check_inputs(args):
    if args.data is None:
        args.data = default_data_dir()
    need = {"en": "en.jsonl", "zh": "zh-labelled.jsonl"}
    missing = [need[x] for x in args.langs if not (args.data / need[x]).is_file()]
    if missing:
        print(f"clf_compare: the labelled data is not there: {args.data} lacks "
              f"{', '.join(missing)}\nhint: pass --data DIR (the folder with en.jsonl and "
              "zh-labelled.jsonl; it is kept outside the repository)", file=sys.stderr)
        return EXIT_NO_DATA
    if not os.access(args.bin / "plaintctl", os.X_OK):
        print(f"clf_compare: no plaintctl in {args.bin}\nhint: build first (cmake --build "
              "build) or pass --bin DIR", file=sys.stderr)
        return EXIT_NO_TOOLS
    if not args.no_baseline:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print(f"clf_compare: {sys.executable} has no scikit-learn\nhint: run "
                  "tests/bench/clf_compare.sh, or /usr/bin/python3 with python3-sklearn, "
                  "or pass --no-baseline", file=sys.stderr)
            return EXIT_NO_TOOLS
    if args.work is not None:
        work = args.work.resolve()
        if (work == ROOT or ROOT in work.parents) and not (
                work == ROOT / "var" or (ROOT / "var") in work.parents):
            print(f"clf_compare: --work {args.work} is inside the repository; the data must "
                  "not land there (use var/... or a folder elsewhere)", file=sys.stderr)
            return 64
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    rc = check_inputs(args)
    if rc:
        return rc
    cpu = pin_one_cpu(args.cpu)
    temp = args.work is None
    work = pathlib.Path(tempfile.mkdtemp(prefix="plaint-clf-compare-")) if temp else args.work
    work.mkdir(parents=True, exist_ok=True)
    report = {"data": str(args.data), "bin": str(args.bin), "cpu": cpu,
              "test_percent": args.test_percent, "salt": args.salt,
              "test_part": "validation" if args.validation else "test",
              "train_args": args.train_args, "languages": {}}
    try:
        for lang in args.langs:
            report["languages"][lang] = compare_language(lang, args, work)
    except Failure as e:
        print(f"clf_compare: {e}", file=sys.stderr)
        return 1
    finally:
        if temp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif temp:
            print(f"clf_compare: kept {work}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
