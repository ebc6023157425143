#!/usr/bin/python3
"""Helpers of scripts/bench: an SMTP sink, a paced blackbox_exporter driver, /proc readers and
the statistics of the probe log. Each subcommand prints one result line or JSON document.

Runs under the system Python (/usr/bin/python3), where Debian's python3-aiosmtpd is installed.
"""

import argparse
import http.client
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request


def proc_cpu_seconds(pid):
    """Returns user plus system CPU seconds of every thread of `pid`, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name, field 3 of stat(5) is at index 0, so utime (14) and stime (15)
    # are at indexes 11 and 12.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_memory_kib(pid):
    """Returns VmRSS and VmHWM of `pid` in KiB, from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def quantile(sorted_values, q):
    """Returns the nearest-rank quantile `q` (0..1) of a sorted, non-empty list."""
    index = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[index]


def cmd_cpu(args):
    print(f"{proc_cpu_seconds(args.pid):.3f}")


def cmd_cpu_run(args):
    """Runs a command and prints its user plus system CPU seconds, from the kernel's rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args.argv, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{used:.3f}")


def cmd_mem(args):
    total_rss = 0
    total_hwm = 0
    for pid in args.pids:
        memory = proc_memory_kib(pid)
        total_rss += memory["VmRSS"]
        total_hwm += memory["VmHWM"]
    print(f"{total_rss} {total_hwm}")


def cmd_served(args):
    """Prints the number of /v2 responses with status 200 the simulator has sent so far."""
    stats = get_json(f"{args.sim}/_sim/stats")
    print(stats["by_status"].get("200", 0))


def cmd_first_status(args):
    """Prints the wall-clock time (Unix seconds) of the first logged response with `status`."""
    log = get_json(f"{args.sim}/_sim/requests")["requests"]
    times = [
        entry["received_at"]["secs_since_epoch"] + entry["received_at"]["nanos_since_epoch"] / 1e9
        for entry in log
        if entry["status"] == args.status
    ]
    if not times:
        sys.exit(f"no response with status {args.status} in the simulator's request log")
    print(f"{min(times):.6f}")


def cmd_drive_blackbox(args):
    """Requests /probe from blackbox_exporter at a fixed rate over one keep-alive connection."""
    host, port = args.exporter.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    path = f"/probe?module=http_2xx&target={args.target}"
    period = 1.0 / args.rate
    deadline = time.monotonic() + args.seconds
    next_at = time.monotonic()
    sent = failed = 0
    while next_at < deadline:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        connection.request("GET", path)
        body = connection.getresponse().read()
        sent += 1
        if b"probe_success 1" not in body:
            failed += 1
        next_at += period
    print(f"{sent} {failed}")


def cmd_probe_log(args):
    """Summarises `probe finished` lines of a JSON log: latency minus the injected delay and
    schedule lateness, skipping results that finished in the first `skip` seconds."""
    latencies = []
    lateness = []
    first_at = None
    with open(args.log) as log:
        for line in log:
            if '"probe finished"' not in line:
                continue
            event = json.loads(line)
            fields = event.get("fields", event)
            stamp = event.get("timestamp", "")
            if first_at is None:
                first_at = stamp
            if args.skip and stamp < skip_until(first_at, args.skip):
                continue
            if fields.get("outcome") == "ok":
                latencies.append(int(fields["latency_us"]) - args.injected_us)
            lateness.append(int(fields["lateness_us"]))
    latencies.sort()
    lateness.sort()
    result = {"results": len(lateness), "ok": len(latencies)}
    if latencies:
        result["overhead_p50_ms"] = quantile(latencies, 0.5) / 1000
        result["overhead_p99_ms"] = quantile(latencies, 0.99) / 1000
    if lateness:
        result["lateness_p50_ms"] = quantile(lateness, 0.5) / 1000
        result["lateness_p99_ms"] = quantile(lateness, 0.99) / 1000
        result["lateness_max_ms"] = lateness[-1] / 1000
    print(json.dumps(result))


def skip_until(first_stamp, seconds):
    """Returns the RFC 3339 stamp `seconds` after `first_stamp`, for string comparison."""
    from datetime import datetime, timedelta

    start = datetime.fromisoformat(first_stamp.replace("Z", "+00:00"))
    later = start + timedelta(seconds=seconds)
    return later.isoformat(timespec="microseconds").replace("+00:00", "Z")


def cmd_smtp_sink(args):
    """Accepts mail on 127.0.0.1 and appends `<unix time> <subject>` per message to a file."""
    import asyncio
    import email

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received = time.time()
            message = email.message_from_bytes(envelope.content)
            subject = " ".join(str(message.get("Subject", "")).split())
            with open(args.out, "a") as out:
                out.write(f"{received:.6f} {subject}\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cpu = commands.add_parser("cpu", help="CPU seconds of a process")
    cpu.add_argument("pid", type=int)
    cpu.set_defaults(run=cmd_cpu)

    cpu_run = commands.add_parser("cpu-run", help="CPU seconds of a command run to its end")
    cpu_run.add_argument("argv", nargs=argparse.REMAINDER)
    cpu_run.set_defaults(run=cmd_cpu_run)

    mem = commands.add_parser("mem", help="summed VmRSS and VmHWM (KiB) of processes")
    mem.add_argument("pids", type=int, nargs="+")
    mem.set_defaults(run=cmd_mem)

    served = commands.add_parser("served", help="responses 200 sent by the simulator")
    served.add_argument("sim")
    served.set_defaults(run=cmd_served)

    first = commands.add_parser("first-status", help="time of the first response with a status")
    first.add_argument("sim")
    first.add_argument("status", type=int)
    first.set_defaults(run=cmd_first_status)

    drive = commands.add_parser("drive-blackbox", help="call blackbox_exporter at a fixed rate")
    drive.add_argument("exporter", help="host:port of blackbox_exporter")
    drive.add_argument("target", help="URL to probe")
    drive.add_argument("--rate", type=float, default=100.0, help="probes per second")
    drive.add_argument("--seconds", type=float, required=True)
    drive.set_defaults(run=cmd_drive_blackbox)

    probe_log = commands.add_parser("probe-log", help="latency and lateness from a JSON log")
    probe_log.add_argument("log")
    probe_log.add_argument("--injected-us", type=int, default=0, help="injected delay, in µs")
    probe_log.add_argument("--skip", type=float, default=0, help="warm-up seconds to ignore")
    probe_log.set_defaults(run=cmd_probe_log)

    sink = commands.add_parser("smtp-sink", help="SMTP server that logs arrival times")
    sink.add_argument("port", type=int)
    sink.add_argument("out")
    sink.set_defaults(run=cmd_smtp_sink)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
