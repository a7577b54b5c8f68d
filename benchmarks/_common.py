"""Shared set-up for the benchmark scripts: devices, precision, machine description, tables.

Import this module, and call :func:`setup`, before importing JAX: the number of
XLA host devices (one per core on CPU, as ``gdchaos.sweep`` does) is fixed when
JAX initializes its backend.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import shlex
import sys

DTYPES = ("float32", "float64")


def setup(argv, default_devices: str = "auto", default_dtype: str = "both", extra=None):
    """Parse the common flags and set ``XLA_FLAGS`` before JAX starts.

    Flags: ``--quick``; precision ``--float32`` / ``--float64`` (both given: both;
    neither: ``default_dtype``; ``--dtype float32|float64|both`` is the long form);
    ``--devices N|auto`` XLA host devices on CPU (``auto`` = one per core, as the
    sweep does) and ``--no-split`` (= ``--devices 1``); ``--append FILE``.

    ``extra(parser)`` may add script-specific arguments.

    Returns the parsed arguments; ``args.dtypes`` lists the dtypes to run and
    ``args.dtype`` is ``float32``, ``float64`` or ``both``.
    """
    import argparse

    parser = argparse.ArgumentParser(
        description=sys.modules["__main__"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on a 2-core CPU")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default=None,
                        help=f"precision(s) to run (default: {default_dtype})")
    parser.add_argument("--float32", action="store_true", help="run in float32 (with --float64: both)")
    parser.add_argument("--float64", action="store_true", help="run in float64 (with --float32: both)")
    parser.add_argument("--devices", default=None,
                        help=f"XLA host devices on CPU: N or auto = one per core (default: {default_devices}; "
                        "an explicit value overrides a device count already in XLA_FLAGS)")
    parser.add_argument("--no-split", action="store_true",
                        help="one XLA host device: do not split the ensemble over cores (= --devices 1)")
    parser.add_argument("--append", default=None, metavar="FILE",
                        help="also append the markdown tables to FILE (default: print only)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)

    chosen = [d for d in DTYPES if getattr(args, d)]
    if args.dtype is None:
        args.dtype = default_dtype if not chosen else chosen[0] if len(chosen) == 1 else "both"
    elif chosen:
        parser.error("give either --dtype or --float32/--float64, not both")
    args.dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]

    explicit = args.no_split or args.devices is not None
    args.devices = "1" if args.no_split else args.devices or default_devices
    n = (os.cpu_count() or 1) if args.devices == "auto" else int(args.devices) if args.devices.isdigit() else 0
    if n < 1:
        parser.error(f"--devices must be >= 1 or auto; got {args.devices}")
    flags = os.environ.get("XLA_FLAGS", "")
    if explicit:
        flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", flags)
    if "xla_force_host_platform_device_count" not in flags and n > 1:
        flags = f"{flags} --xla_force_host_platform_device_count={n}"
    os.environ["XLA_FLAGS"] = " ".join(flags.split())
    if not os.environ["XLA_FLAGS"]:
        del os.environ["XLA_FLAGS"]
    return args


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else from :mod:`platform`."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_peak_flops(n_cores: int | None = None) -> dict[str, float] | None:
    """An assumed CPU peak (FLOP/s) per dtype: cores × clock × FLOP/cycle of the widest FMA SIMD.

    FLOP/cycle per core assumes two FMA pipes: 64 float32 / 32 float64 with
    AVX-512, 32 / 16 with AVX2+FMA, 16 / 8 with AVX, 8 / 4 otherwise. The clock
    is the current ``cpu MHz`` of /proc/cpuinfo (turbo may be higher). Returns
    ``None`` where /proc/cpuinfo is unreadable. A rough ceiling, not a measurement.
    """
    n_cores = n_cores or os.cpu_count() or 1
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    mhz = [float(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    if not mhz:
        return None
    if "avx512f" in flags:
        f32 = 64
    elif "avx2" in flags and "fma" in flags:
        f32 = 32
    elif "avx" in flags:
        f32 = 16
    else:
        f32 = 8
    ghz = max(mhz) / 1e3
    isa = {64: "AVX-512", 32: "AVX2+FMA", 16: "AVX", 8: "SSE"}[f32]
    return {
        "float32": n_cores * ghz * 1e9 * f32,
        "float64": n_cores * ghz * 1e9 * f32 / 2,
        "text": (
            f"{n_cores} cores × {ghz:.2f} GHz × {f32} float32 / {f32 // 2} float64 FLOP/cycle ({isa}, two FMA "
            "pipes; clock from /proc/cpuinfo, so boost clocks can make the real peak higher)"
        ),
    }


def machine() -> str:
    """One line: CPU, cores, JAX version, backend and devices, date."""
    import jax

    devices = jax.devices()
    return (
        f"{cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{len(devices)} device(s) ({devices[0].device_kind}); "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}"
    )


def command() -> str:
    """The exact command line of this run (with ``XLA_FLAGS`` if set outside the script)."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def fmt(value) -> str:
    """Table cell: 3 significant digits for floats, ``—`` for None."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value != 0 and (abs(value) >= 1e10 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3g}" if abs(value) < 1000 else f"{float(f'{value:.3g}'):,.0f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(title: str, text: str, append: str | None) -> None:
    """Print a titled block (machine, command, ``text``) and append it to ``append`` if given."""
    import jax

    flags = os.environ.get("XLA_FLAGS", "").strip()
    block = (
        f"### {title}\n\n"
        f"Machine: {machine()}\n\n"
        f"Command: `{command()}`" + (f" (XLA_FLAGS=`{flags}`)" if flags else "") + "\n\n"
        f"JAX devices used: {jax.device_count()} × {jax.devices()[0].device_kind}\n\n"
        f"{text}\n"
    )
    print(block, flush=True)
    if append:
        with open(append, "a") as f:
            f.write("\n" + block)
