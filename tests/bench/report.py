"""Results of the benchmark: medians, ratios, the targets, and the files written
(latest.json, latest.csv, latest.svg through gnuplot).

results = {"meta": {...}, "scenarios": [{"id", "title", "description", "metrics":
[[key, label, unit, higher_is_better, shown_for_direct], ...], "runs": {target:
[{"round", "metrics": {...}, "errors", "notes", "failed"}]}, "na": {target: why}}]}
"""

import csv
import json
import shutil
import statistics
import subprocess

TARGET_LABELS = {"rproxy": "rproxy", "nginx": "nginx", "haproxy": "haproxy",
                 "direct": "direct (ceiling)"}
COLORS = {"rproxy": 0xd95f02, "nginx": 0x1b9e77, "haproxy": 0x7570b3, "direct": 0x999999}


def stats(sc, target, key):
    """(median, min, max, n) of a metric over the runs that produced it, or None."""
    vals = [r["metrics"][key] for r in sc["runs"].get(target, [])
            if r["metrics"].get(key) is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def summarize(results):
    """Adds "summary": {target: {key: {median, min, max, n}}} to each scenario."""
    for sc in results["scenarios"]:
        summ = {}
        for target in sc["runs"]:
            summ[target] = {}
            for m in sc["metrics"]:
                s = stats(sc, target, m[0])
                if s:
                    summ[target][m[0]] = dict(zip(("median", "min", "max", "n"), s))
        sc["summary"] = summ
    results["targets"] = targets(results)
    return results


def _fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("req/s", "hs/s", "KiB", "bytes", "conns"):
        return "{:,.0f}".format(v)
    if unit == "x":
        return "{:.2f}".format(v)
    if unit == "%":
        return "{:.0f}".format(v)
    if unit == "us":
        return "{:,.0f}".format(v) if v >= 100 else "{:.1f}".format(v)
    return "{:,.1f}".format(v)


def _median(results, sid, target, key):
    for sc in results["scenarios"]:
        if sc["id"] == sid:
            m = sc.get("summary", {}).get(target, {}).get(key)
            return m["median"] if m else None
    return None


def _max(results, sid, target, key):
    for sc in results["scenarios"]:
        if sc["id"] == sid:
            m = sc.get("summary", {}).get(target, {}).get(key)
            return m["max"] if m else None
    return None


def _na(results, sid, target):
    for sc in results["scenarios"]:
        if sc["id"] == sid:
            return sc["na"].get(target)
    return None


def targets(results):
    """The project's targets (docs/BENCHMARKS.md), judged on this run's medians.
    Each: {name, want, measured, met (True/False/None when not measured)}."""
    out = []

    def add(name, want, measured, met):
        out.append({"name": name, "want": want, "measured": measured, "met": met})

    def ratio(a, b):
        return a / b if a is not None and b else None

    def scenario_ran(sid):
        return any(sc["id"] == sid for sc in results["scenarios"])

    def capacity(sid):
        """What req/s leave out: the CPU per request ratio, and how busy rproxy's core
        and the load CPU were (a saturated load CPU caps every proxy's req/s)."""
        cpu = ratio(_median(results, sid, "rproxy", "cpu_us"),
                    _median(results, sid, "nginx", "cpu_us"))
        busy = _median(results, sid, "rproxy", "cpu_pct")
        load = _median(results, sid, "rproxy", "load_pct")
        if cpu is None or busy is None or load is None:
            return ""
        return ("; CPU per request %.2f x nginx's (%.2f x its req/s per CPU second), "
                "rproxy's core %.0f %% busy, the load CPU %.0f %%" % (cpu, 1 / cpu, busy, load))

    if scenario_ran("keepalive"):
        r = ratio(_median(results, "keepalive", "rproxy", "req_s"),
                  _median(results, "keepalive", "nginx", "req_s"))
        add("small keep-alive GETs: req/s", ">= 1.3 x nginx",
            None if r is None else "%.2f x nginx%s" % (r, capacity("keepalive")),
            None if r is None else r >= 1.3)
    if scenario_ran("close"):
        rp = _median(results, "close", "rproxy", "cpu_us")
        peers = [v for v in (_median(results, "close", "nginx", "cpu_us"),
                             _median(results, "close", "haproxy", "cpu_us")) if v]
        r = min(peers) / rp if rp and peers else None
        add("Connection: close clients: proxy CPU per request", ">= 1.1 x the better peer "
            "(better peer's CPU/req / rproxy's)",
            None if r is None else "%.2f x (rproxy %.1f us, better peer %.1f us)"
            % (r, rp, min(peers)), None if r is None else r >= 1.1)
    if scenario_ran("lua"):
        r = ratio(_median(results, "lua", "rproxy", "req_s"),
                  _median(results, "lua", "nginx", "req_s"))
        na = _na(results, "lua", "rproxy")
        add("Lua hook: req/s", ">= 1.2 x nginx+Lua",
            na if r is None else "%.2f x nginx+Lua%s" % (r, capacity("lua")),
            None if r is None else r >= 1.2)
    if scenario_ran("large"):
        for key, what in (("down_MBps", "download"), ("up_MBps", "upload")):
            r = ratio(_median(results, "large", "rproxy", key),
                      _median(results, "large", "nginx", key))
            add("100 MiB %s: MB/s" % what, ">= 1.2 x nginx",
                None if r is None else "%.2f x nginx" % r, None if r is None else r >= 1.2)
        g = _max(results, "large", "rproxy", "rss_growth_kib")
        add("100 MiB transfers: proxy RSS growth (worst run)", "< 1 MiB (1024 KiB)",
            None if g is None else "%d KiB" % g, None if g is None else g < 1024)
    if scenario_ran("latency"):
        a = _median(results, "latency", "rproxy", "p99_us")
        b = _median(results, "latency", "nginx", "p99_us")
        add("p99 latency at a fixed moderate rate", "<= nginx's",
            None if a is None or b is None else "rproxy %.0f us, nginx %.0f us" % (a, b),
            None if a is None or b is None else a <= b)
    if scenario_ran("idle"):
        v = _median(results, "idle", "rproxy", "bytes_per_conn")
        add("idle client connections: RSS per connection", "<= 640 bytes",
            None if v is None else "%.0f bytes" % v, None if v is None else v <= 640)
    if scenario_ran("tls"):
        na = _na(results, "tls", "rproxy")
        for key, what, want in (("full", "TLS 1.2 full handshakes/s (client certificate)",
                                 2.0),
                                ("res", "TLS 1.2 resumed handshakes/s (tickets on)", 1.5),
                                ("resid", "TLS 1.2 resumed handshakes/s (session id, tickets "
                                 "off on all three)", 1.5),
                                ("full13", "TLS 1.3 full handshakes/s (client certificate)",
                                 2.0),
                                ("res13", "TLS 1.3 resumed handshakes/s", 1.5)):
            a = _median(results, "tls", "rproxy", key + "_hs")
            b = _median(results, "tls", "nginx", key + "_hs")
            ca = _median(results, "tls", "rproxy", key + "_cpu_us")
            cb = _median(results, "tls", "nginx", key + "_cpu_us")
            r = ratio(a, b)
            measured = na
            if r is not None:
                measured = "%.2f x nginx (%.0f vs %.0f/s; CPU per handshake %.0f vs %.0f us)" \
                    % (r, a, b, ca or 0, cb or 0)
            add(what, ">= %.1f x nginx" % want, measured, None if r is None else r >= want)
        # the ratio of each run (full then resumed on the same proxy, a few seconds
        # apart), median over the rounds: less exposed to the machine's noise than
        # the ratio of the two medians
        r = _median(results, "tls", "rproxy", "res_x_full")
        a = _median(results, "tls", "rproxy", "res_hs")
        b = _median(results, "tls", "rproxy", "full_hs")
        add("TLS 1.2 resumed handshakes/s against its own full ones", ">= 3.3 x rproxy's "
            "full handshakes/s (median of the runs' ratios)",
            na if r is None else "%.2f x (medians: %.0f resumed, %.0f full/s)" % (r, a, b),
            None if r is None else r >= 3.3)
    return out


def table(results):
    """The text tables printed at the end of a run (and copied into BENCHMARKS.md)."""
    lines = []
    meta = results["meta"]
    lines.append("rproxy bench, %s: %d round(s) x %d s; medians (min-max); ratio = median / "
                 "peer's median" % (meta["date"], meta["rounds"], meta["duration"]))
    v = meta["versions"]
    lines.append("%s (%s), %s, %s, %s, %s; %s x %d; kernel %s; CPUs busy with other work "
                 "before the run: %s" % (v["rproxy"], v["commit"],
                                  v["nginx"].replace("nginx version: ", ""),
                                  " ".join(v["haproxy"].split()[:3]), v["wrk"].split(" [")[0],
                                  " ".join(v.get("openssl", "?").split()[:2]),
                                  v["cpu_model"], v["cpus"], v["kernel"],
                                  ", ".join("%s %d%%" % kv for kv in
                                            sorted(meta.get("background_cpu_busy_pct", {})
                                                   .items()))))
    for i, sc in enumerate(results["scenarios"], 1):
        lines.append("")
        lines.append("[%d] %s" % (i, sc["description"]))
        lines.append("  %-26s %10s  %-21s %7s %9s" % ("", "median", "min-max", "x nginx",
                                                       "x haproxy"))
        for key, label, unit, higher, for_direct in sc["metrics"]:
            head = label if label == unit else "%s, %s" % (label, unit)
            if higher is None:
                lines.append("  -- %s" % head)
            else:
                lines.append("  -- %s (%s is better)" % (head, "higher" if higher else "lower"))
            base = {p: sc.get("summary", {}).get(p, {}).get(key) for p in ("nginx", "haproxy")}
            for target in sc["targets"]:
                if target == "direct" and not for_direct:
                    continue
                name = sc.get("labels", {}).get(target, TARGET_LABELS[target])
                if target in sc["na"]:
                    if key == sc["metrics"][0][0]:
                        lines.append("  %-26s %s" % (name, sc["na"][target]))
                    continue
                s = sc.get("summary", {}).get(target, {}).get(key)
                if not s:
                    why = _failure(sc, target)
                    lines.append("  %-26s %10s  %s" % (name, "-", why))
                    continue
                ratios = []
                for p in ("nginx", "haproxy"):
                    b = base[p]
                    ratios.append("%.2f" % (s["median"] / b["median"])
                                  if b and b["median"] and higher is not None else "")
                err = _errors(sc, target)
                row = ("  %-26s %10s  %-21s %7s %9s  %s"
                       % (name, _fmt(s["median"], unit),
                          "%s-%s" % (_fmt(s["min"], unit), _fmt(s["max"], unit)),
                          ratios[0], ratios[1], err))
                lines.append(row.rstrip())
    lines.append("")
    lines.append("Targets (rproxy, from this run):")
    for t in results.get("targets", []):
        met = {True: "MET", False: "NOT MET", None: "not measured"}[t["met"]]
        lines.append("  %-13s %s: want %s; measured %s" % (met, t["name"], t["want"],
                                                           t["measured"] or "-"))
    return "\n".join(lines)


def markdown(results):
    """A compact Markdown table of the medians and the targets (results/latest.md),
    the form docs/BENCHMARKS.md shows."""
    out = ["| scenario | metric | rproxy | nginx | haproxy | direct (ceiling) | rproxy / nginx "
           "| rproxy / haproxy |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for sc in results["scenarios"]:
        first = True
        for key, label, unit, higher, for_direct in sc["metrics"]:
            if higher is None:
                continue
            summ = sc.get("summary", {})
            cells = []
            for t in ("rproxy", "nginx", "haproxy", "direct"):
                if t not in sc["targets"] or (t == "direct" and not for_direct):
                    cells.append("")
                elif t in sc["na"]:
                    cells.append(sc["na"][t] if first else "")
                elif key in summ.get(t, {}):
                    cells.append(_fmt(summ[t][key]["median"], unit))
                else:
                    cells.append("-")
            ratios = []
            for p in ("nginx", "haproxy"):
                a, b = summ.get("rproxy", {}).get(key), summ.get(p, {}).get(key)
                ratios.append("%.2f" % (a["median"] / b["median"]) if a and b and b["median"]
                              else "")
            better = "higher" if higher else "lower"
            head = label if label == unit else "%s (%s)" % (label, unit)
            out.append("| %s | %s, %s is better | %s | %s |"
                       % (sc["title"] if first else "", head, better, " | ".join(cells),
                          " | ".join(ratios)))
            first = False
    out.append("")
    out.append("| target (rproxy) | wanted | measured | |")
    out.append("|---|---|---|---|")
    for t in results.get("targets", []):
        met = {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]
        out.append("| %s | %s | %s | %s |" % (t["name"], t["want"], t["measured"] or "-", met))
    return "\n".join(out) + "\n"


def _errors(sc, target):
    runs = sc["runs"].get(target, [])
    n = sum(r.get("errors") or 0 for r in runs)
    failed = sum(1 for r in runs if r.get("failed"))
    crashed = [r["crashed"] for r in runs if r.get("crashed")]
    parts = []
    if n:
        parts.append("%d errors" % n)
    if failed:
        parts.append("%d run(s) failed" % failed)
    if crashed:
        parts.append("CRASHED: %s" % crashed[0])
    return "; ".join(parts)


def _failure(sc, target):
    runs = sc["runs"].get(target, [])
    msgs = [r["failed"] for r in runs if r.get("failed")]
    return "all runs failed: %s" % msgs[0].splitlines()[0] if msgs else "not run"


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


def write_csv(results, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "target", "round", "metric", "unit", "value", "errors"])
        for sc in results["scenarios"]:
            for target, runs in sc["runs"].items():
                for r in runs:
                    for key, _, unit, _, _ in sc["metrics"]:
                        v = r["metrics"].get(key)
                        if v is not None:
                            w.writerow([sc["id"], target, r["round"], key, unit,
                                        "%.3f" % v, r.get("errors") or 0])


# Panels of the chart: (scenario, metric, title)
PANELS = (("keepalive", "req_s", "small GET, keep-alive: req/s (higher is better)"),
          ("close", "req_s", "Connection: close: req/s (higher is better)"),
          ("close", "cpu_us", "Connection: close: CPU us/request (lower is better)"),
          ("lua", "req_s", "Lua policy: req/s (higher is better)"),
          ("latency", "p99_us", "p99 latency at about 5k req/s, us (lower is better)"),
          ("idle", "bytes_per_conn", "RSS per idle connection, bytes (lower is better)"),
          ("large", "down_MBps", "100 MiB download: MB/s (higher is better)"),
          ("large", "up_MBps", "100 MiB upload: MB/s (higher is better)"),
          ("large", "rss_growth_kib", "RSS growth in transfers, KiB (lower is better)"),
          ("tls", "full_hs", "TLS 1.2 full handshakes/s, client cert (higher is better)"),
          ("tls", "full_cpu_us", "CPU us per full TLS handshake (lower is better)"),
          ("tls", "res_hs", "TLS 1.2 resumed handshakes/s (higher is better)"),
          ("tls", "resid_hs", "TLS 1.2 resumed by session id/s (higher is better)"),
          ("tls", "full13_hs", "TLS 1.3 full handshakes/s, client cert (higher is better)"),
          ("tls", "res13_hs", "TLS 1.3 resumed handshakes/s (higher is better)"))


def write_svg(results, path, terminal="svg"):
    """Writes a gnuplot chart of the medians (bars) with min-max whiskers
    (terminal "pngcairo" for a PNG). Returns None, or why no chart was made."""
    if not shutil.which("gnuplot"):
        return "gnuplot not installed"
    by_id = {sc["id"]: sc for sc in results["scenarios"]}
    panels = [p for p in PANELS if p[0] in by_id]
    if not panels:
        return "no scenario to chart"
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    meta = results["meta"]
    g = ['set terminal %s size %d,%d enhanced font "sans,10" background "white"'
         % (terminal, 1200, 300 * rows),
         'set output "%s"' % path,
         'set style fill solid 0.85 border -1',
         'set boxwidth 0.6', 'set grid ytics', 'set yrange [0:*]', 'set xrange [-0.6:3.6]',
         'set xtics nomirror scale 0', 'set format y "%g"', 'set key off',
         'set offsets 0,0,graph 0.12,0',
         'set multiplot layout %d,%d title "rproxy bench, %s: medians of %d round(s) x %d s; '
         'whiskers min-max; proxies on 1 core"'
         % (rows, cols, meta.get("date", ""), meta["rounds"], meta["duration"])]
    for i, (sid, key, title) in enumerate(panels):
        sc = by_id[sid]
        data, labels = [], []
        for x, target in enumerate(("rproxy", "nginx", "haproxy", "direct")):
            if target not in sc["targets"]:
                continue
            s = sc.get("summary", {}).get(target, {}).get(key)
            if target == "direct" and not {m[0]: m[4] for m in sc["metrics"]}[key]:
                continue
            if target in sc["na"] or not s:
                labels.append('set label %d "%s: n/a" at first %d, graph 0.08 center'
                              % (len(labels) + 1, target, x))
                continue
            unit = {m[0]: m[2] for m in sc["metrics"]}[key]
            data.append('%d "%s" %g %g %g %d "%s"'
                        % (x, sc.get("labels", {}).get(target, TARGET_LABELS[target])
                           .split()[0], s["median"], s["min"],
                           s["max"], COLORS[target], _fmt(s["median"], unit)))
        g.append('set title "%s"' % title)
        g.extend(labels)
        if not data:
            g.append('set label 99 "no data" at graph 0.5,0.5 center')
            g.append('plot 0 with lines lc rgb "white"')
            g.append('unset label')
            continue
        g.append("$d%d << EOD" % i)
        g.extend(data)
        g.append("EOD")
        g.append('plot $d%d using 1:3:6:xtic(2) with boxes lc rgb variable, '
                 '"" using 1:3:4:5 with yerrorbars lc rgb "black" pt 0, '
                 '"" using 1:5:7 with labels offset 0,0.7' % i)
        g.append("unset label")
    g.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(g) + "\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    if r.returncode != 0:
        return "gnuplot failed: %s" % r.stdout[-500:]
    return None
