#!/usr/bin/env python3
"""Runs every Cohort benchmark, each beside its baseline measured in the same
run, then writes bench/results/<date>-<host>.json and PNG charts (gnuplot).

Usage: run_all.py BUILD_DIR [--quick] [--out DIR] [--only NAME ...]
"""
import argparse
import datetime
import resource
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
TIMEOUT_S = {"inprocess": 600, "rpc": 1200, "supervision": 600, "storage": 900, "gateway": 600, "shop": 600, "cluster": 900}


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


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run(build, name, quick, tmp):
    """Runs one benchmark and records the machine's load while it ran: how
    busy the cores were, how much of that was the benchmark itself, and what
    else ran (a figure taken beside other work is not a figure to quote)."""
    out = os.path.join(tmp, name + ".json")
    cmd = [os.path.join(build, "bench", "cohort-bench-" + name), "--json", out] + (["--quick"] if quick else [])
    print("\n$ " + " ".join(cmd), flush=True)
    load_before, (busy0, total0) = loadavg(), cpu_ticks()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = datetime.datetime.now()
    subprocess.run(cmd, check=True, timeout=TIMEOUT_S[name])
    wall = (datetime.datetime.now() - started).total_seconds()
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = cpu_ticks()
    cores = os.cpu_count() or 1
    machine_busy = 100.0 * (busy1 - busy0) / max(1, total1 - total0) * cores  # percent of one core
    own = 100.0 * ((own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)) / max(wall, 1e-9)
    with open(out) as f:
        result = json.load(f)
    if isinstance(result, dict):
        result["machine_load"] = {"wall_s": round(wall, 1), "loadavg_before": load_before, "loadavg_after": loadavg(),
                                  "cores": cores, "busy_percent_of_a_core": round(machine_busy, 1),
                                  "bench_percent_of_a_core": round(own, 1),
                                  "others_percent_of_a_core": round(max(0.0, machine_busy - own), 1)}
        print("machine load during %s: %.0f%% of a core busy, %.0f%% the bench itself, %.0f%% other processes "
              "(load average %.2f -> %.2f)" % (name, machine_busy, own, max(0.0, machine_busy - own), load_before,
                                                loadavg()), flush=True)
    return result


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True, timeout=60)


def bar_chart(png, title, ylabel, rows, extra="", baseline="raw ZeroMQ", first="Cohort (median, min..max)"):
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
plot $d using 2:3:4:xtic(1) title '{first}', '' using 5:6:7 title '{baseline}', \\
     $r using 1:2:3 with labels offset 0,1 notitle
""")
    return png


def curve_chart(png, title, xlabel, ylabel, series, logx=True, logy=False, extra="", ratio=True):
    """Lines with error bars (median, min..max of the repeats), one per
    system; the ratio of the first series to the second is written at each
    point (unless ratio=False: series of different things).
    series: [(name, [(x, {median, min, max}), ...]), ...]."""
    blocks, plots = [], []
    for i, (name, points) in enumerate(series):
        blocks.append("$s%d << EOD\n%s\nEOD" % (i, "\n".join("%g %f %f %f" % (x, v["median"], v["min"], v["max"])
                                                             for x, v in points)))
        plots.append("$s%d using 1:2:3:4 with yerrorlines lw 2 title '%s'" % (i, name))
    if ratio and len(series) >= 2:
        first, second = dict(series[0][1]), dict(series[1][1])
        labels = "\n".join('%g %f "%.2fx"' % (x, first[x]["max"], first[x]["median"] / second[x]["median"])
                           for x in first if x in second and second[x]["median"])
        blocks.append("$r << EOD\n%s\nEOD" % labels)
        plots.append("$r using 1:2:3 with labels offset 0,1 notitle")
    gnuplot("""set terminal pngcairo size 900,500
set output '%s'
set title '%s'
set xlabel '%s'
set ylabel '%s'
%s
%s
set grid
set key top right
set offsets graph 0.04, graph 0.04, graph 0.1, 0
%s
%s
plot %s
""" % (png, title, xlabel, ylabel, "set logscale x 2" if logx else "", "set logscale y" if logy else "set yrange [0:*]",
       extra, "\n".join(blocks), ", \\\n     ".join(plots)))
    return png


def spread(d):
    return {"median": d["median"], "min": d.get("min", d["median"]), "max": d.get("max", d["median"])}


def charts(results, stem):
    rpc = results["rpc"]
    # The first two are the ratio written on the chart; the hop floor and the
    # node with a minimal client show where between them the distance lies.
    systems = [("Cohort", "cohort"), ("raw ZeroMQ", "raw_zeromq"), ("raw ZeroMQ, one hop", "raw_zeromq_one_hop"),
               ("Cohort node, minimal client", "cohort_node_minimal_client"), ("gRPC C++", "grpc")]
    def rpc_series(curve, x, metric):
        return [(name, [(p[x], p[key][metric]) for p in rpc[curve] if key in p]) for name, key in systems]
    one = next(p for p in rpc["window_curve"] if p["in_flight"] == 1)
    pngs = [
        curve_chart(stem + "-rpc-window.png", "Request/reply 64 B over tcp loopback: throughput vs in-flight window "
                    "(ratio: Cohort / raw ZeroMQ)", "requests in flight", "requests / s",
                    rpc_series("window_curve", "in_flight", "throughput"), logy=True),
        curve_chart(stem + "-rpc-payload.png", "Request/reply, 16 in flight: throughput vs payload size "
                    "(ratio: Cohort / raw ZeroMQ)", "payload bytes", "requests / s",
                    rpc_series("payload_curve", "payload", "throughput"), logy=True,
                    extra='set xtics ("64 B" 64, "1 KiB" 1024, "16 KiB" 16384, "256 KiB" 262144, "1 MiB" 1048576)'),
        curve_chart(stem + "-rpc-payload-p99.png", "Request/reply, 16 in flight: p99 latency vs payload size "
                    "(ratio: Cohort / raw ZeroMQ)", "payload bytes", "microseconds",
                    rpc_series("payload_curve", "payload", "p99_us"), logy=True,
                    extra='set xtics ("64 B" 64, "1 KiB" 1024, "16 KiB" 16384, "256 KiB" 262144, "1 MiB" 1048576)'),
        bar_chart(stem + "-rpc-latency.png", "Request/reply 64 B, 1 in flight: latency (ratio: Cohort / gRPC C++)",
                  "microseconds", [(m.split("_")[0], spread(one["cohort"][m]), spread(one["grpc"][m]))
                                   for m in ("p50_us", "p99_us", "p999_us")],
                  "set key top left", baseline="gRPC C++"),
    ]
    fixed = lambda v: {"median": v, "min": v, "max": v}  # a figure measured once: no spread to draw
    tree = results["supervision"].get("restart_latency_by_tree_size", [])
    if tree:
        pngs.append(curve_chart(stem + "-restart-latency.png", "Worker restart latency inside the node vs "
                                "tree size (ratio: p99 / p50)", "workers under the supervisor",
                                "microseconds", [("p99", [(t["workers"], fixed(t["p99_us"])) for t in tree]),
                                                 ("p50", [(t["workers"], fixed(t["p50_us"])) for t in tree])],
                                extra="set key top left"))
    services = rpc.get("services_curve", [])
    if services:
        pngs.append(curve_chart(stem + "-rpc-services.png", "Request/reply 64 B, 64 in flight, to one of N services "
                                "on the node: throughput", "services on the node", "requests / s",
                                [("Cohort", [(p["services"], p["cohort"]["throughput"]) for p in services])]))
        pngs.append(curve_chart(stem + "-rpc-services-p99.png", "Request/reply 64 B, 64 in flight, to one of N "
                                "services on the node: latency (ratio: p99 / p50)", "services on the node",
                                "microseconds", [("p99", [(p["services"], p["cohort"]["p99_us"]) for p in services]),
                                                 ("p50", [(p["services"], p["cohort"]["p50_us"]) for p in services])],
                                extra="set key top left"))
    storage = results["storage"]
    entities = storage.get("entities_curve", [])
    if entities:
        pngs.append(curve_chart(stem + "-entities-rate.png", "Activations (a store read) and wakes (no read) "
                                "vs live entities (ratio: wakes / activations)",
                                "live entities", "per second",
                                [("wakes / s", [(e["live"], fixed(e["wakes_per_second"])) for e in entities]),
                                 ("activations / s", [(e["live"], fixed(e["per_second"])) for e in entities])],
                                logx=False, extra="set logscale x 10\nset key bottom left"))
        pngs.append(curve_chart(stem + "-entities-memory.png", "Memory per live entity at rest (hibernated) vs "
                                "live entities; dashed: the target, 1 KB", "live entities", "bytes per live entity",
                                [("process RSS slope", [(e["live"], fixed(e["bytes_per_live_entity"])) for e in entities]),
                                 ("heap in use (jemalloc) slope",
                                  [(e["live"], fixed(e["heap_bytes_per_live_entity"])) for e in entities])],
                                logx=False, ratio=False,
                                extra="set logscale x 10\nset key bottom right\nset yrange [0:%f]\n"
                                      "set arrow from graph 0, first 1024 to graph 1, first 1024 nohead dt 2 lw 2"
                                      % max([1200] + [1.15 * e[k] for e in entities
                                                      for k in ("bytes_per_live_entity", "heap_bytes_per_live_entity")])))
    sized = storage.get("state_size_curve", [])
    if sized:
        pngs.append(curve_chart(stem + "-state-size.png", "A changing call on one entity vs the size of its state, "
                                "16 in flight, sync (ratio: event-sourced / plain)", "state bytes", "calls / s",
                                [("event-sourced: an event per call, a snapshot per 100",
                                  [(p["state_bytes"], p["event_sourced"]) for p in sized]),
                                 ("plain: the whole state written per call",
                                  [(p["state_bytes"], p["plain"]) for p in sized])], logy=True,
                                extra='set xtics ("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576)\n'
                                      'set key bottom left'))
    writes = sorted(results["storage"]["durable_writes"].items(), key=lambda kv: int(kv[0]))
    data = "\n".join("%s %f %f %f %f %f %f %f %f %f" % (k, v["cohort"], v.get("cohort_min", v["cohort"]), v.get("cohort_max", v["cohort"]),
                                                        v["raw"], v.get("raw_min", v["raw"]), v.get("raw_max", v["raw"]),
                                                        v.get("network_floor", 0), v.get("network_floor_min", 0),
                                                        v.get("network_floor_max", 0))
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
     '' using 1:8:9:10 with yerrorlines lw 2 dt 2 title 'raw ZeroMQ + RocksDB (sync, group commit): the floor over the network', \\
     $r using 1:2:3 with labels offset 0,1 notitle
""")
    pngs.append(png)
    shop = results["shop"]
    floor = shop["raw_disk_floor_checkouts_per_s"]
    floor_bar = fixed(floor)
    pngs.append(bar_chart(stem + "-shop-checkouts.png", "The shop: checkouts per second (ratio: Cohort / raw-disk floor)",
                          "checkouts / s",
                          [("embedded (1 process)", spread(shop["embedded"]), floor_bar),
                           ("split (3 processes)", spread(shop["split"]), floor_bar)],
                          "set key below", baseline="raw RocksDB floor (same fsynced writes)"))
    native = results["gateway"]["native"]
    if "spreads" in native:
        hop = native["spreads"]
        pngs.append(bar_chart(stem + "-gateway-hop.png",
                              "One hop, 64 B, 64 in flight (ratio: through the hop / direct, each system)",
                              "requests / s",
                              [("Cohort: a gateway node", spread(hop["gateway"]), spread(hop["direct"])),
                               ("raw ZeroMQ through its proxy", spread(hop["raw_proxy"]), spread(hop["raw_direct"]))],
                              "set key below", baseline="direct (same run)", first="through the hop (median, min..max)"))
    routing = results["cluster"]["routing"]
    pngs.append(bar_chart(stem + "-cluster-routing.png",
                          "Sharded counter.get, 16 in flight (ratio: cluster / single node without [cluster])",
                          "requests / s",
                          [("key owned by the node asked", spread(routing["owned"]), spread(routing["single"])),
                           ("forwarded to the owner", spread(routing["forwarded"]), spread(routing["single"]))],
                          "set key below", baseline="single node (same run)"))
    return pngs


def summarize_targets(results):
    """Every benchmark's targets in one table (the same verdicts as each
    benchmark's own text and JSON), kept in the results as "targets"."""
    rows = []
    for name in PROGRAMS:
        r = results.get(name)
        if isinstance(r, dict):
            rows += [dict(t, bench=name) for t in r.get("targets", [])]
    results["targets"] = rows
    short = [t for t in rows if not t["pass"]]
    print("\nTargets: %d checked, %d short%s" % (len(rows), len(short), " (quick run: not figures to quote)"
                                                  if results.get("quick") else ""))
    for t in rows:
        print("  %-11s %-42s %-22s %9.2f  %-24s spread %4.0f%%  %s" % (
            t["bench"], t["scenario"], t["metric"], t["value"], t["target"], t["spread_percent"],
            "pass" if t["pass"] else "SHORT"))


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
    summarize_targets(results)
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=2)
    pngs = [] if args.only else charts(results, stem)  # the charts need every benchmark
    print("\nresults: " + stem + ".json")
    for p in pngs:
        print("chart:   " + p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
