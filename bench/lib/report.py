"""report.py — prints the markdown report of one `make bench` run: one table
per section with the median of every figure for tide and each peer, the
ratio of each tide figure to the peer its goal names, and whether the goal
is met; then the details of the server sections and the notes.

Usage: python3 report.py RESULTS_DIR   (the folder bench/run.sh wrote:
results.tsv, notes.tsv, machine.txt)

The goals live here, in SECTIONS, and nowhere else; bench/README.md
explains them.
"""
import collections
import os
import statistics
import sys

PEERS = {
    "tide": "tide", "tide_c": "tide (C submit)", "lua": "lua5.4", "node": "Node.js",
    "c": "libuv C", "luv": "luv", "asyncio": "asyncio",
    "tide_http": "tide HTTP", "tide_tcp": "tide plain TCP", "nginx": "nginx", "nginx_http": "nginx HTTP",
    "redis-benchmark": "redis-benchmark", "ioredis": "Node ioredis", "redis-server": "redis-server",
}


class Goal:
    """A goal on a tide figure: a ratio to a peer's figure (`peer` set), or
    a bound on the figure itself. `op` is ">=", "<=" or "<"."""

    def __init__(self, op, bound, peer=None, peer_figure=None, text=None):
        self.op, self.bound, self.peer = op, bound, peer
        self.peer_figure, self.text = peer_figure, text

    def describe(self, unit):
        if self.text:
            return self.text
        sign = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        if self.peer:
            return f"{sign} {self.bound:g}x {PEERS[self.peer]}"
        return f"{sign} {fmt(self.bound, unit)} {unit}"

    def met(self, value):
        return {">=": value >= self.bound, "<=": value <= self.bound,
                "<": value < self.bound}[self.op]


class Row:
    """One line of a section's table: `figure`/`metric` as recorded by
    run.sh, a label, goals, and `ratio_to`: a peer to compare with when no
    goal names one."""

    def __init__(self, figure, metric, label, goals=(), ratio_to=None, unit=None, also=(), pairs=()):
        self.figure, self.metric, self.label = figure, metric, label
        self.goals, self.ratio_to = list(goals), ratio_to
        self.unit = unit or metric
        self.also = list(also)   # other tide columns whose ratio is shown too
        self.pairs = list(pairs)  # (a, b): the ratio a / b of two peer columns, shown too


SECTIONS = [
    ("core", "Foundation: promises, tasks, timers (issue 2)", ["tide", "lua", "node", "c", "luv"], [
        Row("promise_batch", "ops/s", "promise create + resolve + callback, 1M in flight",
            [Goal(">=", 0.5, "node")], ratio_to="lua", also=["lua"]),
        Row("promise_seq", "ops/s", "promise create + resolve + callback, one at a time",
            [Goal(">=", 0.5, "node")], ratio_to="lua", also=["lua"]),
        Row("spawn_await", "ops/s", "spawn + await round trip (lua5.4: coroutine create + resume + yield)",
            [Goal(">=", 1 / 3, "lua", text="cost ≤ 3x lua5.4 (rate ≥ 0.33x)")]),
        Row("spawn_await_batch", "ops/s", "100k tasks suspended on one promise, then resumed",
            ratio_to="lua"),
        Row("timers", "timers/s", "100k 1 ms timers: tide.sleep(0.001):next(cb)",
            [Goal(">=", 0.5, "c")]),
        Row("timers_task", "timers/s", "100k 1 ms timers as tasks: tide.timer(0.001, fn)",
            [Goal(">=", 0.5, "c", peer_figure="timers")]),
        Row("mem_task", "B", "memory per task suspended in await, two calls deep",
            [Goal("<=", 1434, text="≤ 1.4 KiB (1434 B)")], ratio_to="lua"),
        Row("mem_task_own", "B", "the same, each task awaiting a promise of its own",
            ratio_to="lua"),
        Row("startup", "ms", "start-up: `-e ''`", [Goal("<=", 2, "lua")]),
    ]),
    ("echo", "TCP echo, 50 connections, closed loop (issue 3)", ["tide", "c", "node", "luv"], [
        Row("echo_64", "msgs/s", "64 B messages", ratio_to="c"),
        Row("echo_1024", "msgs/s", "1 KiB messages", [Goal(">=", 0.8, "c")]),
        Row("echo_16384", "msgs/s", "16 KiB messages", ratio_to="c"),
        Row("echo_1024", "cpu_us", "server CPU per message at 1 KiB", ratio_to="c", unit="µs"),
        Row("echo_1024", "p99_us", "p99 round trip at 1 KiB", ratio_to="c", unit="µs"),
        Row("idle_conn", "B", "memory (RSS) per idle connection, 10,000 open",
            [Goal("<=", 4096, text="≤ 4 KiB (4096 B)")], ratio_to="c"),
    ]),
    ("pool", "Thread pool (issue 4)", ["tide", "tide_c", "c", "luv", "node"], [
        Row("pool_seq", "ops/s", "trivial job round trip, one at a time", [Goal(">=", 0.5, "c")],
            also=["tide_c"]),
        Row("pool_seq_1cpu", "ops/s", "the same round trip, every thread on one CPU",
            ratio_to="c", also=["tide_c"]),
        Row("pool_batch", "ops/s", "trivial jobs, 200k queued at once", ratio_to="c", also=["tide_c"]),
        Row("pool_speedup", "x", "CPU-bound job split over every CPU: speed-up vs one job",
            [Goal(">=", 1.8, text="≥ 1.8x on 2 cores")], ratio_to="c", also=["tide_c"]),
    ]),
    ("http", "HTTP/1.1 hello world under wrk, keep-alive (issue 5)", ["tide", "c", "node", "luv", "asyncio", "nginx"], [
        Row("http_50", "req/s", "50 connections", [Goal(">=", 2, "node"), Goal(">=", 0.5, "c")]),
        Row("http_1000", "req/s", "1,000 connections", [Goal(">=", 2, "node"), Goal(">=", 0.5, "c")]),
        Row("http_50", "cpu_us", "server CPU per request, 50 connections", ratio_to="c", unit="µs"),
        Row("http_1000", "cpu_us", "server CPU per request, 1,000 connections", ratio_to="c", unit="µs"),
        Row("http_50", "p99_ms", "p99 latency, 50 connections", ratio_to="c", unit="ms"),
        Row("http_1000", "p99_ms", "p99 latency, 1,000 connections", ratio_to="c", unit="ms"),
        Row("http_1000", "rss_kb", "server peak RSS, 1,000 connections",
            [Goal("<", 2, "node"), Goal("<=", 1.1, "nginx")], unit="MiB"),
        Row("ir_per_req", "ir_req", "instructions per request (valgrind, issue 14)",
            [Goal("<=", 2, "nginx")], unit="Ir"),
        Row("http_50p16", "req/s", "50 connections, 16 requests pipelined per write", ratio_to="node"),
        Row("http_50p16", "cpu_us", "server CPU per request, pipelined", ratio_to="node", unit="µs"),
    ]),
    ("tls", "TLS: HTTPS beside nginx, TLS beside plain TCP/HTTP (issue 10)",
     ["tide", "tide_http", "tide_tcp", "nginx", "nginx_http"], [
        Row("conn_ec", "per_cpu_s", "new TLS connections (full handshake + one request) per CPU-second of the server, ECDSA P-256",
            [Goal(">=", 0.8, "nginx")], unit="conns/s"),
        Row("conn_rsa", "per_cpu_s", "new TLS connections (full handshake + one request) per CPU-second of the server, RSA-2048",
            [Goal(">=", 0.8, "nginx")], unit="conns/s"),
        Row("conn_ec", "conns/s", "new TLS connections/s as measured (client-bound when server CPU % < 95), ECDSA P-256",
            ratio_to="nginx"),
        Row("conn_rsa", "conns/s", "new TLS connections/s as measured, RSA-2048", ratio_to="nginx"),
        Row("conn_ec", "cpu_us", "server CPU per new connection, ECDSA P-256", ratio_to="nginx", unit="µs"),
        Row("conn_rsa", "cpu_us", "server CPU per new connection, RSA-2048", ratio_to="nginx", unit="µs"),
        Row("ir_conn_ec", "Ir", "instructions per new connection, ECDSA P-256 (cachegrind)", ratio_to="nginx"),
        Row("ir_conn_rsa", "Ir", "instructions per new connection, RSA-2048 (cachegrind)", ratio_to="nginx"),
        Row("conn_ec", "p99_ms", "p99 connect-to-close time, ECDSA P-256", ratio_to="nginx", unit="ms"),
        Row("ka_50", "cpu_us", "keep-alive hello, 50 connections: server CPU per request (tide, nginx: HTTPS; … HTTP: plain)",
            [Goal("<=", 1.3, "tide_http", text="≤ 1.3x tide HTTP")], pairs=[("nginx", "nginx_http")], unit="µs"),
        Row("ir_req", "Ir", "keep-alive hello: instructions per request (cachegrind)",
            [Goal("<=", 1.3, "tide_http", text="≤ 1.3x tide HTTP")], pairs=[("nginx", "nginx_http")]),
        Row("ka_50", "req/s", "keep-alive hello, 50 connections (wrk)", ratio_to="tide_http",
            pairs=[("nginx", "nginx_http")]),
        Row("echo_16384", "msgs/s", "echo of 16 KiB messages, 50 connections (tide: TLS)",
            [Goal(">=", 0.8, "tide_tcp")]),
        Row("echo_16384", "per_cpu_s", "echo of 16 KiB messages per CPU-second of the server", ratio_to="tide_tcp",
            unit="msgs/s"),
        Row("echo_16384", "cpu_us", "server CPU per 16 KiB message", ratio_to="tide_tcp", unit="µs"),
        Row("ir_echo_16384", "Ir", "instructions per 16 KiB message (cachegrind)", ratio_to="tide_tcp"),
        Row("wrk_resumed", "pct", "wrk -H 'Connection: close': handshakes nginx saw resumed (why tls_load)", unit="%"),
    ]),
    ("redis", "Redis: SET/GET round trips from 50 tasks, same redis-server (issue 12)",
     ["tide", "redis-benchmark", "ioredis", "redis-server"], [
        Row("redis_set", "ops/s", "SET, one at a time per task",
            [Goal(">=", 0.8, "redis-benchmark"), Goal(">=", 1.5, "ioredis")]),
        Row("redis_get", "ops/s", "GET, one at a time per task",
            [Goal(">=", 0.8, "redis-benchmark"), Goal(">=", 1.5, "ioredis")]),
        Row("redis_set_p16", "ops/s", "SET, 16 pipelined per task",
            [Goal(">=", 0.8, "redis-benchmark"), Goal(">=", 1.5, "ioredis")]),
        Row("redis_get_p16", "ops/s", "GET, 16 pipelined per task",
            [Goal(">=", 0.8, "redis-benchmark"), Goal(">=", 1.5, "ioredis")]),
        Row("lite_set_p16", "ops/s", "examples/redis_lite.lua vs redis-server: SET, redis-benchmark -P 16",
            [Goal(">=", 0.5, "redis-server")]),
        Row("lite_get_p16", "ops/s", "examples/redis_lite.lua vs redis-server: GET, redis-benchmark -P 16",
            [Goal(">=", 0.5, "redis-server")]),
    ]),
    ("websocket", "WebSocket echo, 1 KiB binary messages, 50 connections, closed loop (issue 13)",
     ["tide", "tide_tcp", "node"], [
        Row("ws_1024", "msgs/s", "1 KiB messages",
            [Goal(">=", 1.5, "node"), Goal(">=", 0.7, "tide_tcp")]),
        Row("ws_1024", "cpu_us", "server CPU per message", ratio_to="node", unit="µs"),
        Row("ws_1024", "p99_us", "p99 round trip", ratio_to="node", unit="µs"),
    ]),
]

# server sections: (figure prefix, metric that counts, its unit)
DETAILS = {"echo": ("echo_", "msgs/s"), "http": ("http_", "req/s"),
           "tls": [("conn_", "conns/s"), ("ka_", "req/s"), ("echo_", "msgs/s")]}
TLS_LOADS = {"conn_ec": "new conns, ECDSA", "conn_rsa": "new conns, RSA"}


def fmt(v, unit):
    if v is None:
        return ""
    if unit == "Ir":
        return f"{v:,.0f}"
    if unit == "%":
        return f"{v:.1f} %"
    if unit in ("ops/s", "timers/s", "msgs/s", "req/s", "conns/s"):
        if v >= 1e6:
            return f"{v / 1e6:.2f}M"
        if v >= 1e4:
            return f"{v / 1e3:.1f}k"
        return f"{v:.0f}"
    if unit == "B":
        return f"{v:.0f}"
    if unit == "MiB":
        return f"{v:.1f}"
    if unit == "x":
        return f"{v:.2f}x"
    if unit in ("ms", "µs"):
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return f"{v:g}"


def load(out):
    data = collections.defaultdict(dict)   # (section, figure, peer, metric) -> {run: value}
    path = os.path.join(out, "results.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 6:
                    continue
                section, figure, peer, metric, run, value = parts
                try:
                    data[(section, figure, peer, metric)][run] = float(value)
                except ValueError:
                    pass
    notes = collections.defaultdict(list)
    path = os.path.join(out, "notes.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                section, _, text = line.rstrip("\n").partition("\t")
                if text not in notes[section]:
                    notes[section].append(text)
    return data, notes


TAINTED = set()   # figures whose every run was disturbed by other processes


def values(data, key):
    """The values of the runs of `key` that other processes did not disturb
    (all of them, and `key` noted in TAINTED, when every run was)."""
    runs = data.get(key)
    if not runs:
        return []
    flags = data.get(key[:3] + ("disturbed",), {})
    clean = [v for r, v in runs.items() if not flags.get(r)]
    if clean:
        return clean
    TAINTED.add(key[:3])
    return list(runs.values())


def median(data, key, unit=None):
    vals = values(data, key)
    if not vals:
        return None
    m = statistics.median(vals)
    return m / 1024 if unit == "MiB" else m


def cell(data, key, unit):
    """A table cell: the median, marked † when only disturbed runs exist."""
    text = fmt(median(data, key, unit), unit)
    return text + " †" if text and key[:3] in TAINTED else text


def section_table(section, title, peers, rows, data, tally):
    present = [p for p in peers if any(k[0] == section and k[2] == p for k in data)]
    if "tide" not in present:
        present.insert(0, "tide")
    lines = [f"### {title}", "",
             "| figure | unit | " + " | ".join(PEERS[p] for p in present) + " | tide ratio | goal | met |",
             "|---|---|" + "---:|" * len(present) + "---|---|---|"]
    for row in rows:
        cells = [cell(data, (section, row.figure, p, row.metric), row.unit) for p in present]
        tide = median(data, (section, row.figure, "tide", row.metric), row.unit)
        ratios, goals, mets = [], [], []
        for g in row.goals:
            goals.append(g.describe(row.unit))
            if g.peer:
                peer_v = median(data, (section, g.peer_figure or row.figure, g.peer, row.metric), row.unit)
                value = tide / peer_v if tide is not None and peer_v else None
                if value is not None:
                    ratios.append(f"{value:.2f}x {PEERS[g.peer]}")
            else:
                value = tide
            if value is None:
                mets.append("not measured")
                tally["missing"] += 1
            elif g.met(value):
                mets.append("yes")
                tally["met"] += 1
            else:
                mets.append("**no**")
                tally["missed"] += 1
                tally["missed_list"].append(f"{section}: {row.label}: {goals[-1]}")
        if row.ratio_to and not any(g.peer == row.ratio_to for g in row.goals):
            peer_v = median(data, (section, row.figure, row.ratio_to, row.metric), row.unit)
            if tide is not None and peer_v:
                ratios.append(f"{tide / peer_v:.2f}x {PEERS[row.ratio_to]}")
        base = next((g.peer for g in row.goals if g.peer), row.ratio_to)
        for other in row.also:
            v = median(data, (section, row.figure, other, row.metric), row.unit)
            peer_v = median(data, (section, row.figure, base, row.metric), row.unit)
            if v is not None and peer_v:
                ratios.append(f"{PEERS[other]}: {v / peer_v:.2f}x {PEERS[base]}")
        for a, b in row.pairs:
            va = median(data, (section, row.figure, a, row.metric), row.unit)
            vb = median(data, (section, row.figure, b, row.metric), row.unit)
            if va is not None and vb:
                ratios.append(f"{PEERS[a]}: {va / vb:.2f}x {PEERS[b]}")
        lines.append(f"| {row.label} | {row.unit} | " + " | ".join(cells) +
                     f" | {'; '.join(ratios)} | {'; '.join(goals)} | {'; '.join(mets)} |")
    return lines


def _load_order(f):
    return [int(x) if x.isdigit() else x for x in f.split("p")]


def detail_table(section, data):
    kinds = DETAILS[section]
    if isinstance(kinds, tuple):
        kinds = [kinds]
    peers = [p for p in PEERS if any(k[0] == section and k[2] == p for k in data)]
    lat = "p99_us" if section == "echo" else "p99_ms"
    rate_head = kinds[0][1] if len(kinds) == 1 else "rate"
    lines = ["", "Details (medians of the undisturbed runs, `runs` of them; ± is (max-min)/median):", "",
             f"| target | load | {rate_head} | runs | ± | p99 {'µs' if section == 'echo' else 'ms'} | "
             "server CPU % | CPU µs/op | others % | peak RSS MiB | errors (all runs) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for prefix, main in kinds:
        lines += _detail_rows(section, data, prefix, main, peers, lat)
    return lines


def _detail_rows(section, data, prefix, main, peers, lat):
    lines = []
    figures = sorted({k[1] for k in data if k[0] == section and k[1].startswith(prefix)},
                     key=lambda f: _load_order(f[len(prefix):]))
    for fig in figures:
        for p in peers:
            vals = values(data, (section, fig, p, main))
            if not vals:
                continue
            m = statistics.median(vals)
            spread = (max(vals) - min(vals)) / m * 100 if m else 0
            runs = f"{len(vals)}" + (" †" if (section, fig, p) in TAINTED else "")
            load = fig[len(prefix):] + (" B" if section == "echo" or prefix == "echo_" else " conns")
            load = load.replace("p", " × ", 1).replace(" conns", " pipelined") if "p" in fig[len(prefix):] else load
            if section == "tls":
                load = TLS_LOADS.get(fig, load if prefix != "ka_" else load + ", keep-alive")
                load += f" ({main})"
            cpu_pct = median(data, (section, fig, p, "cpu_pct"))
            errs = sum(data.get((section, fig, p, "errors"), {}).values())
            lines.append(f"| {PEERS[p]} | {load} | {fmt(m, main)} | {runs} | ±{spread:.0f}% | "
                         f"{fmt(median(data, (section, fig, p, lat)), 'ms')} | "
                         f"{'' if cpu_pct is None else f'{cpu_pct:.0f}'} | "
                         f"{fmt(median(data, (section, fig, p, 'cpu_us')), 'µs')} | "
                         f"{fmt(median(data, (section, fig, p, 'others_pct')), 'B')} | "
                         f"{fmt(median(data, (section, fig, p, 'rss_kb'), 'MiB'), 'MiB')} | {errs:.0f} |")
    return lines


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    data, notes = load(out)
    tally = {"met": 0, "missed": 0, "missing": 0, "missed_list": []}
    print("## tide benchmarks\n")
    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        print("```")
        print(open(machine).read().rstrip())
        print("```\n")
    print("Medians of the runs that other processes did not disturb († where every run was). "
          "`tide ratio` is tide's figure divided by the peer's "
          "(higher is better for rates, lower for µs, ms, B and MiB).\n")
    for n in notes.get("all", []):
        print(f"- {n}")
    sections_run = {k[0] for k in data} | set(notes)
    for section, title, peers, rows in SECTIONS:
        if section not in sections_run:
            continue
        print("\n".join(section_table(section, title, peers, rows, data, tally)))
        if section in DETAILS and any(k[0] == section for k in data):
            print("\n".join(detail_table(section, data)))
        if notes.get(section):
            print()
            for n in notes[section]:
                print(f"- {n}")
        print()
    print(f"Goals: {tally['met']} met, {tally['missed']} missed, {tally['missing']} not measured.")
    for m in tally["missed_list"]:
        print(f"- missed: {m}")


if __name__ == "__main__":
    main()
