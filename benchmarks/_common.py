"""Shared set-up for the benchmark scripts: devices, precision, machine description, tables."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys


def setup(argv, default_devices: str = "auto"):
    """Parse ``--quick``, ``--float32/--float64``, ``--devices N|auto``, ``--append FILE`` before JAX starts."""
    import argparse

    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on a 2-core CPU")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--devices", default=default_devices, help="XLA host devices on CPU (auto = one per core)")
    parser.add_argument("--append", default=None, help="append the markdown table to this file")
    args = parser.parse_args(argv)
    n = (os.cpu_count() or 1) if args.devices == "auto" else int(args.devices)
    if n > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
    return args


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()} "
        f"({jax.device_count()} device(s): {jax.devices()[0].device_kind}), "
        f"{datetime.date.today().isoformat()}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(title: str, text: str, append: str | None) -> None:
    block = f"### {title}\n\nMachine: {machine()}\n\nCommand: `python {' '.join(sys.argv)}`\n\n{text}\n"
    print(block)
    if append:
        with open(append, "a") as f:
            f.write("\n" + block)
