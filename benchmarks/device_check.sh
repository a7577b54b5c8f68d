#!/usr/bin/env bash
# The accelerator check: everything worth measuring on a GPU, in one command, in under 5 minutes.
#
#   bash benchmarks/device_check.sh                  # on a GPU machine; appends to benchmarks/README.md
#   bash benchmarks/device_check.sh --cpu-dry-run    # the whole script on CPU with tiny sizes (< 1 min)
#
# Steps (each logged with its elapsed time; a failed step is reported and the others still run):
#   1. JAX must see a GPU, else it stops at once with exit code 2 (unless --cpu-dry-run).
#   2. The tests that matter on an accelerator: tests/test_precision_guard.py, test_sharding.py,
#      test_tangent.py, test_no_recompile.py (dry run: collected, not run).
#   3. The flagship sweep, python -m gdchaos.sweep 'eta=range(0.01,20)', in float64 (finite ε,
#      6·10⁶ member-steps) and in float32 with the tangent method (lyapunov.k=8).
#   4. python benchmarks/throughput.py --quick --no-torch (its block is appended as it prints it).
#   5. The figures, appended to the README under "Accelerator check": member-steps/s, the ratio to
#      the sequential per-step loop, achieved FLOP/s as a fraction of the GPU's peak for the
#      compute-bound (MNIST-shaped) case, achieved memory bandwidth as a fraction of peak for Iris,
#      and the peak device memory (jax Device.memory_stats()["peak_bytes_in_use"]) of every run.
#
# Peaks come from a table keyed by the device kind (H200, H100, A100, L4, ...; see PEAKS below).
# Override or complete them with GDCHAOS_GPU_PEAK="fp32=67,tf32=495,fp64=34,bw=4800"
# (dense TFLOP/s; bw in GB/s).
#
# Options: --readme FILE  where to append the results (default benchmarks/README.md)
#          --out DIR      keep the run directories and logs there (default: a new temp directory)
#          --cpu-dry-run  JAX_PLATFORMS=cpu, tiny sizes: exercises every step (tests/test_device_check.py)
# Environment: PYTHON (default python); JAX with CUDA installed, e.g. pip install -U "jax[cuda12]"
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
README=benchmarks/README.md
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --readme) README=${2:?--readme needs a file}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device_check: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python}
[ -f "$README" ] || { echo "device_check: error: --readme $README: no such file" >&2; exit 2; }
CREATED=0
[ -n "$OUT" ] || { OUT=$(mktemp -d -t gdchaos-device-check.XXXXXX); CREATED=1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
die() {  # stop before any measurement: say why, leave no empty temp directory
  echo "device_check: error: $*" >&2
  [ "$CREATED" = 1 ] && rm -rf "$OUT"
  exit 2
}
# Allocate on demand: peak_bytes_in_use is then what each run needs, and test processes share the GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
[ "$DRY" = 1 ] && export JAX_PLATFORMS=cpu
T0=$SECONDS
log() { printf '[device_check %4ds] %s\n' $((SECONDS - T0)) "$*"; }
FAILED=()

# ---------------------------------------------------------------- Python helpers
# Runs a module or script as __main__, then records its wall time, exit code and the peak device memory.
read -r -d '' RUNNER_PY <<'PY'
import json, os, runpy, sys, time, traceback
out, kind, target, *args = sys.argv[1:]
sys.argv = [target, *args]
code, t0 = 0, time.perf_counter()
try:
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if code and not isinstance(exc.code, int):
        print(exc.code, file=sys.stderr)
except BaseException:
    traceback.print_exc()
    code = 1
wall = time.perf_counter() - t0
import jax
peaks = []
for device in jax.local_devices():
    try:
        peaks.append((device.memory_stats() or {}).get("peak_bytes_in_use"))
    except Exception:
        peaks.append(None)
with open(out, "w") as f:
    json.dump({"wall_s": wall, "exit": code, "peak_bytes_in_use": peaks, "backend": jax.default_backend()}, f)
sys.exit(code)
PY

# Peaks of the device (subcommand "peaks") and the report (subcommand "report").
read -r -d '' FIGURES_PY <<'PY'
import datetime, json, os, re, sys

# Dense peaks per GPU (vendor data sheets; no sparsity): TFLOP/s in float32 on CUDA cores, TF32 on
# tensor cores (what JAX's default matmul precision may use for float32 dots), float64 (vector), and
# memory bandwidth in GB/s. The first pattern that matches the device kind wins.
PEAKS = [
    (r"GH200", dict(fp32=67, tf32=494.7, fp64=34, bw=4000)),
    (r"H200", dict(fp32=67, tf32=494.7, fp64=34, bw=4800)),
    (r"H100.*PCIe", dict(fp32=51, tf32=378, fp64=26, bw=2000)),
    (r"H100.*NVL", dict(fp32=60, tf32=417.5, fp64=30, bw=3900)),
    (r"H100", dict(fp32=67, tf32=494.7, fp64=34, bw=3350)),
    (r"A100.*80GB", dict(fp32=19.5, tf32=156, fp64=9.7, bw=2039)),
    (r"A100", dict(fp32=19.5, tf32=156, fp64=9.7, bw=1555)),
    (r"L40S", dict(fp32=91.6, tf32=183, fp64=None, bw=864)),
    (r"\bL4\b", dict(fp32=30.3, tf32=60, fp64=None, bw=300)),
    (r"A10G?\b", dict(fp32=31.2, tf32=62.5, fp64=None, bw=600)),
    (r"V100", dict(fp32=15.7, tf32=None, fp64=7.8, bw=900)),
    (r"\bT4\b", dict(fp32=8.1, tf32=None, fp64=None, bw=320)),
]
ENV = "GDCHAOS_GPU_PEAK"


def peaks(kind):
    """(dict fp32/tf32/fp64 in FLOP/s and bw in B/s, possibly None; where they came from)."""
    found = next(((pat, dict(p)) for pat, p in PEAKS if re.search(pat, kind, re.I)), (None, {}))
    source = f"table entry /{found[0]}/ for '{kind}'" if found[0] else f"no table entry for '{kind}'"
    values = found[1]
    if not found[0] and kind.lower() == "cpu":
        sys.path.insert(0, "benchmarks")
        from _common import cpu_peak_flops
        cpu = cpu_peak_flops()
        if cpu:
            values = dict(fp32=cpu["float32"] / 1e12, fp64=cpu["float64"] / 1e12)
            source = f"CPU estimate ({cpu['text']})"
    if os.environ.get(ENV):
        for item in os.environ[ENV].split(","):
            key, _, value = item.partition("=")
            if key.strip() not in ("fp32", "tf32", "fp64", "bw"):
                sys.exit(f"{ENV}: unknown key {key.strip()!r}; use fp32, tf32, fp64 (TFLOP/s), bw (GB/s)")
            values[key.strip()] = float(value)
        source += f", overridden by {ENV}={os.environ[ENV]}"
    scale = {"fp32": 1e12, "tf32": 1e12, "fp64": 1e12, "bw": 1e9}
    return {k: None if values.get(k) is None else values[k] * scale[k] for k in scale}, source


def parse_tables(text):
    """The markdown tables of throughput.py's block: a list of (header, rows as dicts)."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| case |") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.strip("|").split("|")))))
            tables.append((header, rows))
    return tables


def number(cell):
    try:
        return float(str(cell).replace(",", "").split(" ")[0])
    except ValueError:
        return None  # "—"


def column(row, prefix):
    return next((number(v) for k, v in row.items() if k.startswith(prefix)), None)


def fmt(value, unit=""):
    if value is None:
        return "—"
    return f"{value:.3g}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"


def pct(value, peak):
    return "—" if value is None or not peak else f"{100 * value / peak:.3g} %"


def gib(run):
    known = [b for b in (run or {}).get("peak_bytes_in_use", []) if b is not None]
    return f"{max(known) / 2**30:.2f} GiB" if known else "— (not reported by this backend)"


# throughput.py's cases whose ensemble is memory-bound: label prefix -> (data, model) as it builds them
MEMORY_BOUND = {"Iris": ({"name": "iris"}, {"hidden": [10]}),
                "digits": ({"name": "digits"}, {"hidden": [64], "activation": "tanh"})}


def bytes_per_member_step(case, dtype, shape):
    """XLA's count of bytes accessed by one update of the whole ensemble, per member-step.

    The vmapped group step of gdchaos.engine.ensemble (update, loss, test accuracy, L1 distance) for the
    (η, ε=1, ic, member) shape that throughput.py ran, compiled for this device;
    cost_analysis()["bytes accessed"] sums every kernel's operand and result bytes after fusion:
    the traffic to device memory if nothing stays in cache.
    """
    import jax
    jax.config.update("jax_enable_x64", dtype == "float64")
    from gdchaos import ensemble
    from gdchaos.experiments.task import build_task
    n_eta, n_ic, members = shape
    task = build_task(*MEMORY_BOUND[case], {"name": "sgd"})
    jnp = jax.numpy
    groups = (n_eta, 1, n_ic, members)

    def carry():  # the (η, ε, ic, member) ensemble carry, as ensemble.run builds it (shapes only)
        params = jax.vmap(task.model.init)(jax.random.split(jax.random.key(0), n_eta * n_ic * members))
        state = jax.tree.map(lambda a: a.reshape(groups + a.shape[1:]), jax.vmap(task.tmap.init)(params))
        return ensemble.EnsembleCarry(state, jnp.zeros(groups, bool), jnp.full(groups, -1, jnp.int32))

    hyper = ensemble.eta_hyper(jnp.linspace(0.01, 19.01, n_eta, dtype=dtype), task.hyper)
    step = ensemble.group_step(task.tmap, task.observe)
    step = jax.vmap(jax.vmap(jax.vmap(step, in_axes=(0, None)), in_axes=(0, None)), in_axes=(0, 0))
    cost = jax.jit(step).lower(jax.eval_shape(carry), hyper).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["bytes accessed"]) / (n_eta * n_ic * members)


def insert(readme, block):
    """Put ``block`` at the end of the "Accelerator check" section (before the next "## "), else at the end."""
    marker = "<!-- device_check.sh appends its results below -->"
    text = open(readme).read()
    at = text.find(marker)
    if at < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        nxt = re.search(r"^## ", text[at:], re.M)
        end = at + nxt.start() if nxt else len(text)
        text = text[:end].rstrip("\n") + "\n\n" + block + ("\n" + text[end:] if nxt else "")
    with open(readme, "w") as f:
        f.write(text)


def report(out, readme, dry, kind, ndev, total_s, tests_line, failed):
    import jax
    from gdchaos import results
    p, source = peaks(kind)
    runs = {}
    for name in ("flagship_f64", "tangent_f32", "throughput"):
        try:
            runs[name] = json.load(open(os.path.join(out, name + ".json")))
        except OSError:
            runs[name] = None
    rows = []
    flag_time = None
    try:
        ds = results.load(os.path.join(out, "flagship_f64"))
        n = ds.distance.size
        flag_time = float(ds.attrs["run_seconds"])
        rows.append(["flagship finite-ε sweep, float64: " + "×".join(map(str, ds.distance.shape)) + " (η×ε×ic×member×step)",
                     f"{n:,} member-steps; compile {ds.attrs['compile_seconds']:.1f} s, ensemble run {flag_time:.2f} s, "
                     f"whole command {runs['flagship_f64']['wall_s']:.0f} s; {fmt(n / flag_time)} member-steps/s; "
                     f"peak device memory {gib(runs['flagship_f64'])}"])
    except Exception as err:
        rows.append(["flagship finite-ε sweep, float64", f"failed ({type(err).__name__}: {err})"])
    try:
        ds = results.load(os.path.join(out, "tangent_f32"))
        e, i, t = ds.tangent_ftle.shape
        k = ds.sizes.get("index", 1)
        sec = float(ds.attrs["tangent_run_seconds"])
        rows.append([f"tangent sweep, float32, k = {k}: {e}×{i}×{t} (η×ic×step)",
                     f"compile {ds.attrs['tangent_compile_seconds']:.1f} s, run {sec:.2f} s, whole command "
                     f"{runs['tangent_f32']['wall_s']:.0f} s; {fmt(e * i * t / sec)} trajectory-steps/s "
                     f"(each with {k} tangent vectors); peak device memory {gib(runs['tangent_f32'])}"])
    except Exception as err:
        rows.append(["tangent sweep, float32", f"failed ({type(err).__name__}: {err})"])

    block_tp = ""
    compute_frac, compute_shape, speed, res = None, "", [], []
    try:
        block_tp = open(os.path.join(out, "throughput.md")).read().strip()
        tables = parse_tables(block_tp)
        speed, res = tables[0][1], tables[1][1]
    except Exception as err:
        rows.append(["benchmarks/throughput.py --quick", f"failed ({type(err).__name__}: {err})"])
    for s in speed:
        r = next((r for r in res if r["case"] == s["case"] and r["dtype"] == s["dtype"]), {})
        rate, ratio = column(s, "gdchaos member-steps/s"), column(s, "ratio (a)/(b)")
        line = (f"{fmt(rate)} member-steps/s, {fmt(ratio)}× the sequential per-step loop "
                f"({fmt(column(s, 'sequential member-steps/s'))}/s), {fmt(column(s, 'ratio (a)/scan'))}× one compiled trajectory")
        gflops = column(r, "achieved GFLOP/s")
        peak = p["fp32"] if s["dtype"] == "float32" else p["fp64"]
        line += (f"; {fmt(gflops)} GFLOP/s (analytic count) = {pct(gflops and gflops * 1e9, peak)} "
                 f"of the {s['dtype']} peak {fmt(peak and peak / 1e12)} TFLOP/s")
        if s["dtype"] == "float32" and p["tf32"]:
            line += f", {pct(gflops and gflops * 1e9, p['tf32'])} of the TF32 tensor-core peak"
        if s["case"].startswith("MNIST") and s["dtype"] == "float32":  # the compute-bound case
            compute_frac = None if not peak or gflops is None else gflops * 1e9 / peak
            compute_shape = s["η×ic×member×steps"]
        case = next((c for c in MEMORY_BOUND if s["case"].startswith(c)), None)
        if case and rate:
            try:
                shape = tuple(int(v) for v in s["η×ic×member×steps"].split("×")[:3])
                per = bytes_per_member_step(case, s["dtype"], shape)
                size = f"{per / 1e3:.3g} kB" if per < 1e6 else f"{per / 1e6:.3g} MB"
                line += (f"; memory: {size} per member-step (XLA bytes accessed) → "
                         f"{per * rate / 1e9:.3g} GB/s = {pct(per * rate, p['bw'])} of the peak {fmt(p['bw'] and p['bw'] / 1e9)} GB/s")
            except Exception as err:
                line += f"; memory bandwidth not computed ({type(err).__name__}: {err})"
        rows.append([f"throughput --quick: {s['case']}, {s['dtype']}, {s['η×ic×member×steps']}", line])
    if runs["throughput"]:
        rows.append(["throughput --quick: peak device memory (all cases)", gib(runs["throughput"])])
    rows.append(["tests (precision guard, sharding, tangent, no-recompile)", tests_line])
    target_flag = "—" if flag_time is None else ("met" if flag_time < 10 else "not met") + f" ({flag_time:.2f} s)"
    if flag_time is not None and n != 6_000_000:
        target_flag = f"not judged ({n:,} member-steps, not the flagship's 6·10⁶)"
    target_flops = "—" if compute_frac is None else ("met" if compute_frac >= 0.4 else "not met") + (
        f" ({100 * compute_frac:.3g} % of the CUDA-core peak, MNIST-shaped {compute_shape}, the --quick size)")
    if dry:
        target_flag = target_flops = "not judged (CPU dry run)"
    rows.append(["target: flagship sweep (6·10⁶ member-steps, float64) < 10 s of ensemble time", target_flag])
    rows.append(["target: ≥ 40 % of the float32 peak FLOP/s, compute-bound ensemble", target_flops])

    when = datetime.datetime.now().isoformat(timespec="minutes")
    title = (f"### Accelerator check: CPU dry run ({when}; tiny sizes, not a measurement)" if dry
             else f"### Accelerator check: {ndev} × {kind}, {when}")
    peak_text = ", ".join(f"{k} {fmt(v and v / (1e9 if k == 'bw' else 1e12))} {'GB/s' if k == 'bw' else 'TFLOP/s'}" for k, v in p.items())
    lines = [title, "",
             f"`bash benchmarks/device_check.sh{' --cpu-dry-run' if dry else ''}`: jax {jax.__version__}, "
             f"whole check {total_s:.0f} s. Peaks: {peak_text} ({source}).", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    if failed:
        lines += ["", "Failed steps: " + ", ".join(failed) + f" (logs in {out})."]
    block = "\n".join(lines) + "\n"
    if block_tp:
        block += "\n<details><summary>throughput.py output</summary>\n\n" + block_tp.replace("### ", "#### ", 1) + "\n\n</details>\n"
    insert(readme, block)
    print(block)


if __name__ == "__main__":
    if sys.argv[1] == "peaks":
        values, source = peaks(sys.argv[2])
        print("" if values["fp32"] is None else f"{values['fp32'] / 1e9:.6g}")
        print(source, file=sys.stderr)
    else:
        out, readme, dry, kind, ndev, total, tests_line, failed = sys.argv[2:10]
        report(out, readme, dry == "1", kind, ndev, float(total), tests_line, [f for f in failed.split(",") if f])
PY

# ---------------------------------------------------------------- 1. a GPU, or stop now
if ! probe=$(timeout 180 "$PY" -c 'import jax; d = jax.devices(); print(d[0].platform, len(d), d[0].device_kind, sep="\t")' 2>"$OUT/probe.err"); then
  die "JAX did not start: $(tail -n 3 "$OUT/probe.err")"
fi
IFS=$'\t' read -r PLATFORM NDEV KIND <<<"$probe"
if [ "$DRY" = 0 ] && [ "$PLATFORM" != gpu ]; then
  smi=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | head -n 2 | tr '\n' ' ' || echo "nvidia-smi not found")
  die "no GPU: JAX runs on '$PLATFORM' ($KIND; $smi). On a machine with an NVIDIA GPU, install JAX's CUDA" \
    "build (pip install -U \"jax[cuda12]\") and run again; or try the script on CPU with --cpu-dry-run."
fi
log "JAX sees $NDEV × $KIND ($PLATFORM); logs and run directories in $OUT"
PEAK32=$("$PY" -c "$FIGURES_PY" peaks "$KIND" 2>"$OUT/peaks.txt") || die "$(cat "$OUT/peaks.txt")"
log "peaks: $(cat "$OUT/peaks.txt")"

if [ "$DRY" = 1 ]; then
  TINY=(n_ic=2 steps=60 lyapunov.start_max=10 lyapunov.length_min=20 lyapunov.length_max=40 cpu_devices=1)
  TANGENT_K=2
  TP_ARGS=(--cases digits --float32 --devices 1)  # the smallest quick case (Iris --quick takes ~30 s on CPU)
  TEST_ARGS=(--collect-only -n 0)
  TIMEOUT=300
else
  TINY=()
  TANGENT_K=8
  TP_ARGS=()
  TEST_ARGS=(-n 4)
  TIMEOUT=240
fi

# ---------------------------------------------------------------- 2. tests
TESTS=(tests/test_precision_guard.py tests/test_sharding.py tests/test_tangent.py tests/test_no_recompile.py)
log "tests: ${TESTS[*]}"
timeout "$TIMEOUT" "$PY" -m pytest "${TEST_ARGS[@]}" "${TESTS[@]}" >"$OUT/tests.log" 2>&1
rc=$?
TESTS_LINE=$(grep -E "(passed|failed|error|tests? collected|no tests ran)" "$OUT/tests.log" | tail -n 1 | tr -d '=' | xargs)
[ "$DRY" = 1 ] && TESTS_LINE="dry run, not run: $TESTS_LINE"
[ "$rc" = 0 ] || { FAILED+=(tests); TESTS_LINE="FAILED (exit $rc): $TESTS_LINE"; }
log "tests: $TESTS_LINE"

# ---------------------------------------------------------------- 3-4. measured runs
measure() {  # name kind target args...: run under RUNNER_PY, log to $OUT/name.log
  local name=$1
  shift
  log "$name: $*"
  PYTHONUNBUFFERED=1 timeout "$TIMEOUT" "$PY" -c "$RUNNER_PY" "$OUT/$name.json" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  if [ "$rc" != 0 ]; then
    FAILED+=("$name")
    log "$name FAILED (exit $rc); last lines of $OUT/$name.log:"
    tail -n 5 "$OUT/$name.log"
  fi
}
measure flagship_f64 module gdchaos.sweep 'eta=range(0.01,20)' precision=float64 progress=false \
  "hydra.run.dir=$OUT/flagship_f64" "${TINY[@]}"
measure tangent_f32 module gdchaos.sweep 'eta=range(0.01,20)' analysis=tangent precision=float32 \
  "lyapunov.k=$TANGENT_K" progress=false "hydra.run.dir=$OUT/tangent_f32" "${TINY[@]}"
rm -f "$OUT/throughput.md"
measure throughput script benchmarks/throughput.py --quick --no-torch ${PEAK32:+--peak-gflops "$PEAK32"} \
  --append "$OUT/throughput.md" "${TP_ARGS[@]}"

# ---------------------------------------------------------------- 5. figures into the README
log "report → $README"
failed_list=$(IFS=,; echo "${FAILED[*]}")
"$PY" -c "$FIGURES_PY" report "$OUT" "$README" "$DRY" "$KIND" "$NDEV" $((SECONDS - T0)) "$TESTS_LINE" "$failed_list" \
  || FAILED+=(report)
log "done in $((SECONDS - T0)) s; logs and run directories in $OUT"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "device_check: error: failed steps: ${FAILED[*]} (logs in $OUT)" >&2
  exit 1
fi
