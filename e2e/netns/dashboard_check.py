#!/usr/bin/env python3
"""Runs every query of the Grafana dashboard against a real Prometheus.

  dashboard_check.py --prometheus http://127.0.0.1:9090 --dashboard charts/sluice/dashboards/sluice.json
                     [--rate-interval 60s] [--after UNIX_TIME] [--settle 1.5] [--timeout 30]
                     [--results DIR] [--wait-only]

Grafana's variables are substituted the way Grafana would expand them with every
template variable on "All": $__rate_interval, $__interval and $__range become
--rate-interval (choose it to cover the whole test, so a rate over an event early in
the test is still seen), every template variable becomes `.*`. Each panel target's
`expr` then runs as an instant query (/api/v1/query). A target fails when the query
errors, returns nothing, returns only NaN (a histogram_quantile over no observations),
or lacks a label the panel relies on: one named in a `by (...)` clause (other than
`le`) or in its legendFormat (`{{label}}`). The template variables' own
`label_values(...)` queries are checked the same way.

With --after, first waits until every target's last successful scrape is --settle
seconds (1.5) past that moment: at a 1 s scrape interval that is two scrapes, so even a
series that appeared with the test's last event has the two samples rate() needs. With
--wait-only it does only that.

Without --results it prints one line per panel ("ok   - ..." / "FAIL - ..." with the
failing targets below) and exits 1 if any panel failed. With --results DIR it writes
DIR/panels.tsv (id, ok|FAIL, title per line), DIR/panel-<id>.txt (the details) and
DIR/notes.txt for the calling script's `check` helper, and exits 0 unless the check
itself broke. Notes do not fail a panel: a rate()/increase() that is 0 in every series
(the test made the event happen, but rate() saw no increase, typically because the
counter's series appeared only with its first increment), or a quantile that is NaN for
some of its series.
"""

import argparse
import datetime
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def get(base, path, params=None, timeout=10):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:  # Prometheus answers 400/422 with a JSON error
        body = e.read().decode(errors="replace")
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}: {body[:200]}"}


def parse_time(s):
    # RFC 3339 with nanoseconds ("2024-05-01T10:00:00.123456789Z"); Python wants micro.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        return 0.0
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


def wait_ready(base, after, timeout):
    """Prometheus ready, every target up and scraped after `after` (unix time)."""
    deadline = time.time() + timeout
    last = "Prometheus not answering"
    while time.time() < deadline:
        try:
            t = get(base, "/api/v1/targets", timeout=2)
            active = t["data"]["activeTargets"]
            stale = [f"{a['scrapeUrl']} ({a['health']}, last scrape {a['lastScrape']}, {a.get('lastError') or 'no error'})"
                     for a in active
                     if a["health"] != "up" or parse_time(a["lastScrape"]) <= after]
            if active and not stale:
                return None
            last = "targets not yet scraped after the test's last event: " + "; ".join(stale) if active else "no targets"
        except (OSError, ValueError, KeyError, OverflowError) as e:
            last = f"Prometheus: {e}"
        time.sleep(0.2)
    return last


def grafana_vars(dash):
    return [v for v in (dash.get("templating") or {}).get("list") or []]


def substitute(expr, variables, rate_interval):
    seconds = parse_duration(rate_interval)
    builtin = {
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        "__range": rate_interval,
        "__range_s": str(int(seconds)),
        "__range_ms": str(int(seconds * 1000)),
        "__interval_ms": str(int(seconds * 1000)),
    }

    def repl(m):
        name = m.group(1) or m.group(2)
        if name in builtin:
            return builtin[name]
        if name in variables:
            return ".*"
        raise KeyError(f"unknown variable ${name}")

    # ${name}, ${name:format}, $name
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def parse_duration(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s)
    if not m:
        raise ValueError(f"bad duration {s!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def needed_labels(expr, legend):
    labels = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    labels.update(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or ""))
    labels.discard("le")
    return sorted(labels)


def labelset(metric):
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def run_query(base, expr, labels):
    """(problems, summary, notes) of one instant query. Problems fail the panel (none:
    fine); notes are worth a look but do not: a rate that is 0 everywhere although the
    test made the event happen (typically a counter whose series appears with its first
    increment: rate() sees no increase from a sample that did not exist), or a quantile
    that is NaN for some of its series."""
    r = get(base, "/api/v1/query", {"query": expr})
    if r.get("status") != "success":
        return [f"query error: {r.get('errorType', '')} {r.get('error')}"], "", []
    data = r["data"]
    if data["resultType"] == "scalar":
        series = [{"metric": {}, "value": data["result"]}]
    elif data["resultType"] == "vector":
        series = data["result"]
    else:
        return [f"unexpected result type {data['resultType']}"], "", []
    if not series:
        return ["empty result (no series)"], "", []
    values = [float(s["value"][1]) for s in series]
    finite = [v for v in values if not math.isnan(v)]
    summary = ", ".join(f"{labelset(s['metric'])} {s['value'][1]}" for s in series[:4])
    if len(series) > 4:
        summary += f", ... ({len(series)} series)"
    probs, notes = [], []
    if not finite:
        probs.append(f"only NaN ({len(series)} series): no observations in the window")
    elif len(finite) < len(values):
        nan = [labelset(s["metric"]) for s, v in zip(series, values) if math.isnan(v)]
        notes.append(f"NaN (no new observation in the window) for {', '.join(nan)}")
    if finite and re.search(r"\b(rate|increase)\(", expr) and all(v == 0 for v in finite):
        notes.append("every series is 0 over the window: no increase seen")
    for label in labels:
        if not any(s["metric"].get(label) for s in series):
            probs.append(f"no series carries the label {label!r}")
    return probs, summary, notes


def panels_of(dash):
    for p in dash.get("panels") or []:
        yield p
        yield from p.get("panels") or []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--rate-interval", default="30s")
    ap.add_argument("--after", type=float, default=0.0)
    ap.add_argument("--settle", type=float, default=1.5,
                    help="seconds after --after that the last scrape must be past (1.5 at a 1 s scrape "
                         "interval: two scrapes, as rate() needs two samples of a new series)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--results")
    ap.add_argument("--wait-only", action="store_true", help="only wait for the scrapes (see --after)")
    a = ap.parse_args()
    parse_duration(a.rate_interval)

    with open(a.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    variables = {v["name"] for v in grafana_vars(dash)}

    problem = wait_ready(a.prometheus, a.after + a.settle if a.after else 0.0, a.timeout)
    if problem:
        print(f"dashboard_check: {problem}", file=sys.stderr)
        return 2
    if a.wait_only:
        return 0

    # (id, title, ok, detail lines); notes: (title, note)
    results, notes = [], []
    for v in grafana_vars(dash):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", q or "")
        if not m:
            results.append((f"var-{v['name']}", f"variable ${v['name']}", False, [f"not a label_values(metric, label) query: {q!r}"]))
            continue
        expr = substitute(f"count by ({m.group(2)}) ({m.group(1)})", variables, a.rate_interval)
        probs, summary, _ = run_query(a.prometheus, expr, [m.group(2)])
        lines = [f"{q}  ->  {expr}"] + [f"  {p}" for p in probs] + ([f"  = {summary}"] if summary else [])
        results.append((f"var-{v['name']}", f"variable ${v['name']}", not probs, lines))

    for p in panels_of(dash):
        if p.get("type") == "row":
            continue
        ok, lines = True, []
        targets = p.get("targets") or []
        if not targets:
            ok, lines = False, ["no targets"]
        for t in targets:
            raw = t.get("expr", "")
            try:
                expr = substitute(raw, variables, a.rate_interval)
            except KeyError as e:
                ok = False
                lines += [f"target {t.get('refId')}: {raw}", f"  {e.args[0]}"]
                continue
            probs, summary, tnotes = run_query(a.prometheus, expr, needed_labels(raw, t.get("legendFormat")))
            ok = ok and not probs
            notes += [(f"[{row_of(dash, p)}] {p.get('title')}", f"target {t.get('refId')}: {x}") for x in tnotes]
            lines.append(f"target {t.get('refId')}: {expr}")
            lines += [f"  {x}" for x in probs]
            if summary:
                lines.append(f"  = {summary}")
        results.append((str(p.get("id")), f"[{row_of(dash, p)}] {p.get('title')}", ok, lines))

    if a.results:
        os.makedirs(a.results, exist_ok=True)
        with open(os.path.join(a.results, "panels.tsv"), "w", encoding="utf-8") as f:
            for pid, title, ok, lines in results:
                f.write(f"{pid}\t{'ok' if ok else 'FAIL'}\t{title}\n")
                with open(os.path.join(a.results, f"panel-{pid}.txt"), "w", encoding="utf-8") as d:
                    d.write("\n".join(lines) + "\n")
        with open(os.path.join(a.results, "notes.txt"), "w", encoding="utf-8") as f:
            f.writelines(f"{title}: {note}\n" for title, note in notes)
        return 0
    failed = 0
    for pid, title, ok, lines in results:
        print(f"{'ok  ' if ok else 'FAIL'} - dashboard {title}")
        if not ok:
            failed += 1
            print("\n".join("    " + x for x in lines))
        print("".join(f"    note: {n}\n" for t, n in notes if t == title), end="")
    print(f"{len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


def row_of(dash, panel):
    """Title of the row a panel sits under (rows are full-width panels of type row)."""
    title = ""
    for p in dash.get("panels") or []:
        if p.get("type") == "row":
            if panel in (p.get("panels") or []):
                return p.get("title")
            title = p.get("title")
        elif p is panel:
            return title
    return title


if __name__ == "__main__":
    sys.exit(main())
