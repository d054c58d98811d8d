"""bench/recorder.py — what one recorder costs per visit: CPU seconds and disk MB per minute.

The server (``recording`` on), one booth (640x480 at 15 fps test card and its tone) and the
officer (1200 Hz tone and name card) run in this process; ``lapak recorder`` runs in its own
process, whose CPU time is read from /proc. The visit alternates on air and off air every
``--period`` seconds for ``--seconds`` (so the booth sends full video half the time and
thumbnails the other half, and the officer's media are relayed half the time), then ends; the
recorder closes the file. CPU per minute is the recorder's CPU during the visit (its idle CPU,
measured before, is reported too) over the file's duration; disk per minute is the file's
size over its duration. The file is encrypted (AES-256-GCM chunks under the visit's
recording key, which the recorder asks the server for): the figures include that, and the
bench then decrypts it with the key from the data directory, as `lapak recordings export`
does, and reports that time too (``decrypt_s_per_min``) and that it decodes.

Run from the repo root: ``.venv/bin/python bench/recorder.py`` (``--seconds 30`` for a quick
look, ``--quick`` for the smoke test). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TICK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"# {text}", flush=True)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def until(predicate, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def count_video(path: Path) -> int:
    """Booth video frames in a decrypted file (the proof it decodes)."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


async def main(args: argparse.Namespace) -> dict[str, object]:
    from lapak.cli.recordings import visit_key
    from lapak.media.booth import BoothMediaConfig
    from lapak.media.headless import HeadlessDesk
    from lapak.media.officer import OfficerMediaOptions
    from lapak.media.recorder_crypt import decrypt_to
    from lapak.media.recorder_file import SUFFIX, read_sidecar
    from lapak.media.simulator import make_booths
    from lapak.signaling.config import ServerConfig
    from lapak.signaling.server import SignalServer
    from lapak.signaling.tokens import KeyRing

    tmp = Path(tempfile.mkdtemp(prefix="lapak-bench-rec-"))
    keys = KeyRing.generate()
    server = SignalServer(tmp / "data", keys, port=0, config=ServerConfig(recording=True))
    await server.start()
    rec_dir = tmp / "recordings"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lapak.cli", "recorder", "--server", server.url,
        "--token", keys.issue("recorder", "rec", "main"), "--dir", str(rec_dir),
        "--log-level", "WARNING", start_new_session=True,
    )  # fmt: skip
    (booth,) = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=640, height=480, fps=15), seed=1
    )
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", desk="d1"),
    )
    try:
        await desk.start()
        await asyncio.sleep(2.0)  # the recorder connects and watches
        idle0 = cpu_s(proc.pid)
        await asyncio.sleep(args.idle)
        idle_cpu = (cpu_s(proc.pid) - idle0) / args.idle
        start_cpu = cpu_s(proc.pid)
        visit = await booth.start()
        say(f"visit {visit} started; on/off air every {args.period:g} s for {args.seconds:g} s")
        began = time.monotonic()
        on = False
        while time.monotonic() - began < args.seconds:
            on = not on
            await desk.focus(visit if on else None)
            await asyncio.sleep(min(args.period, args.seconds - (time.monotonic() - began)))
        await desk.session.end_visit(visit, "abandoned", None)
        sidecar = rec_dir / f"{visit}{SUFFIX}.json"
        await until(
            lambda: sidecar.exists() and read_sidecar(sidecar).get("closed"), "the file", 30
        )
        visit_cpu = cpu_s(proc.pid) - start_cpu
        info = read_sidecar(sidecar)
        key = visit_key(server.data_dir, visit)
        plain = tmp / f"{visit}.webm"
        t0 = time.process_time()
        with plain.open("wb") as out:
            opened = decrypt_to(rec_dir / str(info["file"]), key, out)
        decrypt_cpu = time.process_time() - t0
        decoded = await asyncio.to_thread(count_video, plain)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            await proc.wait()
        await desk.close()
        await booth.close()
        await server.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"kept {tmp}")
    minutes = float(info["duration_s"]) / 60.0
    return {
        "bench": "recorder",
        "seconds": args.seconds,
        "period_s": args.period,
        "booth_video": "640x480@15 on air, 160 px thumbnail @5 off air",
        "duration_s": info["duration_s"],
        "bytes": info["bytes"],
        "gaps": len(info["gaps"]),
        "dropped_frames": info["dropped_frames"],
        "recorder_cpu_s_per_min": round(visit_cpu / minutes, 2),
        "recorder_cpu_share": round(visit_cpu / (minutes * 60), 3),
        "recorder_idle_cpu_share": round(idle_cpu, 4),
        "disk_mb_per_min": round(int(info["bytes"]) / 1e6 / minutes, 2),
        "encrypted": True,
        "chunks": opened.chunks,
        "closed_with_final_chunk": opened.final,
        "decrypt_s_per_min": round(decrypt_cpu / minutes, 4),
        "decoded_booth_frames": decoded,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the visit")
    parser.add_argument("--period", type=float, default=10.0, help="on/off air every N s")
    parser.add_argument("--idle", type=float, default=3.0, help="idle CPU sample, seconds")
    parser.add_argument("--quick", action="store_true", help="a 6 s visit (the smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the data and recordings")
    options = parser.parse_args()
    if options.quick:
        options.seconds, options.period, options.idle = 6.0, 3.0, 1.0
    result = asyncio.run(main(options))
    print(json.dumps(result), flush=True)
