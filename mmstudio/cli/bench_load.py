"""`python -m mmstudio bench load`: a classroom at once, through the served app.

Starts ``python app.py`` on a free local port (its own gradio temp folder, offline) and drives it
with ``gradio_client`` from N threads, one client (one browser session) each, every client going
round a mix of Diffusion ``/denoise`` (``--steps`` steps, several prompts, seeds, guidance values
and schedulers), Tokenize ``/vq_tokenize`` and Similarity ``/similarity`` requests, from a pool of
``--pool`` distinct requests per endpoint.

1. Alone: one client sends every request of the pool once, one after the other: the reference
   result of each request and the warm-up (models load).
   Then one ``/denoise`` request alone, ``--lone-runs`` times, against the bare loop doing the
   same work in this process: what the API, the streaming and the server add to the model work.
2. One client for ``--baseline-seconds``: the throughput one user gets.
3. N clients for ``--seconds`` (for each N of ``--clients 16,32``): per endpoint p50 / p95 latency
   (and of the ``--steps``-step generations alone), errors, throughput and throughput relative to
   one client; cross-talk: every result compared with the same request's result alone (denoise:
   the final image, within ``--tolerance`` uint8 levels; tokenize: reconstruction and figures,
   exactly; similarity: the cosine matrix, to 1e-5); the server's resident memory after the
   phase's first ``--warmup`` seconds and at its end; the size of gradio's temp folder.

Clients read result files straight from the server's folder (same machine) instead of downloading
them, so the bench's own process stays light: it shares the CPU with the server it measures.

    python -m mmstudio bench load --clients 16 --seconds 180 [--clients 16,32] [--json]
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError

ENDPOINTS = ("denoise", "tokenize", "similarity")
GUIDANCES = (1.5, 3.0, 0.0, 1.5)
SCHEDULERS = ("ddim", "ddim", "euler_a", "dpmpp_2m")


# ------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    temp_dir: Path
    log: Path

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system), seconds."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def temp_usage(self) -> tuple[int, int]:
        """(bytes, files) under gradio's temp folder."""
        total = files = 0
        for path in self.temp_dir.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
                    files += 1
        return total, files


@contextlib.contextmanager
def served_app(root: Path, startup_timeout: float = 300) -> Iterator[Server]:
    port = free_port()
    temp_dir = root / "gradio"
    temp_dir.mkdir()
    log = root / "server.log"
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_TEMP_DIR=str(temp_dir), GRADIO_ANALYTICS_ENABLED="False",
               MMSTUDIO_OFFLINE=os.environ.get("MMSTUDIO_OFFLINE", "1"))
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise UserError(f"app.py exited with {process.returncode}:\n"
                                f"{log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise UserError(f"app.py did not serve within {startup_timeout:.0f} s") \
                        from None
                time.sleep(0.3)
        yield Server(url, process, temp_dir, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# ------------------------------------------------------------------------------ requests
@dataclass(frozen=True)
class Request:
    endpoint: str
    index: int  # in the pool of its endpoint
    args: tuple
    steps: int = 0  # denoise only

    @property
    def name(self) -> str:
        return f"{self.endpoint}#{self.index}"


def request_pool(folder: Path, size: int, steps: int) -> list[Request]:
    """``size`` distinct requests per endpoint, interleaved (denoise, tokenize, similarity, ...)."""
    import numpy as np
    from PIL import Image

    from mmstudio.worlds import shapes

    rng = np.random.default_rng(0)
    pool: dict[str, list[Request]] = {name: [] for name in ENDPOINTS}
    for i in range(size):
        caption = shapes.caption(shapes.sample_attrs(rng, "all"))
        pool["denoise"].append(Request("denoise", i, (
            caption, "shapes-unet", SCHEDULERS[i % len(SCHEDULERS)], steps,
            GUIDANCES[i % len(GUIDANCES)], i), steps))
        image = folder / f"tokenize-{i}.png"
        attrs = shapes.sample_attrs(rng, "all")
        Image.fromarray(shapes.render(attrs, np.random.default_rng(i))).save(image)
        pool["tokenize"].append(Request("tokenize", i, (
            ("shapes-vqvae", "shapes-vqgan")[i % 2], str(image))))
        captions = "\n".join(shapes.caption(shapes.sample_attrs(rng, "all"))
                             for _ in range(4 + i % 5))
        texts = "\n".join(shapes.caption(shapes.sample_attrs(rng, "all"))
                          for _ in range(3 + i % 4))
        pool["similarity"].append(Request("similarity", i, (
            "shapes-clip", captions, i, [], texts, "color x shape", "yours+shapes")))
    return [r for group in zip(*pool.values(), strict=True) for r in group]


API_NAMES = {"denoise": "/denoise", "tokenize": "/vq_tokenize", "similarity": "/similarity"}


def send(client: Any, request: Request) -> Any:
    from gradio_client import handle_file

    args = request.args
    if request.endpoint == "tokenize":
        args = (args[0], handle_file(args[1]))
    return client.predict(*args, api_name=API_NAMES[request.endpoint])


def _path(value: Any) -> str:
    return value["path"] if isinstance(value, dict) else str(value)


def fingerprint(request: Request, outputs: Any) -> Any:
    """What of a result must not depend on who else was served at the same time."""
    import numpy as np
    from PIL import Image

    if request.endpoint == "denoise":
        return np.asarray(Image.open(_path(outputs[3])).convert("RGB"), np.int16)
    if request.endpoint == "tokenize":
        return (np.asarray(Image.open(_path(outputs[2])).convert("RGB"), np.int16),
                outputs[4])
    data = outputs[6]
    return np.asarray(data.get("cosine"), np.float64), tuple(data.get("images", ()))


def differs(request: Request, expected: Any, got: Any, tolerance: int) -> str:
    """Empty when ``got`` matches ``expected``; else what differs."""
    import numpy as np

    if request.endpoint == "denoise":
        if expected.shape != got.shape:
            return f"image shape {got.shape} != {expected.shape}"
        worst = int(np.abs(expected - got).max())
        return f"image differs by {worst} levels" if worst > tolerance else ""
    if request.endpoint == "tokenize":
        if not np.array_equal(expected[0], got[0]):
            return "reconstruction differs"
        return "" if expected[1] == got[1] else "figures differ"
    if expected[1] != got[1] or expected[0].shape != got[0].shape:
        return "different images or texts"
    worst = float(np.abs(expected[0] - got[0]).max()) if expected[0].size else 0.0
    return f"cosine differs by {worst:.2g}" if worst > 1e-5 else ""


def image_difference(expected: Any, got: Any) -> int:
    import numpy as np

    return int(np.abs(expected - got).max())


# ------------------------------------------------------------------------------ phases
@dataclass
class Outcome:
    request: Request
    seconds: float
    error: str = ""
    mismatch: str = ""
    difference: int = 0  # denoise: uint8 levels from the result alone


@dataclass
class Phase:
    clients: int
    seconds: float  # wall time, first request sent to last answer
    outcomes: list[Outcome] = field(default_factory=list)
    rss_after_warmup: int = 0
    rss_end: int = 0
    rss_max: int = 0
    rss_timeline: list[tuple[float, int]] = field(default_factory=list)  # (s into it, bytes)
    temp_bytes: int = 0
    temp_files: int = 0
    server_cpu_s: float = 0.0  # CPU time the server used during the phase
    clients_cpu_s: float = 0.0  # ... and this process (the clients)
    load_average: float = 0.0  # the machine's 1-minute load at the end (other work included)

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.error]

    @property
    def throughput(self) -> float:
        return len(self.done) / self.seconds if self.seconds else 0.0


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def make_client(server: Server) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=False)


def run_alone(server: Server, pool: list[Request]) -> dict[str, Any]:
    """Every request once, one at a time: the reference results."""
    client = make_client(server)
    references = {}
    for request in pool:
        try:
            references[request.name] = fingerprint(request, send(client, request))
        except Exception as exc:  # noqa: BLE001 - the bench needs every reference
            raise UserError(f"{request.name} failed alone ({type(exc).__name__}: {exc}); the "
                            f"server's log ends:\n{server.log.read_text()[-3000:]}") from exc
    return references


def lone_request_cost(server: Server, request: Request, runs: int = 5) -> dict[str, float]:
    """One /denoise request alone through the API against the bare loop doing the same work in
    this process (same settings, the studio's thread count), medians of ``runs``, measured
    alternately so that a change in the machine's load hits both."""
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run

    prompt, model_id, scheduler, steps, guidance, seed = request.args
    settings = DenoiseSettings((prompt,), steps=steps, guidance=guidance, seed=seed,
                               scheduler=scheduler)
    client = make_client(server)
    api, bare = [], []
    with denoiser_for(ModelManager(), model_id) as denoiser:
        run(denoiser, settings)  # warm-up
        for _ in range(runs):
            began = time.perf_counter()
            send(client, request)
            api.append(time.perf_counter() - began)
            began = time.perf_counter()
            run(denoiser, settings)
            bare.append(time.perf_counter() - began)
    api_s, bare_s = statistics.median(api), statistics.median(bare)
    return {"api_s": round(api_s, 3), "bare_loop_s": round(bare_s, 3),
            "ratio": round(api_s / bare_s, 3)}


def run_phase(server: Server, pool: list[Request], references: dict[str, Any], clients: int,
              seconds: float, warmup: float, tolerance: int) -> Phase:
    phase = Phase(clients, 0.0)
    cpu_start = server.cpu_seconds()
    own_start = _own_cpu_seconds()
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds
    sessions = [make_client(server) for _ in range(clients)]  # connected before the clock runs
    rss_samples: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.5):
            rss_samples.append(server.rss())
            phase.rss_timeline.append((time.monotonic() - start, rss_samples[-1]))
            if not phase.rss_after_warmup and time.monotonic() - start >= warmup:
                phase.rss_after_warmup = rss_samples[-1]

    def client_loop(number: int) -> None:
        client = sessions[number]
        position = number * len(pool) // max(1, clients)  # clients start at different places
        while time.monotonic() < end:
            request = pool[position % len(pool)]
            position += 1
            began = time.perf_counter()
            outcome = Outcome(request, 0.0)
            try:
                outputs = send(client, request)
                outcome.seconds = time.perf_counter() - began
                got = fingerprint(request, outputs)
                expected = references[request.name]
                outcome.mismatch = differs(request, expected, got, tolerance)
                if request.endpoint == "denoise" and expected.shape == got.shape:
                    outcome.difference = image_difference(expected, got)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                outcome.seconds = time.perf_counter() - began
                outcome.error = f"{type(exc).__name__}: {exc}"[:300]
            with lock:
                phase.outcomes.append(outcome)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.monotonic() - start
    phase.server_cpu_s = server.cpu_seconds() - cpu_start
    phase.clients_cpu_s = _own_cpu_seconds() - own_start
    with contextlib.suppress(OSError):
        phase.load_average = float(Path("/proc/loadavg").read_text().split()[0])
    stop_sampling.set()
    sampler.join()
    phase.rss_end = server.rss()
    phase.rss_max = max([*rss_samples, phase.rss_end])
    phase.rss_after_warmup = phase.rss_after_warmup or (rss_samples[0] if rss_samples else 0)
    phase.temp_bytes, phase.temp_files = server.temp_usage()
    return phase


# ------------------------------------------------------------------------------ figures
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def window_growth(samples: list[tuple[float, int]], warmup: float,
                  window: float = 30.0) -> float | None:
    """Resident memory growth between two windows: the median of the ``window`` seconds after
    ``warmup`` against the median of the last ``window`` seconds of the phase. A single reading
    swings with the batches in flight at that moment (two passes of 32 samples hold a hundred MB
    or more of activations); medians over windows leave growth. None when the phase is too short
    for two windows apart."""
    if not samples:
        return None
    end = samples[-1][0]
    first = [rss for at, rss in samples if warmup <= at < warmup + window]
    last = [rss for at, rss in samples if at >= end - window]
    if not first or not last or end - window < warmup + window:
        return None
    return round(statistics.median(last) / statistics.median(first) - 1, 4)


def summarize(phase: Phase, baseline: float, steps: int, warmup: float = 30.0) -> dict[str, Any]:
    groups: dict[str, list[Outcome]] = {name: [] for name in ENDPOINTS}
    for outcome in phase.outcomes:
        groups[outcome.request.endpoint].append(outcome)
    groups[f"denoise ({steps} steps)"] = [o for o in groups["denoise"]
                                          if o.request.steps == steps]
    endpoints = {}
    for name, outcomes in groups.items():
        done = [o.seconds for o in outcomes if not o.error]
        errors = [o.error for o in outcomes if o.error]
        endpoints[name] = {
            "requests": len(outcomes), "errors": len(errors),
            "first_error": errors[0] if errors else "",
            "cross_talk": sum(bool(o.mismatch) for o in outcomes),
            "first_cross_talk": next((o.mismatch for o in outcomes if o.mismatch), ""),
            "p50_s": round(percentile(done, 50), 3), "p95_s": round(percentile(done, 95), 3),
            "throughput_per_s": round(len(done) / phase.seconds, 3) if phase.seconds else 0.0,
        }
    denoise_done = [o for o in groups["denoise"] if not o.error]
    return {
        "clients": phase.clients, "seconds": round(phase.seconds, 1),
        "requests": len(phase.outcomes), "errors": sum(bool(o.error) for o in phase.outcomes),
        "cross_talk": sum(bool(o.mismatch) for o in phase.outcomes),
        "max_denoise_difference_levels": max((o.difference for o in denoise_done), default=0),
        "throughput_per_s": round(phase.throughput, 3),
        "throughput_vs_one_client": round(phase.throughput / baseline, 3) if baseline else None,
        "rss_after_warmup_mb": round(phase.rss_after_warmup / 2**20, 1),
        "rss_end_mb": round(phase.rss_end / 2**20, 1),
        "rss_max_mb": round(phase.rss_max / 2**20, 1),
        "rss_growth": round(phase.rss_end / phase.rss_after_warmup - 1, 4)
        if phase.rss_after_warmup else None,
        "rss_timeline_mb": rss_timeline(phase.rss_timeline),
        "rss_growth_windows": window_growth(phase.rss_timeline, warmup),
        "temp_dir_mb": round(phase.temp_bytes / 2**20, 2), "temp_dir_files": phase.temp_files,
        "server_cores_used": round(phase.server_cpu_s / phase.seconds, 2) if phase.seconds else 0,
        "clients_cores_used": round(phase.clients_cpu_s / phase.seconds, 2)
        if phase.seconds else 0,
        "machine_cores": os.cpu_count(), "load_average_1min": phase.load_average,
        "endpoints": endpoints,
    }


def rss_timeline(samples: list[tuple[float, int]], every: float = 30.0) -> list[list[float]]:
    """The server's resident memory every ``every`` seconds of a phase (the first sample at or
    after each mark): a ramp that levels off tells a filling cache from a leak."""
    marks, mark = [], 0.0
    for at, rss in samples:
        if at >= mark:
            marks.append([round(at), round(rss / 2**20, 1)])
            mark = (at // every + 1) * every
    return marks


def parse_clients(text: str) -> list[int]:
    try:
        counts = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(n < 1 or n > 256 for n in counts):
        raise UserError(f"--clients takes client counts from 1 to 256, e.g. 16 or 16,32; not "
                        f"{text!r}")
    return counts


def bench_load(args: Any) -> dict[str, Any]:
    counts = parse_clients(args.clients)
    if args.seconds <= 0 or args.baseline_seconds <= 0 or args.pool < 1 or args.steps < 1:
        raise UserError("--seconds, --baseline-seconds, --pool and --steps must be positive")
    with tempfile.TemporaryDirectory(prefix="mmstudio-bench-load-") as tmp:
        root = Path(tmp)
        pool = request_pool(root, args.pool, args.steps)
        started = time.monotonic()
        with served_app(root) as server:
            startup = time.monotonic() - started
            rss_start = server.rss()
            alone_start = time.monotonic()
            references = run_alone(server, pool)
            alone = time.monotonic() - alone_start
            lone = lone_request_cost(server, pool[0]) if args.lone_runs else None
            one = run_phase(server, pool, references, 1, args.baseline_seconds,
                            args.warmup, args.tolerance)
            phases = [summarize(one, one.throughput, args.steps, args.warmup)]
            for clients in counts:
                phase = run_phase(server, pool, references, clients, args.seconds,
                                  args.warmup, args.tolerance)
                phases.append(summarize(phase, one.throughput, args.steps, args.warmup))
            temp_bytes, temp_files = server.temp_usage()
    return {
        "pool_per_endpoint": args.pool, "steps": args.steps, "tolerance_levels": args.tolerance,
        "server_startup_s": round(startup, 1), "rss_at_start_mb": round(rss_start / 2**20, 1),
        "references_alone_s": round(alone, 1),
        "lone_denoise": lone,
        "requests_total": len(pool) + sum(p["requests"] for p in phases),
        "temp_dir_mb_end": round(temp_bytes / 2**20, 2), "temp_dir_files_end": temp_files,
        "phases": phases,
    }


def print_load(figures: dict[str, Any]) -> None:
    print(f"load bench: app.py served locally, mix of /denoise ({figures['steps']} steps), "
          f"/vq_tokenize, /similarity; {figures['pool_per_endpoint']} distinct requests per "
          f"endpoint; server up in {figures['server_startup_s']} s")
    lone = figures["lone_denoise"]
    if lone:
        print(f"one /denoise request alone ({figures['steps']} steps): {lone['api_s']:.2f} s "
              f"through the API, {lone['bare_loop_s']:.2f} s as the bare loop in-process: "
              f"{lone['ratio']:.2f}x (medians, measured alternately)")
    for phase in figures["phases"]:
        relative = phase["throughput_vs_one_client"]
        print(f"\n{phase['clients']} client(s), {phase['seconds']} s: {phase['requests']} "
              f"requests, {phase['errors']} errors, {phase['cross_talk']} cross-talk, "
              f"throughput {phase['throughput_per_s']:.2f}/s ({relative:.2f}x one client)")
        print(f"  {'endpoint':22} {'requests':>8} {'errors':>6} {'p50 s':>7} {'p95 s':>7} "
              f"{'per s':>6}")
        for name, row in phase["endpoints"].items():
            print(f"  {name:22} {row['requests']:8d} {row['errors']:6d} {row['p50_s']:7.2f} "
                  f"{row['p95_s']:7.2f} {row['throughput_per_s']:6.2f}")
            for key in ("first_error", "first_cross_talk"):
                if row[key]:
                    print(f"    {key.replace('_', ' ')}: {row[key]}")
        print(f"  largest denoise difference from the result alone: "
              f"{phase['max_denoise_difference_levels']} uint8 levels")
        growth = phase["rss_growth"]
        print(f"  server memory: {phase['rss_after_warmup_mb']} MB after warm-up, "
              f"{phase['rss_end_mb']} MB at the end "
              f"({'n/a' if growth is None else f'{growth:+.1%}'}), max {phase['rss_max_mb']} MB; "
              f"gradio temp folder {phase['temp_dir_mb']} MB in {phase['temp_dir_files']} files")
        windows = phase.get("rss_growth_windows")
        if windows is not None:
            print(f"  memory growth, median of the last 30 s against the 30 s after warm-up: "
                  f"{windows:+.1%}")
        if phase.get("rss_timeline_mb"):
            print("  server memory over the phase (s: MB): " + ", ".join(
                f"{at:.0f}: {mb:g}" for at, mb in phase["rss_timeline_mb"]))
        print(f"  CPU: the server {phase['server_cores_used']:.2f} and the clients "
              f"{phase['clients_cores_used']:.2f} of {phase['machine_cores']} cores on average; "
              f"machine load average {phase['load_average_1min']:.1f} at the end (other "
              f"processes included)")
    print(f"\n{figures['requests_total']} requests in all; gradio temp folder at the end: "
          f"{figures['temp_dir_mb_end']} MB in {figures['temp_dir_files_end']} files")
