#!/usr/bin/env python3
"""bench/run's last stage: turns the steps it measured (steps.jsonl, one JSON line per
step from bench/step.py) into report.json, REPORT.md and the plots in plots/.

Figures are taken from one run only; the ratios (threering / peer) are the headline, as
absolute figures on a shared 2-core machine move from run to run.
"""

import argparse
import datetime
import json
import os
import platform

PEER_SETUP = "kamailio"
PEER_REC = "kamailio+rtpengine"


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "host": platform.node()}


def highest_pass(rows, key):
    passed = [r[key] for r in rows if r["verdict"] == "pass"]
    return max(passed) if passed else 0


def ratio(a, b, digits=2):
    return round(a / b, digits) if a is not None and b else None


def by_n(rows, key):
    """Per-N figures of the clean steps only (a failed step's figures are in `steps`)."""
    return {str(r["calls"]): r[key] for r in rows if r["verdict"] == "pass"}


def floor_by_n(rows, mode=None):
    """The bare relay's CPU per datagram by N (calls, two streams each), clean runs only:
    of one mode, or the lower of the two (the floor)."""
    out = {}
    for r in rows:
        if r["verdict"] == "pass" and mode in (None, r["mode"]):
            key = str(r["calls"])
            out[key] = min(out.get(key, r["cpu_us_per_packet"]), r["cpu_us_per_packet"])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--step-s", type=int, required=True)
    p.add_argument("--hold-s", type=int, required=True)
    p.add_argument("--ramp-cps", type=int, required=True)
    p.add_argument("--duration-s", type=int, required=True)
    p.add_argument("--versions", action="append", default=[])
    a = p.parse_args()
    steps = load(a.steps)
    setup = lambda sut: [r for r in steps if r["load"] == "setup" and r["sut"] == sut]
    rec = lambda sut: [r for r in steps if r["load"] == "recorded" and r["sut"] == sut]

    tr_setup, peer_setup = setup("threering"), setup(PEER_SETUP)
    tr_half, peer_half = setup("threering-half"), setup(PEER_SETUP + "-half")
    tr_rec, peer_rec = rec("threering"), rec(PEER_REC)
    floor = [r for r in steps if r["load"] == "floor"]
    floor_n = floor_by_n(floor)

    setup_cps = highest_pass(tr_setup, "rate")
    peer_cps = highest_pass(peer_setup, "rate")
    peak_row = lambda rows, cps: next((r for r in rows if r["rate"] == cps), None)

    # CPU per packet "at the same N": the highest N both held cleanly; failing that, the
    # highest N both ran.
    tr_by_n = {r["calls"]: r for r in tr_rec}
    peer_by_n = {r["calls"]: r for r in peer_rec}
    common_clean = sorted(n for n in tr_by_n if n in peer_by_n
                          and tr_by_n[n]["verdict"] == peer_by_n[n]["verdict"] == "pass")
    common_any = sorted(n for n in tr_by_n if n in peer_by_n)
    same_n = (common_clean or common_any or [None])[-1]
    tr_at = tr_by_n.get(same_n, {})
    peer_at = peer_by_n.get(same_n, {})

    def linear(rows_by_n):
        lo, hi = rows_by_n.get(100), rows_by_n.get(1000)
        if lo and hi and lo.get("cpu_us_per_packet") and hi.get("cpu_us_per_packet"):
            return round(hi["cpu_us_per_packet"] / lo["cpu_us_per_packet"], 2)
        return None

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": a.commit,
        "machine": machine(),
        "shared_machine": True,
        "versions": a.versions,
        "run_seconds": a.duration_s,
        "parameters": {"setup_step_s": a.step_s, "talk_ms": 1000, "hold_s": a.hold_s,
                       "ramp_cps": a.ramp_cps},
        "setup_cps": setup_cps,
        "peer_proxy_cps": peer_cps,
        "setup_cps_ratio": ratio(setup_cps, peer_cps),
        "setup_cpu_percent_at_peak": (peak_row(tr_setup, setup_cps) or {}).get("cpu_percent"),
        "peer_setup_cpu_percent_at_peak": (peak_row(peer_setup, peer_cps) or {}).get("cpu_percent"),
        "invite_180_p99_ms": tr_half[-1]["invite_180_p99_ms"] if tr_half else None,
        "invite_180_p99_rate": tr_half[-1]["rate"] if tr_half else None,
        "peer_invite_180_p99_ms": peer_half[-1]["invite_180_p99_ms"] if peer_half else None,
        "peer_invite_180_p99_rate": peer_half[-1]["rate"] if peer_half else None,
        "recorded_calls": highest_pass(tr_rec, "calls"),
        "peer_recorded_calls": highest_pass(peer_rec, "calls"),
        "same_n": same_n,
        "cpu_us_per_packet": tr_at.get("cpu_us_per_packet"),
        "peer_cpu_us_per_packet": peer_at.get("cpu_us_per_packet"),
        "cpu_per_packet_ratio": ratio(tr_at.get("cpu_us_per_packet"),
                                      peer_at.get("cpu_us_per_packet")),
        "cpu_us_per_packet_by_n": by_n(tr_rec, "cpu_us_per_packet"),
        "peer_cpu_us_per_packet_by_n": by_n(peer_rec, "cpu_us_per_packet"),
        "cpu_per_packet_1000_over_100": linear(tr_by_n),
        "peer_cpu_per_packet_1000_over_100": linear(peer_by_n),
        "rss_kib_per_call": tr_at.get("rss_kib_per_call"),
        "peer_rss_kib_per_call": peer_at.get("rss_kib_per_call"),
        "rss_kib_per_call_by_n": by_n(tr_rec, "rss_kib_per_call"),
        "peer_rss_kib_per_call_by_n": by_n(peer_rec, "rss_kib_per_call"),
        "floor_cpu_us_per_packet_by_n": floor_n,
        "floor_epoll_cpu_us_per_packet_by_n": floor_by_n(floor, "epoll"),
        "floor_uring_cpu_us_per_packet_by_n": floor_by_n(floor, "uring"),
        "floor_cpu_per_packet_1000_over_100": ratio(floor_n.get("1000"), floor_n.get("100")),
        "recording_bytes_per_call": tr_at.get("recording_bytes_per_call"),
        "peer_recording_bytes_per_call": peer_at.get("recording_bytes_per_call"),
        "steps": steps,
    }
    os.makedirs(os.path.join(a.out, "plots"), exist_ok=True)
    plots = make_plots(a.out, tr_setup, peer_setup, tr_rec, peer_rec, floor)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "REPORT.md"), "w") as f:
        f.write(markdown(report, tr_setup, peer_setup, tr_rec, peer_rec, floor, plots))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, (dict, list))}))


def make_plots(out, tr_setup, peer_setup, tr_rec, peer_rec, floor):
    """SVG plots; none (and a note in REPORT.md) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plt.rcParams["svg.hashsalt"] = "threering-bench"  # stable ids: diffs show data only
    done = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(out, "plots", name), metadata={"Date": None})
        plt.close(fig)
        done.append(name)

    def xy(rows, key, sub=None, x="calls"):
        pts = [(r[x], (r[key] or {}).get(sub) if sub else r[key]) for r in rows]
        return [p[0] for p in pts if p[1] is not None], [p[1] for p in pts if p[1] is not None]

    def plot(ax, rows, key, style, label, sub=None, x="calls", value=None):
        """Clean steps joined by a line; a failed step as a cross of the same colour."""
        clean = [r for r in rows if r["verdict"] == "pass"]
        failed = [r for r in rows if r["verdict"] != "pass"]
        if value:
            line, = ax.plot([r[x] for r in clean], [value(r) for r in clean], style, label=label)
            ax.plot([r[x] for r in failed], [value(r) for r in failed], "x",
                    color=line.get_color(), markersize=9, label=f"{label}: step failed")
            return
        line, = ax.plot(*xy(clean, key, sub, x), style, label=label)
        if failed:
            ax.plot(*xy(failed, key, sub, x), "x", color=line.get_color(), markersize=9,
                    label=f"{label}: step failed")

    if tr_rec or peer_rec:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for rows, label, proc, style in ((tr_rec, "threering", "threering", "o-"),
                                         (peer_rec, "rtpengine (Kamailio + rtpengine)",
                                          "rtpengine", "s--")):
            plot(ax1, rows, "cpu_percent", style, label, sub=proc)
            plot(ax2, rows, "cpu_us_per_packet", style, label)
        for mode, style in (("epoll", "v:"), ("uring", "^:")):
            plot(ax2, [r for r in floor if r["mode"] == mode], "cpu_us_per_packet", style,
                 f"floor: bare relay ({'io_uring' if mode == 'uring' else 'epoll'})")
        ax1.set(xlabel="concurrent recorded calls", ylabel="CPU % (100 = one core)",
                title="Media relay CPU vs calls")
        ax2.set(xlabel="concurrent recorded calls", ylabel="CPU µs per relayed packet",
                title="CPU per relayed packet")
        ax2.set_ylim(bottom=0)
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        save(fig, "cpu_vs_calls.svg")

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for rows, label, procs, style in ((tr_rec, "threering", ["threering"], "o-"),
                                          (peer_rec, "Kamailio + rtpengine",
                                           ["rtpengine", "kamailio"], "s--")):
            plot(ax1, rows, None, style, label,
                 value=lambda r: sum(r["pss_kib"].get(p, 0) for p in procs) / 1024)
            plot(ax2, rows, "rss_kib_per_call", style, label)
        ax1.set(xlabel="concurrent recorded calls", ylabel="memory (PSS, MiB)",
                title="Memory vs calls")
        ax2.set(xlabel="concurrent recorded calls", ylabel="KiB per call (over idle)",
                title="Memory per call")
        ax2.set_ylim(bottom=0)
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        save(fig, "memory_vs_calls.svg")

    if tr_setup or peer_setup:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for rows, label, proc, style in ((tr_setup, "threering", "threering", "o-"),
                                         (peer_setup, "Kamailio (stateful proxy)",
                                          "kamailio", "s--")):
            plot(ax1, rows, "cpu_percent", style, label, sub=proc, x="rate")
            plot(ax2, rows, "invite_180_p99_ms", style, label, x="rate")
        ax1.set(xlabel="calls per second", ylabel="CPU % (100 = one core)",
                title="Call setup: CPU vs rate")
        ax2.set(xlabel="calls per second", ylabel="INVITE→180 p99 (ms, log)",
                title="Call setup: INVITE→180 p99")
        ax2.set_yscale("symlog", linthresh=10)
        ax2.axhline(200, color="grey", linestyle=":", linewidth=1)
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        save(fig, "setup_rate.svg")
    return done


def fmt(v, suffix=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"
    return f"{v}{suffix}"


def cpu_list(cpu):
    return ", ".join(f"{k} {fmt(v)} %" for k, v in (cpu or {}).items()) or "—"


def target(ok):
    return "—" if ok is None else ("met" if ok else "**not met**")


def half_below_floor(r, key_n):
    """Whether half of rtpengine's CPU per packet at N is below the bare relay's (None:
    not both measured)."""
    peer = r["peer_cpu_us_per_packet_by_n"].get(key_n)
    floor = r["floor_cpu_us_per_packet_by_n"].get(key_n)
    return None if peer is None or floor is None else peer / 2 < floor


def floor_section(r, floor):
    if not floor:
        return []
    lines = [
        "## The floor under CPU per packet",
        "",
        "What a relay that does nothing but receive each datagram and send it on spends per "
        "datagram on this machine: `bench/relay_floor`, one thread, no parsing, no counters, "
        "no recording, no async runtime, 2 N streams of 172-byte datagrams at 50 a second "
        "(as SIPp's `rtp_stream` sends them; 100 relayed per call, as in the recorded "
        "load). Two ways: the system calls threering's media threads make (`epoll_wait`, "
        "one `recvmmsg` per ready socket, one `sendto` per datagram), and io_uring (a read "
        "kept queued on every socket and a send queued per datagram, one `io_uring_enter` "
        "per round, no system call per datagram). The floor is the lower of the two. Any "
        "relay in userspace pays at least this; nearly all of it is the kernel's UDP "
        "receive and send.",
        "",
        "| N | threering | rtpengine | target: 0.5 × rtpengine | floor, epoll | "
        "floor, io_uring | threering ÷ floor | rtpengine ÷ floor | target ÷ floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    below, above = [], []
    for n in sorted({row["calls"] for row in floor}):
        key = str(n)
        t = r["cpu_us_per_packet_by_n"].get(key)
        pe = r["peer_cpu_us_per_packet_by_n"].get(key)
        fl = r["floor_cpu_us_per_packet_by_n"].get(key)
        half = round(pe / 2, 2) if pe is not None else None
        lines.append(
            f"| {n} | {fmt(t)} | {fmt(pe)} | {fmt(half)} | "
            f"{fmt(r['floor_epoll_cpu_us_per_packet_by_n'].get(key))} | "
            f"{fmt(r['floor_uring_cpu_us_per_packet_by_n'].get(key))} | {fmt(ratio(t, fl))} | "
            f"{fmt(ratio(pe, fl))} | {fmt(ratio(half, fl))} |")
        verdict = half_below_floor(r, key)
        if verdict is not None:
            (below if verdict else above).append(str(n))
    lines.append("")
    if below and not above:
        lines.append(
            f"At every N measured ({', '.join(below)}), the target, half of rtpengine's CPU "
            "per packet, is below the floor: no relay in userspace, threering included, can "
            "meet it on this machine. Only forwarding inside the kernel spends less "
            "(rtpengine's kernel module, left out here because the peer forwards in "
            "userspace as threering does).")
    elif below:
        lines.append(f"The target is below the floor at N = {', '.join(below)}, above it at "
                     f"N = {', '.join(above)}.")
    elif above:
        lines.append("The target is above the floor at every N measured.")
    flin = r["floor_cpu_per_packet_1000_over_100"]
    if flin is not None:
        lines += ["", f"The floor's own CPU per datagram at N = 1000 ÷ at N = 100 is {fmt(flin)}: "
                  "at light load a relay thread wakes for nearly every datagram (the streams' "
                  "packets arrive spread over the 20 ms frame), and a wake costs about as "
                  "much as the relaying; under load one wake serves several."]
    failed = [row for row in floor if row["verdict"] != "pass"]
    if failed:
        lines += [""] + [f"- {row['sut']}, N = {row['calls']}: failed ({row['why']})"
                         for row in failed]
    return lines + [""]


def markdown(r, tr_setup, peer_setup, tr_rec, peer_rec, floor, plots):
    m = r["machine"]
    n = r["same_n"]
    cpu_ratio = r["cpu_per_packet_ratio"]
    lines = [
        "# threering benchmark: side by side with Kamailio and Kamailio + rtpengine",
        "",
        f"Written by `bench/run` on {r['date']}, commit `{r['commit']}`, in "
        f"{r['run_seconds'] // 60} min {r['run_seconds'] % 60} s. Machine: {m['cpu']}, "
        f"{m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}. "
        "**The machine was shared with other work during the run** (builds and tests of "
        "other workers), so absolute figures are noisy; the ratios compare systems measured "
        "minutes apart in the same run. Versions: " + "; ".join(r["versions"]) + ".",
        "",
        "## Headline",
        "",
        "| figure | threering | peer | threering / peer | target | |",
        "|---|---|---|---|---|---|",
        f"| call setup rate (CPS, highest clean step) | {fmt(r['setup_cps'])} | "
        f"{fmt(r['peer_proxy_cps'])} (Kamailio stateful proxy) | {fmt(r['setup_cps_ratio'])} | "
        f"≥ 1.0 | {target(None if r['setup_cps_ratio'] is None else r['setup_cps_ratio'] >= 1.0)} |",
        f"| INVITE→180 p99 at half the peak CPS (ms) | {fmt(r['invite_180_p99_ms'])} at "
        f"{fmt(r['invite_180_p99_rate'])}/s | {fmt(r['peer_invite_180_p99_ms'])} at "
        f"{fmt(r['peer_invite_180_p99_rate'])}/s | — | < 50 | "
        f"{target(None if r['invite_180_p99_ms'] is None else r['invite_180_p99_ms'] < 50)} |",
        f"| concurrent recorded calls held cleanly | {fmt(r['recorded_calls'])} | "
        f"{fmt(r['peer_recorded_calls'])} (Kamailio + rtpengine) | "
        f"{fmt(ratio(r['recorded_calls'], r['peer_recorded_calls']))} | ≥ peer and ≥ 1000 | "
        f"{target(r['recorded_calls'] >= max(1000, r['peer_recorded_calls']))} |",
        f"| CPU µs per relayed packet, recording on, N = {fmt(n)} | "
        f"{fmt(r['cpu_us_per_packet'])} | {fmt(r['peer_cpu_us_per_packet'])} (rtpengine) | "
        f"{fmt(cpu_ratio)} | ≤ 0.5 | {target(None if cpu_ratio is None else cpu_ratio <= 0.5)}"
        f"{' (below the floor)' if n is not None and half_below_floor(r, str(n)) else ''} |",
    ]
    for key_n in ("400", "1000"):
        t, pe = r["cpu_us_per_packet_by_n"].get(key_n), r["peer_cpu_us_per_packet_by_n"].get(key_n)
        if t is not None or pe is not None:
            rt = ratio(t, pe)
            note = " (below the floor)" if half_below_floor(r, key_n) else ""
            lines.append(f"| CPU µs per relayed packet, N = {key_n} | {fmt(t)} | {fmt(pe)} | "
                         f"{fmt(rt)} | ≤ 0.5 | {target(None if rt is None else rt <= 0.5)}"
                         f"{note} |")
    lin, plin = r["cpu_per_packet_1000_over_100"], r["peer_cpu_per_packet_1000_over_100"]
    flin = r["floor_cpu_per_packet_1000_over_100"]
    flin_note = f" (the bare relay's: {fmt(flin)})" if flin is not None else ""
    lines += [
        f"| CPU per packet at N = 1000 ÷ at N = 100 | {fmt(lin)} | {fmt(plin)} | — | "
        f"0.8–1.2 | {target(None if lin is None else 0.8 <= lin <= 1.2)}{flin_note} |",
        f"| memory per call, N = {fmt(n)} (KiB) | {fmt(r['rss_kib_per_call'])} | "
        f"{fmt(r['peer_rss_kib_per_call'])} (rtpengine + Kamailio) | "
        f"{fmt(ratio(r['rss_kib_per_call'], r['peer_rss_kib_per_call']))} | ≤ 64 | "
        f"{target(None if r['rss_kib_per_call'] is None else r['rss_kib_per_call'] <= 64)} |",
        f"| recording bytes per call ({r['parameters']['hold_s']} s) | "
        f"{fmt(r['recording_bytes_per_call'])} (stereo 16-bit WAV) | "
        f"{fmt(r['peer_recording_bytes_per_call'])} (rtpengine pcap) | "
        f"{fmt(ratio(r['recording_bytes_per_call'], r['peer_recording_bytes_per_call']))} | — | |",
        "",
        "CPU at the peak setup rate (% of one core): threering step: "
        + cpu_list(r["setup_cpu_percent_at_peak"]) + "; Kamailio step: "
        + cpu_list(r["peer_setup_cpu_percent_at_peak"]) + ".",
        "",
    ]
    lines += floor_section(r, floor)
    if plots:
        lines += ["## Curves", ""] + [f"![{p}](plots/{p})" for p in plots] + [""]
    else:
        lines += ["(No plots: matplotlib was not importable by /usr/bin/python3.)", ""]

    lines += ["## Setup-rate steps", "",
              "| system | CPS | calls | failed | took (s) | INVITE→180 p50 / p99 (ms) | "
              "CPU % system under test | CPU % SIPp caller / agent | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in tr_setup + [x for x in r["steps"] if x["sut"] == "threering-half"] + \
            peer_setup + [x for x in r["steps"] if x["sut"] == PEER_SETUP + "-half"]:
        cpu = row["cpu_percent"]
        sut = {k: v for k, v in cpu.items() if not k.startswith("sipp")}
        lines.append(
            f"| {row['sut']} | {row['rate']} | {row['calls']} | {row['failed']} | "
            f"{row['elapsed_s']} | {fmt(row['invite_180_p50_ms'])} / "
            f"{fmt(row['invite_180_p99_ms'])} | "
            + ", ".join(f"{k} {fmt(v)}" for k, v in sut.items())
            + f" | {fmt(cpu.get('sipp_uac'))} / {fmt(cpu.get('sipp_uas'))} | "
            f"{row['verdict']}{' (' + row['why'] + ')' if row['why'] else ''} |")
    lines += ["", "## Recorded-call steps", "",
              "| system | N | failed | window (s) | CPU % (window) | µs / packet | "
              "memory KiB / call | recording B / call | loss % | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in tr_rec + peer_rec:
        cpu = row["cpu_percent"]
        lines.append(
            f"| {row['sut']} | {row['calls']} | {row['failed']} | {row['window_s']} | "
            + ", ".join(f"{k} {fmt(v)}" for k, v in cpu.items())
            + f" | {fmt(row['cpu_us_per_packet'])} | {fmt(row['rss_kib_per_call'])} | "
            f"{row['recording_bytes_per_call']} | {row['loss_percent']} | "
            f"{row['verdict']}{' (' + row['why'] + ')' if row['why'] else ''} |")
    lines += ["", METHOD.format(**r["parameters"]), ""]
    return "\n".join(lines)


METHOD = """## How each figure is measured

- **Setup rate**: SIPp caller `bench/sipp/uac_call.xml` (INVITE, 1 s talk, BYE) → system
  under test → one SIPp agent `bench/sipp/uas_answer.xml` (180 and 200 at once). Steps of
  {setup_step_s} s; a step is clean when at most 0.1 % of its calls fail, every call
  ended, SIPp held the rate (took at most 10 % longer than planned) and INVITE→180 p99
  ≤ 200 ms. threering is a B2BUA (two legs, a call record in SQLite per call, no
  recording in this load); the peer is Kamailio 5.6 as a transaction-stateful proxy with
  Record-Route (`bench/peers/kamailio.cfg`), one leg, no call state.
- **INVITE→180**: SIPp's response-time distribution, per call (`-trace_rtt`, rtd 1 on the
  180, measured from the call's start, when the INVITE is sent); SIPp reports whole
  milliseconds and its scheduler ticks make the values come in steps of about 4 ms, so
  0 means "under 4 ms". The headline is the p99 of the step run at half the highest
  clean rate.
- **CPU %**: utime + stime of the process and its children (`/proc/PID/stat`) over the
  step, ÷ wall time; 100 % = one core. SIPp's own CPU is listed separately.
- **Concurrent recorded calls**: N calls set up at {ramp_cps}/s and held {hold_s} s (the
  issue asks for 60 s; `HOLD_S=60 bench/run` does that, the default keeps the run in
  20 minutes), 20 ms G.711 A-law both ways on both legs (SIPp `rtp_stream`,
  `bench/sipp/rec_uac.xml`, `rec_uas.xml`), recording on: threering writes a stereo WAV
  per call; rtpengine (userspace forwarding, `table = -1`, `bench/peers/rtpengine.conf`)
  writes a pcap per call (`recording-method = pcap`: the `proc` method needs the kernel
  module), with Kamailio (`rtpengine_manage(... record-call=yes)`) in front. A step is
  clean with no failed call, loss ≤ 0.01 %, the bench's own processes (system under
  test + both SIPps) under 90 % of all CPUs, and at least 98 % of the nominal packets
  relayed over the step.
- **Steady window**: from 3 s after the last call was set up to 2 s before the first one
  ends; CPU and memory are sampled at its two ends.
- **CPU µs per relayed packet**: CPU of the media relay over the window (threering:
  the daemon, which also does its SIP and recording; peer: rtpengine, which also writes
  the pcaps; Kamailio's CPU is listed apart) ÷ the packets relayed in the window. Those
  are counted by threering's `threering_media_packets_relayed_total` when the daemon
  exports it (live); otherwise N × 100 packets/s × window (what SIPp's `rtp_stream`
  sends); for rtpengine, that nominal count × (rtpengine's own "Total relayed packets"
  over the step ÷ the step's nominal packets), since rtpengine counts a call's packets
  when it ends. Each step's `packets_source` in `report.json` says which.
- **Memory per call**: proportional set size (PSS, `/proc/PID/smaps_rollup`, summed over
  the process tree, so Kamailio's shared memory counts once) in the window minus the same
  before the step, ÷ N. threering: the daemon; peer: rtpengine + Kamailio.
- **Loss**: datagrams the kernel dropped on the sockets the system under test holds (the
  `drops` column of `/proc/net/udp` for the socket inodes in `/proc/PID/fd`: the
  per-socket part of `RcvbufErrors`), read at the end of the window, plus rtpengine's "relayed packet
  errors", ÷ the packets sent to it until then. The machine-wide `RcvbufErrors` delta is
  kept in `report.json` (`rcvbuf_errors_machine`) but is no measure of the relay: SIPp's
  `rtp_stream` never reads the RTP it receives, so its sockets overflow by design.
- **Floor**: `bench/relay_floor` (section above); its CPU is the relay thread's own
  (`CLOCK_THREAD_CPUTIME_ID`, user + system) over the run after 2 s of warm-up, ÷ the
  datagrams it sent on in that time. A run is clean when the generator held at least 98 %
  of the nominal rate. The generator's CPU is not counted, as SIPp's is not counted for
  the systems.
- **Recording bytes per call**: growth of the recordings directory over the step ÷ N.
- A failed step's figures stay in the tables and in `report.json` (`steps`) but not in
  the headline or the per-N figures; `KEEP_WORK=1 bench/run` keeps every log and config
  of the run (SIPp screens, Kamailio and rtpengine logs) to see why a step failed."""


if __name__ == "__main__":
    main()
