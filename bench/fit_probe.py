"""How much a busy study's model fits slow another study's calls on the same server.

One ``tuneforge serve`` on a fresh PostgreSQL database; 8 closed-loop clients run a
study of the given algorithm (the load) while one probe client suggests and completes
trials of a ``random`` study, timing each complete. With the GP fits in the server's
process (``--fit-processes 0``) the probe waits for the interpreter lock they hold;
with a fit process (the default, 1) it does not. Compare ``--load random`` for the
cost of the load's requests alone.

    python -m bench.fit_probe --load auto --fit-processes 0 1
    python -m bench.fit_probe --load random
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

import httpx
import numpy as np

from .service import Window, _tuneforge_load, database, servers, spec


def probe(load: str, fit_processes: int, seconds: float, clients: int) -> dict[str, float]:
    """Complete latencies (ms) of the probe client beside ``clients`` loading clients."""
    os.environ["TUNEFORGE_FIT_PROCESSES"] = str(fit_processes)
    with database("postgresql") as url, servers(url, 1) as urls:
        base = urls[0]
        quiet = httpx.post(f"{base}/api/v1/studies", json=spec("probe", "random")).json()["id"]
        busy = httpx.post(f"{base}/api/v1/studies", json=spec("load", load)).json()["id"]
        start = time.time() + 1
        window = Window(start, start + 8, start + 8 + seconds)  # 8 s: past the GP's start-up
        loader = threading.Thread(
            target=lambda: asyncio.run(_tuneforge_load(urls, [busy], clients, window))
        )
        loader.start()
        time.sleep(max(0.0, window.timed_from - time.time()))
        latencies = []
        with httpx.Client(base_url=base, timeout=120) as http:
            api = f"/api/v1/studies/{quiet}/trials"
            while time.time() < window.end - 1:
                r = http.post(f"{api}/suggest", json={"count": 1, "client_id": "probe"})
                number = r.json()["trials"][0]["number"]
                t0 = time.perf_counter()
                http.post(f"{api}/{number}/complete", json={"values": {"loss": 1.0}})
                latencies.append(time.perf_counter() - t0)
        loader.join()
    ms = 1000 * np.asarray(latencies)
    return {
        "n": float(len(ms)),
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", default="auto", help="the loaded study's algorithm")
    p.add_argument("--fit-processes", type=int, nargs="+", default=[0, 1])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args(argv)
    print("| load | fit processes | probe completes | p50 ms | p90 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for n in args.fit_processes:
        r = probe(args.load, n, args.seconds, args.clients)
        print(
            f"| {args.load} ({args.clients} clients) | {n} | {r['n']:.0f} | {r['p50']:.1f} "
            f"| {r['p90']:.1f} | {r['p99']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
