#!/usr/bin/env python3
"""The gateway's note memory under load: RSS and /health while it is searched.

Starts `osmen gateway` (the binary given) on a loopback port with an empty runtime dir and
no LLM provider (so memory is lexical-bm25), stores NOTES notes of NOTE_KIB KiB of words,
then runs SEARCHERS threads of searches for SECONDS while GET /health is timed every 20 ms
and the gateway's RSS is sampled every 5 ms. Prints what was accepted (by status), the
RSS before and after the stores, the peak RSS during the searches (VmHWM, reset through
/proc/PID/clear_refs after the stores, and the sampled VmRSS), and the /health and search
latencies. Standard library only.

    python3 benches/memory.py target/debug/osmen --notes 200 --note-kib 250
    python3 benches/memory.py target/debug/osmen --notes 600 --note-kib 56
    python3 benches/memory.py target/debug/osmen --notes 200 --note-kib 244 \
        --memory max_note_bytes=262144 --memory max_total_bytes=67108864
"""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

KEY = "bench-memory-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def request(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"X-API-Key": KEY}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, out


def vocabulary(n, rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(n)]


def note_text(words, weights, size, rng):
    out, n = [], 0
    while n < size:
        w = rng.choices(words, weights, k=64)
        s = " ".join(w)
        out.append(s)
        n += len(s) + 1
    return " ".join(out)[:size]


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--note-kib", type=float, default=250)
    ap.add_argument("--searchers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--body-limit-kib", type=int, default=256)
    ap.add_argument("--memory", action="append", default=[], metavar="KEY=VALUE",
                    help="a [memory] setting, e.g. max_note_bytes=262144 (repeatable)")
    args = ap.parse_args()

    rng = random.Random(22)
    words = vocabulary(20000, rng)
    weights = [1.0 / (i + 1) for i in range(len(words))]
    tmp = tempfile.mkdtemp(prefix="osmen-bench-memory-")
    port = free_port()
    cfg = os.path.join(tmp, "gateway.toml")
    with open(cfg, "w") as f:
        f.write(f'[gateway]\nlisten = "127.0.0.1:{port}"\nbody_limit_kib = {args.body_limit_kib}\n')
        if args.memory:
            f.write("[memory]\n" + "".join(f"{kv}\n" for kv in args.memory))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "OPENAI", "ANTHROPIC", "QDRANT", "REDIS", "N8N"))}
    env.update(OSMEN_API_KEYS=KEY, OSMEN_RUNTIME_DIR=os.path.join(tmp, "runtime"))
    proc = subprocess.Popen(
        [args.binary, "-f", os.path.join(tmp, "docker-compose.yml"), "gateway", "--gateway-config", cfg],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "gateway.log"), "w"),
    )
    try:
        for _ in range(300):
            try:
                if request(port, "GET", "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        pid = proc.pid
        rss0 = status_kib(pid, "VmRSS")
        size = int(args.note_kib * 1024)
        codes, stored_bytes = {}, 0
        t0 = time.time()
        for i in range(args.notes):
            text = note_text(words, weights, size, rng)
            s, body = request(port, "POST", "/api/v1/memory", {"text": text})
            codes[s] = codes.get(s, 0) + 1
            if s == 201:
                stored_bytes += len(text)
            elif s not in codes or codes[s] == 1:
                print(f"note {i + 1}: {s} {body[:300].decode(errors='replace')}")
        store_s = time.time() - t0
        rss1 = status_kib(pid, "VmRSS")
        hwm_stores = status_kib(pid, "VmHWM")
        jsonl = os.path.join(tmp, "runtime", "memory.jsonl")
        file_bytes = os.path.getsize(jsonl) if os.path.exists(jsonl) else 0
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            reset = True
        except OSError:
            reset = False

        stop = threading.Event()
        search_ms, health_ms, rss_samples, answers, failures = [], [], [], [], []
        queries = [" ".join(rng.choices(words[:2000], k=4)) for _ in range(64)]

        def searcher(n):
            i = n
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    s, body = request(port, "POST", "/api/v1/memory/search", {"query": queries[i % len(queries)], "top_k": args.top_k})
                    answers.append(len(body))
                except OSError:
                    failures.append("search")
                search_ms.append((time.perf_counter() - t) * 1000)
                i += args.searchers

        def prober():
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    request(port, "GET", "/health", timeout=30)
                except OSError:
                    failures.append("health")
                health_ms.append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)

        def sampler():
            while not stop.is_set():
                rss_samples.append(status_kib(pid, "VmRSS"))
                time.sleep(0.005)

        threads = [threading.Thread(target=searcher, args=(n,)) for n in range(args.searchers)]
        threads += [threading.Thread(target=prober), threading.Thread(target=sampler)]
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        hwm = status_kib(pid, "VmHWM")
        mib = 1024.0
        print(f"binary {args.binary}")
        print(f"notes posted {args.notes} x {args.note_kib:g} KiB: status counts {dict(sorted(codes.items()))} in {store_s:.1f}s")
        print(f"stored text {stored_bytes / 2**20:.1f} MiB; memory.jsonl {file_bytes / 2**20:.1f} MiB")
        print(f"RSS idle {rss0 / mib:.1f} MiB; after the stores {rss1 / mib:.1f} MiB (+{(rss1 - rss0) / mib:.1f}); VmHWM during the stores {hwm_stores / mib:.1f} MiB")
        print(f"searches {len(search_ms)} from {args.searchers} threads in {args.seconds:g}s: P50 {quantile(search_ms, 0.5):.1f} ms, max {max(search_ms, default=float('nan')):.1f} ms, answers up to {max(answers, default=0) / 1024:.0f} KiB")
        peak = max(rss_samples, default=0)
        print(f"RSS during the searches: VmHWM {hwm / mib:.1f} MiB{'' if reset else ' (not reset: includes the stores)'}, sampled max {peak / mib:.1f} MiB; above the RSS after the stores: +{(max(hwm, peak) - rss1) / mib:.1f} MiB {f'({(max(hwm, peak) - rss1) * 1024 / stored_bytes:.2f}x the stored text)' if stored_bytes else ''}")
        if failures:
            print(f"timed out: {failures.count('health')} /health probes (30 s), {failures.count('search')} searches (120 s)")
        print(f"/health during the searches: {len(health_ms)} probes, P50 {quantile(health_ms, 0.5):.1f} ms, P99 {quantile(health_ms, 0.99):.1f} ms, max {max(health_ms, default=float('nan')):.1f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
