#!/usr/bin/env python3
"""make budget: what one request costs, by thread, in each request/reply
system of cohort-bench-rpc (bench/README.md, Profiles, "The hop is not the
limit").

For each system, alone (--system), at one point (64 B, 64 in flight by
default): `perf stat --per-thread -e task-clock,context-switches` over a
window in the middle of the measurement, divided by the requests the bench
answered in that window (its req/s times the window). Prints one table, CPU
µs and context switches per request by thread role, and writes it with the
raw perf output under bench/results/profiles/<label>/; then the protocol's
own work per request on one warm thread (cohort-bench-codec), for scale.

Usage: bench/profile/budget.py BUILD_DIR LABEL [--window N] [--payload B] [--rounds R] [--seconds S] [--out DIR]
       [--systems raw,hop,node,cohort]
"""
import argparse
import os
import re
import subprocess
import sys
import time

SYSTEMS = [("raw", "raw ZeroMQ"), ("hop", "raw ZeroMQ, one hop"), ("node", "Cohort's node, minimal client"),
           ("cohort", "Cohort")]

# Thread names (comm) to roles. The bench's main thread is the client (its tid
# is the pid); of the two ZeroMQ I/O threads the server's context starts
# first. "First" by start time, not by tid: tids wrap around.
def role(comm, tid, zmq_tids, started):
    if comm.startswith("ZMQbg/IO"):
        first = min(zmq_tids, key=lambda t: (started.get(t, 0), t))
        return "ZeroMQ I/O thread, server" if tid == first else "ZeroMQ I/O thread, client"
    if comm == "cohort-io":
        return "socket thread"
    if comm == "caf.multiplexer":
        return "handler thread(s)"
    if comm.startswith("cohort-bench-r"):
        return None  # resolved below: main thread or the raw servers' threads
    return "other"


def measure(build, system, window, payload, seconds, out_dir, round_no):
    bench = os.path.join(build, "bench", "cohort-bench-rpc")
    duration_ms = int((seconds + 4) * 1000)
    proc = subprocess.Popen([bench, "--curves-only", "--system", system, "--windows", str(window), "--payloads",
                             str(payload), "--services", "1", "--repeats", "1", "--duration-ms", str(duration_ms)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.0)  # start-up and warm-up: the window opens inside the measurement
    stat_file = os.path.join(out_dir, f"{system}-{round_no}.perf-stat.txt")
    subprocess.run(["perf", "stat", "--per-thread", "-e", "task-clock,context-switches", "-p", str(proc.pid),
                    "-o", stat_file, "--", "sleep", str(seconds)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = thread_start_times(proc.pid)
    output, _ = proc.communicate(timeout=duration_ms / 1000 * 3 + 60)
    with open(os.path.join(out_dir, f"{system}-{round_no}.bench.txt"), "w") as f:
        f.write(output)
    # The system measured is the only non-zero req/s on the point's line.
    line = next(l for l in output.splitlines() if f"{window} in flight" in l)
    rates = [float(v) * (1000 if k == "k" else 1) for v, k in re.findall(r" ([0-9.]+)(k?) +\(", " " + line.split("  req/s ")[1])]
    first = re.search(r"req/s cohort ([0-9.]+)(k?)", line)
    rates.append(float(first.group(1)) * (1000 if first.group(2) else 1))
    rate = max(rates)
    threads = {}
    for l in open(stat_file):
        m = re.match(r"\s*(\S+)-(\d+)\s+([0-9.,]+)\s+(msec task-clock|context-switches)", l)
        if not m:
            continue
        comm, tid, value, what = m.group(1), int(m.group(2)), float(m.group(3).replace(",", "")), m.group(4)
        t = threads.setdefault(tid, {"comm": comm, "cpu_ms": 0.0, "cs": 0.0})
        t["cpu_ms" if what.startswith("msec") else "cs"] += value
    for tid, t in threads.items():
        t["started"] = started.get(tid, 0)
    return rate, threads, proc.pid


def thread_start_times(pid):
    """Each thread's start time (clock ticks since boot, /proc/PID/task/TID/stat field 22)."""
    out = {}
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir) if os.path.isdir(task_dir) else []:
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[19])  # field 22 counted from 1, after pid and (comm)
        except (OSError, IndexError, ValueError):
            pass
    return out


def roles_of(system, threads, pid):
    zmq_tids = [tid for tid, t in threads.items() if t["comm"].startswith("ZMQbg/IO") and t["cpu_ms"] > 1]
    busy_bench = sorted(((t["cpu_ms"], tid) for tid, t in threads.items()
                         if t["comm"].startswith("cohort-bench-r") and t["cpu_ms"] > 1), reverse=True)
    main_tid = pid
    started = {tid: t.get("started", 0) for tid, t in threads.items()}
    out = {}
    for tid, t in threads.items():
        if t["cpu_ms"] <= 1:
            continue  # idle threads (the systems not measured, timers)
        r = role(t["comm"], tid, zmq_tids, started)
        if r is None:
            if tid == main_tid:
                r = "client thread"
            elif system == "hop" and busy_bench and tid == busy_bench[-1][1] and len(busy_bench) > 2:
                r = "handler thread(s)"  # the hop's second thread: the lighter of the two server threads
            else:
                r = "socket thread"
        o = out.setdefault(r, {"cpu_ms": 0.0, "cs": 0.0})
        o["cpu_ms"] += t["cpu_ms"]
        o["cs"] += t["cs"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("label")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the table gives the median round")
    ap.add_argument("--out", help="where to write (default: bench/results/profiles/LABEL)")
    ap.add_argument("--systems", default=",".join(s for s, _ in SYSTEMS),
                    help="comma-separated subset of " + ", ".join(s for s, _ in SYSTEMS))
    a = ap.parse_args()
    wanted = a.systems.split(",")
    unknown = [w for w in wanted if w not in dict(SYSTEMS)]
    if unknown:
        ap.error("unknown system(s): " + ", ".join(unknown))
    systems = [(s, name) for s, name in SYSTEMS if s in wanted]
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = a.out or os.path.join(here, "..", "results", "profiles", a.label)
    os.makedirs(out_dir, exist_ok=True)
    rows = ["client thread", "ZeroMQ I/O thread, client", "ZeroMQ I/O thread, server", "socket thread",
            "handler thread(s)", "other"]
    per_system = {}
    for r in range(a.rounds):
        for system, _ in systems:
            rate, threads, pid = measure(a.build, system, a.window, a.payload, a.seconds, out_dir, r)
            requests = rate * a.seconds
            roles = roles_of(system, threads, pid)
            per_system.setdefault(system, []).append(
                (rate, {k: (v["cpu_ms"] * 1000 / requests, v["cs"] / requests) for k, v in roles.items()}))
            print(f"round {r}: {system} {rate:,.0f} req/s", file=sys.stderr)
    lines = [f"CPU µs per request by thread (context switches per request), {a.payload} B, {a.window} in flight, "
             f"median of {a.rounds} alternating rounds of {a.seconds} s (perf stat --per-thread)", ""]
    chosen = {}
    for system, _ in systems:
        runs = sorted(per_system[system], key=lambda x: x[0])
        chosen[system] = runs[len(runs) // 2]
    lines.append("| thread | " + " | ".join(f"{name} ({chosen[s][0] / 1000:.0f}k/s)" for s, name in systems) + " |")
    lines.append("|---|" + "---|" * len(systems))
    for row in rows:
        cells = []
        for s, _ in systems:
            v = chosen[s][1].get(row)
            cells.append(f"{v[0]:.2f} ({v[1]:.2f})" if v else "-")
        if any(c != "-" for c in cells):
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    totals = []
    for s, _ in systems:
        cpu = sum(v[0] for v in chosen[s][1].values())
        cs = sum(v[1] for v in chosen[s][1].values())
        totals.append(f"**{cpu:.2f}** ({cs:.2f})")
    lines.append("| **total** | " + " | ".join(totals) + " |")
    lines.append("")
    lines.append("every round: " + "; ".join(f"{s} " + " / ".join(f"{r[0] / 1000:.0f}k" for r in per_system[s])
                                             for s, _ in systems))
    codec_ok = True
    if a.payload <= 1 << 20:
        # The protocol's own share: its encoding and decoding per request on one
        # warm thread (cohort-bench-codec), beside copying the same bytes.
        codec = os.path.join(a.build, "bench", "cohort-bench-codec")
        quick = ["--quick"] if a.seconds <= 1 else []
        out = subprocess.run([codec, "--payload", str(a.payload)] + quick, capture_output=True, text=True)
        codec_ok = out.returncode == 0 and "per request:" in out.stdout
        with open(os.path.join(out_dir, "codec.txt"), "w") as f:
            f.write(out.stdout + out.stderr)
        lines += ["", "The protocol's work per request (cohort-bench-codec, one warm thread, no wake-ups):", "",
                  "```", out.stdout.rstrip() if codec_ok else "cohort-bench-codec failed: " + out.stderr.strip(), "```"]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "budget.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"budget: {out_dir}", file=sys.stderr)
    # A table with a system that answered nothing, or whose client or socket
    # thread was not found, measures nothing: say so and fail.
    broken = [s for s, _ in systems if chosen[s][0] <= 0 or "client thread" not in chosen[s][1]
              or "socket thread" not in chosen[s][1]]
    if broken:
        print("budget: no figures for " + ", ".join(broken), file=sys.stderr)
        return 1
    if not codec_ok:
        print("budget: cohort-bench-codec gave no figures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
