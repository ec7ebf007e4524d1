#!/usr/bin/env python3
"""One load step of bench/run against a system under test that is already running.

    step.py setup    --json OUT ... : SIPp caller at RATE calls/s for STEP_S seconds
                                      (bench/sipp/uac_call.xml, 1 s talk) through the
                                      system under test to the agent UAS; appends one JSON
                                      line: calls, ok, failed, elapsed, INVITE->180 p50/p99
                                      (from SIPp's per-call response times, -trace_rtt),
                                      CPU % of each process over the step, verdict.
    step.py recorded --json OUT ... : N calls held HOLD_S seconds with 20 ms G.711 A-law
                                      both ways (bench/sipp/rec_uac.xml, rtp_stream),
                                      recording on; samples CPU and memory over the
                                      steady window (every call up, none ended yet);
                                      appends one JSON line with CPU us per relayed
                                      packet, RSS per call, recording bytes per call, loss
                                      and the verdict.

Processes are named on the command line as NAME=PID[,PID...] (--sut for the system under
test, --peer-proc for the agent SIPp); CPU is utime+stime of each PID and its children
(/proc/PID/stat), memory is the proportional set size (PSS, /proc/PID/smaps_rollup) of
the same trees, so Kamailio's shared memory is counted once.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
PACKETS_PER_CALL_S = 100  # 50 packets/s each way: 20 ms frames on both legs


def children():
    kids = {}
    for task in os.listdir("/proc"):
        if task.isdigit():
            try:
                stat = open(f"/proc/{task}/stat").read()
                kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(task))
            except OSError:
                pass
    return kids


def tree(pids, kids):
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


def ticks(pids, kids):
    total = 0
    for pid in tree(pids, kids):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def pss_kib(pids, kids):
    total = 0
    for pid in tree(pids, kids):
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine():
    """(busy, total) jiffies of all CPUs."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    return busy, busy + f[3] + f[4]


def rcvbuf_errors():
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def socket_inodes(pids, kids):
    """Inodes of the sockets the process trees hold open."""
    inodes = set()
    for pid in tree(pids, kids):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    return inodes


def udp_drops(pids, kids):
    """Datagrams the kernel dropped on the system under test's own UDP sockets (the
    "drops" column of /proc/net/udp, RcvbufErrors per socket, for the sockets the
    processes hold). The machine-wide RcvbufErrors cannot be used alone: SIPp never
    reads the RTP it receives (rtp_stream only sends), so its sockets overflow, and other
    programs on a shared machine have sockets of their own."""
    if not pids:
        return 0
    inodes = socket_inodes(pids, kids)
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = open(table).readlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[9] in inodes:
                total += int(f[-1])
    return total


def metrics(url):
    """threering's /metrics as {name: value} (labels summed), or {} without a URL."""
    if not url:
        return {}
    out = {}
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{")[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return out


def rtpengine_totals(cli_port):
    """rtpengine's totals (of ended sessions): relayed packets and packet errors."""
    if not cli_port:
        return None
    try:
        text = subprocess.run(
            ["rtpengine-ctl", "-ip", "127.0.0.1", "-port", str(cli_port), "list", "totals"],
            capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None

    def grab(label):
        m = re.search(re.escape(label) + r"\s*:\s*(\d+)", text)
        return int(m.group(1)) if m else 0
    return {"relayed": grab("Total relayed packets"),
            "errors": grab("Total relayed packet errors"),
            "sessions": grab("Total managed sessions")}


def dir_bytes(path):
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total


def parse_procs(specs):
    procs = {}
    for spec in specs or []:
        name, _, pids = spec.partition("=")
        procs[name] = [int(p) for p in pids.split(",") if p]
    return procs


def sipp_stat(path):
    """Last line of SIPp's -trace_stat CSV as a dict."""
    try:
        rows = [l.rstrip("\n").split(";") for l in open(path) if l.strip()]
        return dict(zip(rows[0], rows[-1]))
    except (OSError, IndexError):
        return {}


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def rtt_180(workdir):
    """Per-call INVITE->180 times (ms) from SIPp's -trace_rtt file (rtd 1). A call whose
    180 came after its 200 (a multi-worker proxy reorders them) has no rtd 1: for each
    such call the sample is one of the largest INVITE->200 times (rtd 2), an upper bound,
    so the p99 is never flattered by the calls it misses."""
    out, to_200 = [], []
    for name in os.listdir(workdir):
        if name.endswith("_rtt.csv"):
            for line in open(os.path.join(workdir, name)):
                parts = line.strip().split(";")
                if len(parts) == 3 and parts[2] in ("1", "2"):
                    try:
                        (out if parts[2] == "1" else to_200).append(float(parts[1]))
                    except ValueError:
                        pass
    missing = len(to_200) - len(out)
    if missing > 0:
        out += sorted(to_200)[-missing:]
    return out


def sample(procs, url, kids=None, media=None):
    kids = kids if kids is not None else children()
    return {
        "t": time.monotonic(),
        "ticks": {n: ticks(p, kids) for n, p in procs.items()},
        "pss": {n: pss_kib(p, kids) for n, p in procs.items()},
        "machine": machine(),
        "rcvbuf": rcvbuf_errors(),
        "metrics": metrics(url),
        "drops": udp_drops([p for n in media or [] for p in procs[n]], kids),
    }


def cpu_percent(a, b, name):
    dt = b["t"] - a["t"]
    return round((b["ticks"][name] - a["ticks"][name]) / TICK / dt * 100, 1) if dt > 0 else None


def run_setup(args):
    procs = parse_procs(args.proc)
    workdir = args.workdir
    os.makedirs(workdir, exist_ok=True)
    calls = args.rate * args.step_s
    stat = os.path.join(workdir, "uac_stat.csv")
    cmd = ["sipp", args.target, "-sf", os.path.join(args.root, "bench/sipp/uac_call.xml"),
           "-buff_size", os.environ.get("SIPP_BUFFER", "4194304"),
           "-s", "4008001234", "-i", "127.0.0.1", "-p", str(args.local_port),
           "-mp", str(args.media_port), "-r", str(args.rate), "-m", str(calls),
           "-d", str(args.talk_ms), "-nostdin", "-timeout", f"{args.step_s + 15}s",
           "-timeout_error", "-trace_stat", "-stf", stat, "-trace_rtt", "-rtt_freq", "1",
           # Kamailio's workers may forward an answer's 180 after its 200 (each reads
           # the socket on its own): a late 180 is ignored, not a failed call.
           "-default_behaviors", "all,-abortunexp"]
    before = sample(procs, args.metrics)
    log = open(os.path.join(workdir, "uac.log"), "w")
    sipp = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    procs["sipp_uac"] = [sipp.pid]
    before["ticks"]["sipp_uac"] = 0
    kids = children()
    # SIPp's own ticks are read just before it exits: poll while it runs.
    uac_ticks = 0
    while sipp.poll() is None:
        uac_ticks = max(uac_ticks, ticks([sipp.pid], kids))
        time.sleep(0.5)
    after = sample(procs, args.metrics)
    after["ticks"]["sipp_uac"] = uac_ticks
    elapsed = after["t"] - before["t"]
    st = sipp_stat(stat)
    ok = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    rtts = rtt_180(workdir)
    p50, p99 = percentile(rtts, 50), percentile(rtts, 99)
    bound = args.step_s * 1.1 + args.talk_ms / 1000 + 2
    reasons = []
    if ok + failed != calls or failed * 1000 > calls:
        reasons.append(f"{failed} of {calls} calls failed, {calls - ok - failed} not ended")
    if elapsed > bound:
        reasons.append(f"rate not held: {elapsed:.1f} s for a {args.step_s} s step")
    if p99 is None or p99 > args.p99_limit_ms:
        reasons.append(f"INVITE->180 p99 {p99} ms")
    mb, ma = before["machine"], after["machine"]
    row = {
        "load": "setup", "sut": args.sut, "rate": args.rate, "calls": calls, "ok": ok,
        "failed": failed, "elapsed_s": round(elapsed, 1),
        "invite_180_samples": len(rtts), "invite_180_p50_ms": p50, "invite_180_p99_ms": p99,
        "cpu_percent": {n: cpu_percent(before, after, n) for n in procs},
        "machine_busy_percent": round((ma[0] - mb[0]) / max(1, ma[1] - mb[1]) * 100, 1),
        "verdict": "pass" if not reasons else "fail", "why": "; ".join(reasons),
    }
    with open(args.json, "a") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def run_recorded(args):
    procs = parse_procs(args.proc)
    workdir = args.workdir
    os.makedirs(workdir, exist_ok=True)
    n, hold = args.calls, args.hold_s
    ramp_s = n / args.ramp_cps
    stat = os.path.join(workdir, "uac_stat.csv")
    cmd = ["sipp", args.target, "-sf", args.scenario, "-s", "4008001234",
           "-buff_size", os.environ.get("SIPP_BUFFER", "4194304"),
           "-i", "127.0.0.1", "-p", str(args.local_port), "-mi", "127.0.0.1",
           "-mp", str(args.media_port), "-r", str(args.ramp_cps), "-m", str(n),
           "-l", str(n), "-d", str(hold * 1000), "-nostdin",
           "-timeout", f"{int(ramp_s + hold + 40)}s", "-timeout_error",
           "-trace_stat", "-stf", stat, "-fd", "5"]
    rec0 = dir_bytes(args.recordings)
    rtpe0 = rtpengine_totals(args.rtpengine_cli)
    ports = args.media_proc
    idle = sample(procs, args.metrics, media=ports)
    log = open(os.path.join(workdir, "uac.log"), "w")
    started = time.monotonic()
    sipp = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    procs["sipp_uac"] = [sipp.pid]
    # The steady window: every call set up (plus 3 s), none ended yet (the first ends
    # HOLD_S after it started, 2 s margin).
    win_start, win_end = started + ramp_s + 3, started + hold - 2
    window_ok = win_end - win_start >= 5
    if not window_ok:
        win_start, win_end = started + ramp_s + 1, started + ramp_s + 6
    time.sleep(max(0, win_start - time.monotonic()))
    a = sample(procs, args.metrics, media=ports)
    time.sleep(max(0, win_end - time.monotonic()))
    b = sample(procs, args.metrics, media=ports)
    try:
        sipp.wait(timeout=ramp_s + hold + 60)
    except subprocess.TimeoutExpired:
        sipp.kill()
        sipp.wait()
    time.sleep(3)  # the last BYEs, recordings closed, rtpengine totals updated
    end = sample(procs, args.metrics, media=ports)
    rtpe1 = rtpengine_totals(args.rtpengine_cli)
    rec1 = dir_bytes(args.recordings)

    st = sipp_stat(stat)
    ok = int(st.get("SuccessfulCall(C)", 0) or 0)
    failed = int(st.get("FailedCall(C)", 0) or 0)
    window = b["t"] - a["t"]
    nominal_window = n * PACKETS_PER_CALL_S * window
    nominal_step = n * PACKETS_PER_CALL_S * hold
    relayed_metric = "threering_media_packets_relayed_total"
    step_relayed = None
    if relayed_metric in b["metrics"]:
        # threering's own live counter: measured in the window itself.
        packets = b["metrics"][relayed_metric] - a["metrics"][relayed_metric]
        step_relayed = end["metrics"][relayed_metric] - idle["metrics"][relayed_metric]
        packets_source = "measured (threering_media_packets_relayed_total)"
    elif rtpe0 is not None and rtpe1 is not None:
        # rtpengine's totals count ended sessions only: the step's relayed packets scale
        # the nominal count of the window.
        step_relayed = rtpe1["relayed"] - rtpe0["relayed"]
        packets = nominal_window * step_relayed / nominal_step if nominal_step else 0
        packets_source = "nominal x step ratio (rtpengine totals)"
    else:
        packets = nominal_window
        packets_source = "nominal (SIPp rtp_stream, 100 packets/s per call)"
    # The SUT's RTP sockets live as long as their call (rtpengine) or are pooled
    # (threering): their drops are read at the end of the steady window, when every
    # call's sockets are open.
    loss_packets = b["drops"]
    if rtpe0 is not None and rtpe1 is not None:
        loss_packets += rtpe1["errors"] - rtpe0["errors"]
    # ... out of the packets sent to it until then (calls start evenly over the ramp).
    sent_until_b = n * PACKETS_PER_CALL_S * max(1.0, b["t"] - started - ramp_s / 2)
    loss_percent = loss_packets / sent_until_b * 100
    sut = args.media_proc
    sut_ticks = sum(b["ticks"][p] - a["ticks"][p] for p in sut)
    mb, ma = a["machine"], b["machine"]
    busy = (ma[0] - mb[0]) / max(1, ma[1] - mb[1]) * 100
    # The machine may be shared: saturation is this bench's own processes (system under
    # test and both SIPps) using 90 % of every CPU, not the machine being busy.
    own = sum(b["ticks"][p] - a["ticks"][p] for p in procs) / TICK / window * 100
    own_limit = args.busy_limit_percent * (os.cpu_count() or 1)
    pss_delta = sum(b["pss"][p] - idle["pss"][p] for p in args.memory_proc)
    reasons = []
    if ok != n or failed:
        reasons.append(f"{failed} calls failed, {n - ok - failed} not ended")
    if loss_percent > args.loss_limit_percent:
        reasons.append(f"loss {loss_percent:.4f} %")
    if own > own_limit:
        reasons.append(f"CPU saturated (bench processes at {own:.0f} % of {own_limit:.0f} %)")
    if step_relayed is not None and step_relayed < nominal_step * 0.98:
        reasons.append(f"relayed {step_relayed} of {nominal_step} nominal packets")
    row = {
        "load": "recorded", "sut": args.sut, "calls": n, "hold_s": hold, "ok": ok,
        "failed": failed, "window_s": round(window, 1), "window_clean": window_ok,
        "packets_in_window": round(packets), "packets_source": packets_source,
        "step_relayed": step_relayed, "step_nominal": nominal_step,
        "cpu_us_per_packet": round(sut_ticks / TICK * 1e6 / packets, 2) if packets else None,
        "cpu_percent": {p: cpu_percent(a, b, p) for p in procs},
        "machine_busy_percent": round(busy, 1), "bench_cpu_percent": round(own, 1),
        "pss_kib": {p: b["pss"][p] for p in procs if p != "sipp_uac"},
        "pss_idle_kib": {p: idle["pss"][p] for p in procs if p != "sipp_uac"},
        "rss_kib_per_call": round(pss_delta / n, 1),
        "recording_bytes_per_call": round((rec1 - rec0) / n),
        "rcvbuf_errors_machine": end["rcvbuf"] - idle["rcvbuf"],
        "sut_socket_drops": b["drops"],
        "loss_packets": loss_packets, "loss_percent": round(loss_percent, 5),
        "verdict": "pass" if not reasons else "fail", "why": "; ".join(reasons),
    }
    with open(args.json, "a") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="load", required=True)
    for name in ("setup", "recorded"):
        p = sub.add_parser(name)
        p.add_argument("--json", required=True)
        p.add_argument("--sut", required=True)
        p.add_argument("--root", required=True)
        p.add_argument("--workdir", required=True)
        p.add_argument("--target", required=True, help="host:port of the system under test")
        p.add_argument("--local-port", type=int, required=True)
        p.add_argument("--media-port", type=int, required=True)
        p.add_argument("--proc", action="append", help="NAME=PID[,PID]")
        p.add_argument("--metrics", default="", help="threering's /metrics URL")
    s = sub.choices["setup"]
    s.add_argument("--rate", type=int, required=True)
    s.add_argument("--step-s", type=int, default=10)
    s.add_argument("--talk-ms", type=int, default=1000)
    s.add_argument("--p99-limit-ms", type=float, default=200)
    r = sub.choices["recorded"]
    r.add_argument("--scenario", required=True)
    r.add_argument("--calls", type=int, required=True)
    r.add_argument("--hold-s", type=int, default=30)
    r.add_argument("--ramp-cps", type=int, default=200)
    r.add_argument("--recordings", required=True)
    r.add_argument("--rtpengine-cli", type=int, default=0)
    r.add_argument("--media-proc", action="append", required=True,
                   help="the --proc names whose CPU relays the media")
    r.add_argument("--memory-proc", action="append", required=True,
                   help="the --proc names whose memory holds the calls")
    r.add_argument("--loss-limit-percent", type=float, default=0.01)
    r.add_argument("--busy-limit-percent", type=float, default=90)
    args = parser.parse_args()
    (run_setup if args.load == "setup" else run_recorded)(args)


if __name__ == "__main__":
    sys.exit(main())
