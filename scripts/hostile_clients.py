#!/usr/bin/env python3
"""Hostile clients against an HTTP service on this machine, and one normal
client measuring its latency meanwhile. Independent of idemproof (plain
asyncio sockets, standard library only), so it measures any build.

  python3 scripts/hostile_clients.py --target 127.0.0.1:8080 \
      --mode slowloris --hostile 1000 --requests 400

Modes: `none` (baseline), `idle` (connect and send nothing), `slowloris`
(send a partial request head, then one header line every few seconds).
A hostile connection the server closes is opened again at once, so the
pressure stays at `--hostile` connections for the whole run.

The normal client sends `GET /healthz` on a fresh connection each time,
sequentially; a request that gets no complete response within
`--timeout` counts as failed and enters the percentiles at the timeout.
Prints one JSON line: percentiles in milliseconds, failures, how many
hostile connections were open and how often the server closed them.
Every loop is bounded: the run stops after `--requests` requests or
`--max-seconds`, whichever comes first.
"""

import argparse
import asyncio
import json
import resource
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="127.0.0.1:8080", help="host:port (loopback only)")
    p.add_argument("--mode", choices=["none", "idle", "slowloris"], default="slowloris")
    p.add_argument("--hostile", type=int, default=1000)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--interval", type=float, default=0.025, help="seconds between normal requests")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a normal request may take")
    p.add_argument("--drip", type=float, default=5.0, help="seconds between slowloris header lines")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop the normal client after this long")
    return p.parse_args()


class Pressure:
    def __init__(self):
        self.open = 0
        self.closed_by_server = 0
        self.refused = 0
        self.stop = False


async def hostile(host, port, mode, drip, pressure):
    while not pressure.stop:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, asyncio.TimeoutError):
            pressure.refused += 1
            await asyncio.sleep(0.2)
            continue
        pressure.open += 1
        try:
            if mode == "slowloris":
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
                await writer.drain()
            while not pressure.stop:
                # Wait for the server to close (or answer) while dripping.
                try:
                    data = await asyncio.wait_for(reader.read(4096), drip)
                    if not data:
                        pressure.closed_by_server += 1
                        break
                except asyncio.TimeoutError:
                    if mode == "slowloris":
                        writer.write(b"X-Drip: 1\r\n")
                        await writer.drain()
        except OSError:
            pressure.closed_by_server += 1
        finally:
            pressure.open -= 1
            writer.close()


async def normal_request(host, port, timeout):
    started = time.perf_counter()
    try:
        async def go():
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return int(head.split(b" ", 2)[1])
        status = await asyncio.wait_for(go(), timeout)
        return (time.perf_counter() - started) * 1000, status == 200
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        return timeout * 1000, False


def percentile(sorted_ms, q):
    i = min(len(sorted_ms) - 1, max(0, int(round(q * (len(sorted_ms) - 1)))))
    return round(sorted_ms[i], 2)


async def main():
    args = parse_args()
    host, port = args.target.rsplit(":", 1)
    port = int(port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback targets only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pressure = Pressure()
    tasks = []
    if args.mode != "none":
        for _ in range(args.hostile):
            tasks.append(asyncio.create_task(hostile(host, port, args.mode, args.drip, pressure)))
        await asyncio.sleep(3)  # let the flood build up
    open_at_start = pressure.open
    latencies, failures = [], 0
    deadline = time.monotonic() + args.max_seconds
    for _ in range(args.requests):
        if time.monotonic() > deadline:
            break
        ms, ok = await normal_request(host, port, args.timeout)
        latencies.append(ms)
        failures += 0 if ok else 1
        await asyncio.sleep(args.interval)
    pressure.stop = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    print(json.dumps({
        "mode": args.mode,
        "hostile": args.hostile if args.mode != "none" else 0,
        "hostile_open_at_start": open_at_start,
        "hostile_closed_by_server": pressure.closed_by_server,
        "requests": len(latencies),
        "failed": failures,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(latencies[-1], 2),
    }))


if __name__ == "__main__":
    asyncio.run(main())
