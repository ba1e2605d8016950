#!/usr/bin/env python3
"""Runs every Cohort benchmark, each beside its baseline measured in the same
run, then writes bench/results/<date>-<host>.json and PNG charts (gnuplot).

Usage: run_all.py BUILD_DIR [--quick] [--out DIR] [--only NAME ...]
"""
import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
PROGRAMS = ["inprocess", "rpc", "supervision", "storage", "gateway", "shop", "cluster"]
# Every program is bounded; these are generous ceilings, not expectations.
TIMEOUT_S = {"inprocess": 600, "rpc": 600, "supervision": 600, "storage": 900, "gateway": 600, "shop": 600, "cluster": 900}


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
            "host": socket.gethostname(), "date": datetime.datetime.now().isoformat(timespec="seconds")}


def run(build, name, quick, tmp):
    out = os.path.join(tmp, name + ".json")
    cmd = [os.path.join(build, "bench", "cohort-bench-" + name), "--json", out] + (["--quick"] if quick else [])
    print("\n$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=TIMEOUT_S[name])
    with open(out) as f:
        return json.load(f)


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True, timeout=60)


def bar_chart(png, title, ylabel, rows, extra="", baseline="raw ZeroMQ"):
    """A clustered bar chart, Cohort beside its baseline, each bar the median
    of the runs with the spread (min..max) as an error bar and the ratio
    Cohort/baseline written over each pair. rows: (label, cohort, baseline),
    each of cohort and baseline a dict with median, min and max."""
    data = "\n".join('"%s" %f %f %f %f %f %f' % (label, c["median"], c["min"], c["max"], b["median"], b["min"], b["max"])
                      for label, c, b in rows)
    labels = "\n".join('%d %f "%.2fx"' % (i, max(c["max"], b["max"]), c["median"] / b["median"] if b["median"] else 0)
                        for i, (_, c, b) in enumerate(rows))
    gnuplot(f"""set terminal pngcairo size 900,500
set output '{png}'
set title '{title}'
set ylabel '{ylabel}'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
{extra}
$d << EOD
{data}
EOD
$r << EOD
{labels}
EOD
plot $d using 2:3:4:xtic(1) title 'Cohort (median, min..max)', '' using 5:6:7 title '{baseline}', \\
     $r using 1:2:3 with labels offset 0,1 notitle
""")
    return png


def spread(d):
    return {"median": d["median"], "min": d.get("min", d["median"]), "max": d.get("max", d["median"])}


def charts(results, stem):
    rpc = results["rpc"]
    thr = [r for r in rpc if r["metric"].startswith("throughput")]
    lat = [r for r in rpc if "latency" in r["metric"] and r["scenario"].endswith(" 1 in flight")]
    pngs = [
        bar_chart(stem + "-rpc-throughput.png", "Request/reply over tcp loopback: throughput (ratio: Cohort / raw ZeroMQ)",
                  "requests / s", [(r["scenario"], spread(r["cohort"]), spread(r["baseline"])) for r in thr],
                  "set key top right\nset xtics rotate by -20"),
        bar_chart(stem + "-rpc-latency.png", "Request/reply, 1 in flight: latency percentiles (ratio: Cohort / raw ZeroMQ)",
                  "microseconds",
                  [("%s %s" % (r["scenario"].split(",")[0], r["metric"].split()[0]), spread(r["cohort"]), spread(r["baseline"]))
                   for r in lat],
                  "set xtics rotate by -30"),
    ]
    writes = sorted(results["storage"]["durable_writes"].items(), key=lambda kv: int(kv[0]))
    data = "\n".join("%s %f %f %f %f %f %f" % (k, v["cohort"], v.get("cohort_min", v["cohort"]), v.get("cohort_max", v["cohort"]),
                                               v["raw"], v.get("raw_min", v["raw"]), v.get("raw_max", v["raw"]))
                     for k, v in writes)
    labels = "\n".join('%s %f "%.2fx"' % (k, v.get("cohort_max", v["cohort"]), v["ratio"]) for k, v in writes)
    png = stem + "-durable-writes.png"
    gnuplot(f"""set terminal pngcairo size 900,500
set output '{png}'
set title 'Durable (fsynced) writes vs concurrency (ratio: Cohort / raw RocksDB)'
set xlabel 'concurrent clients / writer threads'
set ylabel 'writes / s'
set logscale x 2
set grid
set key top left
$d << EOD
{data}
EOD
$r << EOD
{labels}
EOD
plot $d using 1:2:3:4 with yerrorlines lw 2 title 'Cohort service (sync; median, min..max)', \\
     '' using 1:5:6:7 with yerrorlines lw 2 title 'raw RocksDB (sync)', \\
     $r using 1:2:3 with labels offset 0,1 notitle
""")
    pngs.append(png)
    shop = results["shop"]
    floor = shop["raw_disk_floor_checkouts_per_s"]
    fixed = {"median": floor, "min": floor, "max": floor}
    pngs.append(bar_chart(stem + "-shop-checkouts.png", "The shop: checkouts per second (ratio: Cohort / raw-disk floor)",
                          "checkouts / s",
                          [("embedded (1 process)", spread(shop["embedded"]), fixed),
                           ("split (3 processes)", spread(shop["split"]), fixed)],
                          "set key below", baseline="raw RocksDB floor (same fsynced writes)"))
    routing = results["cluster"]["routing"]
    pngs.append(bar_chart(stem + "-cluster-routing.png",
                          "Sharded counter.get, 16 in flight (ratio: cluster / single node without [cluster])",
                          "requests / s",
                          [("key owned by the node asked", spread(routing["owned"]), spread(routing["single"])),
                           ("forwarded to the owner", spread(routing["forwarded"]), spread(routing["single"]))],
                          "set key below", baseline="single node (same run)"))
    return pngs


def main():
    parser = argparse.ArgumentParser(
        description="Run every Cohort benchmark beside its same-run baseline; write "
                    "bench/results/<date>-<host>.json and PNG charts.")
    parser.add_argument("build", metavar="BUILD_DIR",
                        help="a Release build directory holding bench/cohort-bench-* (make release)")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke check, not figures to quote")
    parser.add_argument("--out", default=RESULTS, metavar="DIR",
                        help="where the JSON and the charts go (default: bench/results)")
    parser.add_argument("--only", nargs="+", choices=PROGRAMS, metavar="NAME",
                        help="run only these benchmarks (%s)" % ", ".join(PROGRAMS))
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.build, "bench")):
        parser.error("%s has no bench/ directory: build it first (make release)" % args.build)
    build, quick = args.build, args.quick
    results = {"machine": machine(), "quick": quick}
    with tempfile.TemporaryDirectory(prefix="cohort-bench-") as tmp:
        for name in (args.only or PROGRAMS):
            results[name] = run(build, name, quick, tmp)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, datetime.date.today().isoformat() + "-" + socket.gethostname())
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=2)
    pngs = [] if args.only else charts(results, stem)  # the charts need every benchmark
    print("\nresults: " + stem + ".json")
    for p in pngs:
        print("chart:   " + p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
