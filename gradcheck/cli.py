"""``gradcheck`` command line: ``main(argv) -> int`` (0 all asserted claims hold, 1 a claim is
violated, 2 usage or input error: one line on stderr, no traceback, no partial output)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ._errors import preload
from ._threads import parse_threads
from .schemes.registry import NAMES as SCHEME_NAMES
from .schemes.registry import SCALED_SCHEMES
from .spec import RunSpec, SpecError, parse_seeds


def parse_shape(text: str) -> tuple[int, ...]:
    """'3,32,32' -> (3, 32, 32)."""
    return tuple(int(v) for v in text.split(","))


parse_shape.__name__ = "shape"


class UsageError(Exception):
    """Raised instead of argparse's exit so main() can return 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D102 - one line, no usage dump
        raise UsageError(message)


#: flag -> (RunSpec field, type, help). Defaults come from RunSpec (or --spec).
RUN_FLAGS = {
    "--arch": ("arch", str, "mlp | conv | sngan (the paper's CIFAR-10 CNN; fixed depth 8) | "
                            "resnet (SNGAN ResNet; --depth = residual blocks, default 4)"),
    "--depth": ("depth", int, "number of Linear/Conv2d layers L (mlp default 10, conv 6)"),
    "--width": ("width", int, "mlp hidden width (default 128)"),
    "--input-dim": ("input_dim", int, "mlp input size (default: width; 2 for ring/grid)"),
    "--channels": ("channels", int, "conv: channels per layer (default 16)"),
    "--image-size": ("image_size", int, "conv: input height = width (default 16)"),
    "--stride-every": ("stride_every", int, "conv: stride 2 on every k-th conv (default 3)"),
    "--init": ("init", str, " | ".join(SCHEME_NAMES) + " (default lecun)"),
    "--scale": ("scale", float, f"c for {' / '.join(SCALED_SCHEMES)} (default 1)"),
    "--activation": ("activation", str, "relu | lrelu | tanh | linear (mlp default relu, "
                                        "conv/sngan lrelu)"),
    "--slope": ("slope", float, "leaky-ReLU slope (default 0.1)"),
    "--output": ("output", str, "identity | sigmoid (default identity)"),
    "--sn-mode": ("sn_mode", str, "exact (SVD/Lanczos) | power (authors' estimator)"),
    "--power-iterations": ("power_iterations", int, "power steps per training forward"),
    "--batch": ("batch", int, "inputs per seed (default 64)"),
    "--inputs": ("inputs", str, "gaussian | ring | grid | shapes | npy:PATH | cifar10:PATH "
                                "(default gaussian)"),
    "--seeds": ("seeds", parse_seeds, "N, A-B or a comma list (default 0)"),
    "--dtype": ("dtype", str, "float64 | float32 (default float64)"),
    "--device": ("device", str, "cpu | cuda | auto (default cpu)"),
    "--spectra-inputs": ("spectra_inputs", int, "inputs that get Jacobian spectra (default 16)"),
    "--operator-inputs": ("operator_inputs", int, "of those, inputs that get matrix-free "
                                                  "(conv) spectra (default 1)"),
    "--checkpoint": ("checkpoint", str, "probe D of a training checkpoint (ckpt_<step>.pt)"),
    "--model": ("model", str, "probe your own model: 'pkg.module:factory' (importable from "
                              "the current directory)"),
    "--weights": ("weights", str, "state_dict file for --model (loaded weights_only)"),
    "--input-shape": ("model_input", parse_shape,
                      "input shape of one sample for --model, e.g. 3,32,32 or 64"),
    "--topk": ("topk", int, "k of top-k/bottom-k for large Jacobians (default 3)"),
    "--spectra": ("spectra", str, "auto (full spectra where the estimate fits "
                                  "--budget-seconds, top-k otherwise) | full | topk "
                                  "(default auto)"),
    "--budget-seconds": ("budget_seconds", float, "estimated seconds the Jacobian spectra "
                                                  "may take under --spectra auto (default 10)"),
}


def _typed(fn, flag):
    def conv(text):
        try:
            return fn(text)
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {fn.__name__} value: {text!r}") from None
    conv.__name__ = fn.__name__
    return conv


EXIT_CODES = """exit codes:
  0    every asserted claim holds
  1    a claim is violated (the checks table says which)
  2    usage or input error (one line naming the argument or file)
  3    internal error (one line naming the log file with the traceback;
       $GRADCHECK_LOG_DIR, default <tmp>/gradcheck-logs)
  130  interrupted (SIGINT or SIGTERM)"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gradcheck", description="Check, by measurement, why spectral "
                "normalization stabilizes GAN discriminators (THEORY C1-C11).",
                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("run", help="probe a discriminator and check it against theory",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Probe one discriminator per seed; write spec.json, "
                       "layers.csv, checks.csv, spectra.npz, summary.json and plots.")
    for flag, (field, typ, hlp) in RUN_FLAGS.items():
        r.add_argument(flag, dest=field, type=_typed(typ, flag), default=argparse.SUPPRESS,
                       help=hlp)
    r.add_argument("--bias", action="store_true", default=argparse.SUPPRESS,
                   help="add biases (theory claims then report 'not applicable')")
    r.add_argument("--spec", type=Path, help="rerun from a spec.json (flags given override)")
    r.add_argument("--out", type=Path,
                   help="run directory (default runs/<arch>-<init>-d<L>-s<seeds>,"
                   " a fresh name if it exists)")
    r.add_argument("--force", action="store_true", help="overwrite an existing --out")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument("--json", action="store_true", help="print summary.json to stdout")
    r.add_argument("--quiet", action="store_true", help="no progress or tables")
    r.add_argument("--threads", type=_typed(parse_threads, "--threads"), default=None,
                   help="torch and BLAS threads: N or auto (default: torch's choice; "
                   "OpenMP waits passively unless OMP_WAIT_POLICY is set)")
    sub.add_parser("compare", help="one architecture under several schemes, side by side "
                   "(gradcheck compare --init lecun,sn,bsn --depth 20 [--model ...]; see "
                   "gradcheck compare --help)", add_help=False)
    sub.add_parser("sweep", help="a grid of run specs (lists/ranges of run flags or --grid "
                   "FILE), resumable, local or Dask workers (see gradcheck sweep --help)",
                   add_help=False)
    sub.add_parser("study", help="train GANs over schemes x seeds x scales and report THEORY "
                   "C10 (a)-(f) per scheme with the spread over seeds (see gradcheck study "
                   "--help)", add_help=False)
    sub.add_parser("fid", help="Frechet Inception Distance of a training run's generators, "
                   "with Inception weights you supply as a file (see gradcheck fid --help)",
                   add_help=False)
    pr = sub.add_parser("prove", help="sample random instances of every claim C1-C9, C11",
                        description="Sample random instances per claim (proofs_numeric) within "
                        "a time budget; print and write a table (CSV and Markdown).")
    pr.add_argument("--instances", type=int, default=200, help="at most this many instances "
                    "per claim module (default 200)")
    pr.add_argument("--budget-seconds", type=float, default=90.0,
                    help="total time budget, split evenly over the claim modules (default 90)")
    pr.add_argument("--seed", type=int, default=0, help="seeds the instance sampler")
    pr.add_argument("--only", type=str, default=None, help="comma list of claims, e.g. C1,C8")
    pr.add_argument("--out", type=Path, default=Path("runs/prove"),
                    help="where prove.csv, prove.md, prove_instances.csv go (default runs/prove)")
    pr.add_argument("--quiet", action="store_true", help="print only the table")
    pr.add_argument("--force", action="store_true", help="overwrite an earlier prove --out")
    t = sub.add_parser("train", help="train a GAN (hinge loss, Adam) and checkpoint D and G",
                       description="Train a GAN on built-in or file data; write metrics.csv and "
                       "ckpt_<step>.pt (loadable with weights_only=True) into --out. An "
                       "interrupted run resumes from its last checkpoint when rerun.")
    for flag, (field, typ, hlp) in TRAIN_FLAGS.items():
        t.add_argument(flag, dest=field, type=_typed(typ, flag), default=argparse.SUPPRESS,
                       help=hlp)
    t.add_argument("--scheme", dest="scheme_alias", metavar="SCHEME", type=str,
                   default=argparse.SUPPRESS,
                   help="alias of --init (the name train used before)")
    t.add_argument("--device", type=str, default="cpu",
                   help="cpu | cuda | auto (cuda if available; default cpu)")
    t.add_argument("--out", type=Path, required=True, help="run directory (resumed if it holds "
                   "checkpoints of the same spec)")
    t.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("figures", help="regenerate the paper's figures F1-F8 (gradcheck figures "
                   "[--quick] [--only F3,F5] [--out DIR]; see gradcheck figures --help)",
                   add_help=False)
    k = sub.add_parser("track", help="probe every checkpoint of a training run (THEORY C10)",
                       description="Run the probe engine on every checkpoint in RUN_DIR; write "
                       "RUN_DIR/track/ (layers.csv, checks.csv, c10.json, c10.md, training.png).")
    k.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    k.add_argument("--batch", type=int, default=64, help="inputs per checkpoint (default 64)")
    k.add_argument("--spectra-inputs", type=int, default=0,
                   help="inputs that get Jacobian spectra per checkpoint (default 0)")
    k.add_argument("--quiet", action="store_true")
    k.add_argument("--force", action="store_true", help="overwrite an earlier RUN_DIR/track")
    return p


#: flag -> (TrainSpec field, type, help).
TRAIN_FLAGS = {
    "--data": ("data", str, "ring | grid | shapes | digits | cifar10:PATH | npy:PATH "
                            "(default ring)"),
    "--arch": ("arch", str, "D: mlp | conv | sngan | resnet (--depth = residual blocks) "
                            "(default mlp for 2-D data, conv for images)"),
    "--depth": ("depth", int, "D layers (default 4)"),
    "--width": ("width", int, "D (mlp) and G width (default 128)"),
    "--channels": ("channels", int, "D channels (conv; default 32)"),
    "--activation": ("activation", str, "D activation relu | lrelu | tanh | linear"),
    "--slope": ("slope", float, "leaky-ReLU slope (default 0.1)"),
    "--init": ("scheme", str, "D scaling: " + " | ".join(SCHEME_NAMES) + " (default sn)"),
    "--scale": ("scale", float, f"c for {' / '.join(SCALED_SCHEMES)}"),
    "--sn-mode": ("sn_mode", str, "power (authors', default) | exact"),
    "--power-iterations": ("power_iterations", int, "power steps per D forward (default 1)"),
    "--z-dim": ("z_dim", int, "latent size (default 2 for 2-D data, 64 for images)"),
    "--steps": ("steps", int, "G steps (default 4000 for 2-D data, 2000 for images)"),
    "--batch": ("batch", int, "batch size (default 512 for 2-D data, 64 for images)"),
    "--lr": ("lr", float, "Adam learning rate of D and G (default 1e-3 for 2-D data, 1e-4 "
                          "for images)"),
    "--beta1": ("beta1", float, "Adam beta1 (default 0 for 2-D data, 0.5 for images)"),
    "--beta2": ("beta2", float, "Adam beta2 (default 0.9 for 2-D data, 0.999 for images)"),
    "--lr-decay": ("lr_decay", str, "none | linear: lr * (1 - step / steps) for D and G "
                                    "(default linear for 2-D data, none for images)"),
    "--d-steps": ("d_steps", int, "D steps per G step (default 2 for 2-D data, 1 for images)"),
    "--n-data": ("n_data", int, "size of the generated data set (default 10000; digits: "
                                "all 1797 when larger)"),
    "--log-every": ("log_every", int, "steps between metrics rows (default 50)"),
    "--ckpt-every": ("ckpt_every", int, "steps between checkpoints (default 500)"),
    "--seed": ("seed", int, "seed of everything (default 0)"),
    "--lift": ("lift", float, "2-D data: D sees (x, LIFT), a constant input coordinate in place "
                              "of a first-layer bias (default 1; 0: bare x; images: 0)"),
}


def cmd_train(ns) -> int:
    from .spec import TrainSpec, validate_train
    from .train.checkpoint import checkpoint_files

    fields = {f: getattr(ns, f) for f, _, _ in TRAIN_FLAGS.values() if hasattr(ns, f)}
    if hasattr(ns, "scheme_alias"):
        if fields.get("scheme", ns.scheme_alias) != ns.scheme_alias:
            raise UsageError(f"arguments --init and --scheme: --scheme is an alias of --init; "
                             f"give one (got {fields['scheme']!r} and {ns.scheme_alias!r})")
        fields["scheme"] = ns.scheme_alias
    try:
        spec = validate_train(TrainSpec(**fields))
    except SpecError as e:          # name the flag that was typed
        if hasattr(ns, "scheme_alias") and not hasattr(ns, "scheme"):
            raise SpecError(str(e).replace("--init", "--scheme")) from None
        raise
    from .build import resolve_device

    device = resolve_device(ns.device)
    check_out_dir(ns.out, force=False, kind="train", resume=True)
    from .resources import check_train_resources

    check_train_resources(spec)
    preload()
    if ns.no_resume and checkpoint_files(ns.out):
        raise SpecError(f"argument --out: {ns.out} already holds checkpoints (--no-resume)")
    from .train.checkpoint import CheckpointError
    from .train.data import DataError
    from .train.gan import train

    try:
        t = train(spec, ns.out, resume=True, progress=not ns.quiet, device=device)
    except (CheckpointError, DataError) as e:
        raise SpecError(f"argument --out/--data: {e}") from None
    last = (ns.out / "metrics.csv").read_text().splitlines()
    if getattr(t, "diverged", None):
        d = t.diverged
        print(f"diverged at step {d['step']} (non-finite loss: loss_d {d['loss_d']}, loss_g "
              f"{d['loss_g']}); training stopped, checkpoints and metrics up to the last finite "
              f"step kept, recorded in {ns.out / 'summary.json'}", file=sys.stderr)
        return 0
    if not ns.quiet:
        print(f"trained {spec.steps} steps ({spec.scheme} D on {spec.data}, {device.type}) in "
              f"{t.seconds:.1f} s -> {ns.out}")
        print("last metrics: " + ", ".join(f"{k}={v}" for k, v in zip(
            last[0].split(","), last[-1].split(",")) if not k.startswith(("raw_", "grad_"))))
    return 0


def cmd_track(ns) -> int:
    from .spec import CAPS
    from .track import track

    for flag, val in (("batch", ns.batch), ("spectra_inputs", ns.spectra_inputs)):
        lo = 1 if flag == "batch" else 0
        if not lo <= val <= CAPS[flag]:
            raise SpecError(f"argument --{flag.replace('_', '-')}: must be an integer in "
                            f"[{lo}, {CAPS[flag]}]; got {val}")
    if not ns.run_dir.is_dir():
        raise SpecError(f"argument RUN_DIR: {ns.run_dir} is not a directory")
    from .report.io import dir_kind

    if dir_kind(ns.run_dir) != "train":
        raise SpecError(f"argument RUN_DIR: {ns.run_dir} is not a gradcheck training run")
    check_out_dir(ns.run_dir / "track", ns.force, kind="track")
    preload()
    say = (lambda m: None) if ns.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    report = track(ns.run_dir, ns.batch, ns.spectra_inputs, say, overwrite=ns.force)
    print(report["verdict"] if ns.quiet else (ns.run_dir / "track" / "c10.md").read_text())
    return 1 if report["c1_violated"] else 0       # C1 not applicable (e.g. a ResNet D): 0


def cmd_prove(ns) -> int:
    if ns.instances < 1:
        raise SpecError(f"argument --instances: must be an integer >= 1; got {ns.instances}")
    if not ns.budget_seconds > 0:
        raise SpecError(f"argument --budget-seconds: must be > 0; got {ns.budget_seconds}")
    from proofs_numeric.runner import claim_modules, markdown, prove

    if ns.seed < 0:
        raise SpecError(f"argument --seed: must be a non-negative integer; got {ns.seed}")
    check_out_dir(ns.out, ns.force, kind="prove")
    preload()

    only = [c.strip().upper() for c in ns.only.split(",")] if ns.only else None
    known = {m.__name__.split(".")[-1].split("_")[0].upper() for m in claim_modules()}
    if only and not set(only) <= known:
        raise SpecError(f"argument --only: must be a comma list of {', '.join(sorted(known))}; "
                        f"got {ns.only!r}")
    say = (lambda name, n: None) if ns.quiet else \
        (lambda name, n: print(f"  {name}: instance {n}", file=sys.stderr, flush=True))
    table, _ = prove(ns.instances, ns.budget_seconds, ns.seed, ns.out, only, say)
    print(markdown(table))
    print(f"written: {ns.out}/prove.csv, prove.md, prove_instances.csv")
    return 1 if table.verdict.str.startswith("VIOLATED").any() else 0


def spec_from_args(ns: argparse.Namespace) -> RunSpec:
    """Defaults <- --spec file <- flags given on the command line; then validate."""
    base: dict = {}
    if ns.spec is not None:
        try:
            base = json.loads(Path(ns.spec).read_text())
        except (OSError, ValueError) as e:
            raise SpecError(f"argument --spec: cannot read {ns.spec}: {e}") from None
        if not isinstance(base, dict):
            raise SpecError(f"argument --spec: {ns.spec} does not hold a JSON object")
    for field_name, _, _ in RUN_FLAGS.values():
        if hasattr(ns, field_name):
            base[field_name] = getattr(ns, field_name)
    if getattr(ns, "bias", False):
        base["bias"] = True
    try:
        return RunSpec.from_dict(base)
    except TypeError as e:
        raise SpecError(f"argument --spec: {e}") from None


def _out_dir(ns, spec: RunSpec) -> tuple[Path, bool]:
    from .report.io import unique_dir

    if ns.out is not None:
        check_out_dir(ns.out, ns.force, kind="run")
        return ns.out, bool(ns.force)
    seeds = f"-s{spec.seeds[0]}" if len(spec.seeds) == 1 else f"-s{spec.seeds[0]}-{spec.seeds[-1]}"
    if spec.source == "checkpoint":
        name = f"ckpt-{Path(spec.checkpoint).parent.name}-{Path(spec.checkpoint).stem}"
    elif spec.source == "model":
        name = "model-" + spec.model.replace(":", "-").replace(".", "-")
    else:
        name = f"{spec.arch}-{spec.init}-d{spec.n_layers}"
    return unique_dir(Path("runs") / f"{name}{seeds}"), False


def check_out_dir(out: Path, force: bool, kind: str = "run", resume: bool = False) -> None:
    """Refuse output directories that would lose data or cannot be written (before any work).

    An existing non-empty directory is replaced only with ``--force``, only if its manifest
    (or, for older directories, its files) says it is of the same ``kind``, and never if it
    holds checkpoints. ``resume`` (train) accepts an existing training directory as is.
    """
    import os

    from .report.io import dir_kind, holds_checkpoints

    if str(out).strip() == "":
        raise SpecError("argument --out: empty path")
    target, cwd = Path(os.path.abspath(out)), Path.cwd().resolve()
    if any(p.exists() and not p.is_dir() for p in [target.parent, *target.parent.parents]):
        raise SpecError(f"argument --out: cannot create {out}: a parent is a regular file")
    real = target.resolve()
    if real == cwd or real in cwd.parents or real == Path(real.anchor):
        raise SpecError(f"argument --out: {out} is the current directory or one of its parents; "
                        "give a new directory")
    if str(real).startswith(("/proc/", "/sys/", "/dev/")) or str(real) in ("/proc", "/sys",
                                                                            "/dev"):
        raise SpecError(f"argument --out: {out} is inside a system pseudo-filesystem")
    if target.exists() and not target.is_dir():
        raise SpecError(f"argument --out: {out} exists and is not a directory")
    if target.exists() and any(target.iterdir()):
        found = dir_kind(target)
        if resume and found == kind:
            pass
        elif found != kind:
            what = f"a gradcheck {found} directory" if found else "not a gradcheck directory"
            raise SpecError(f"argument --out: {out} exists and is {what}; refusing to write a "
                            f"{kind} there even with --force")
        elif holds_checkpoints(target):
            raise SpecError(f"argument --out: {out} holds checkpoints; refusing to replace it "
                            "even with --force")
        elif not force:
            raise SpecError(f"argument --out: {out} exists; pass --force to overwrite it")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(f"argument --out: cannot create {out} (no write access to {parent})")
    _check_free_space(parent, out)


def _check_free_space(parent: Path, out: Path, need_bytes: int = 64 << 20) -> None:
    import shutil as _sh

    try:
        free = _sh.disk_usage(parent).free
    except OSError:
        return
    if free < need_bytes:
        raise SpecError(f"argument --out: only {free / 2**20:.1f} MiB free on the disk of {out}; "
                        f"at least {need_bytes / 2**20:.0f} MiB are needed")


def cmd_run(ns) -> int:
    spec = spec_from_args(ns)                 # validated before torch is imported
    out, overwrite = _out_dir(ns, spec)
    from .resources import check_resources

    check_resources(spec)
    preload()
    if ns.threads is not None:
        from ._threads import set_threads

        set_threads(ns.threads)
    from .pipeline import run
    from .probe import ProbeError
    from .report.run_dir import write_run

    t0 = time.perf_counter()
    log = (lambda m: None) if ns.quiet or ns.json else \
        (lambda m: print(f"[{time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr, flush=True))
    try:
        result = run(spec, progress=log)
    except ProbeError as e:
        raise SpecError(str(e)) from None
    summary = write_run(result, out, overwrite=overwrite, plots=not ns.no_plots)
    if ns.json:
        from .report.io import strict_json

        print(json.dumps(strict_json(summary), indent=2, sort_keys=True, allow_nan=False))
    elif not ns.quiet:
        from .report.tables import checks_table, layer_table

        for seed in spec.seeds:
            print(f"\n{result.subject}, seed {seed} "
                  f"(rms over {spec.batch} inputs; ratio = measured/predicted)")
            print(layer_table(result.layers, seed))
        for note in result.notes:
            print(f"note: {note}")
        print("\nchecks (THEORY claim IDs):")
        print(checks_table(summary["claims"]))
        v = summary["vanishing_rate"]
        for seed, e in v.items():
            print(f"seed {seed}: ||dD/dh|| per-layer factor, top to bottom: measured "
                  f"{e['measured']:.4f}, C7 predicted {e['predicted']:.4f}")
        for seed, e in summary["gradient_control"].items():
            print(f"seed {seed}: C9b gradient control: spread max/min |dD/dW| "
                  f"{e['spread']:.3g}, sum |log chi| {e['sum_abs_log_chi']:.3g}")
        print(f"\nverdict: {summary['verdict']}  ->  {out}")
    return 1 if summary["violated"] else 0


#: errno values of a write that fails because of the environment the user chose (exit 2)
_USER_OS_ERRORS = {"ENOSPC", "EACCES", "EROFS", "EDQUOT", "ENAMETOOLONG", "ENOTDIR", "EISDIR",
                   "EPERM", "EEXIST", "ENOENT"}


def _ignore_signals() -> None:
    import signal

    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(s, signal.SIG_IGN)
        except ValueError:                        # not the main thread (tests in threads)
            pass


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["figures"]:                   # its flags live with the figure scripts
        preload()
        from figures.make_all import main as figures_main

        return figures_main(argv[1:])
    if argv[:1] in (["compare"], ["sweep"]):      # the run flags, each taking a list
        from .sweep.cli import main as sweep_main

        return sweep_main(argv, RUN_FLAGS, check_out_dir)
    if argv[:1] == ["study"]:                     # the train flags, each taking a list
        from .study.cli import main as study_main

        return study_main(argv[1:], TRAIN_FLAGS, check_out_dir)
    if argv[:1] == ["fid"]:
        from .train.fid import main as fid_main

        return fid_main(argv[1:], check_out_dir)
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        raise UsageError("give a subcommand: run, compare, sweep, prove, train, track, "
                         "study, fid or figures (gradcheck --help describes them)")
    return {"run": cmd_run, "prove": cmd_prove, "train": cmd_train,
            "track": cmd_track}[ns.command](ns)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gradcheck`` console script and ``python -m gradcheck``.

    Exit codes: 0 asserted claims hold; 1 a claim is violated; 2 usage or input error (one line
    on stderr); 3 internal error (one line naming the log file with the traceback); 130
    interrupted (SIGINT, SIGTERM).
    """
    import errno
    import warnings

    from ._errors import internal_error

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings():
            # numpy's overflow / invalid-value warnings are measurements here (rows marked
            # 'overflow'); torch's pickle and deprecation warnings are not the user's business
            for category in (RuntimeWarning, UserWarning, DeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            return _dispatch(argv)
    except (UsageError, SpecError) as e:
        msg = " ".join(str(e).split("\n")).strip()
        print(f"gradcheck: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:                       # e.g. `gradcheck track RUN | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        _ignore_signals()                         # a second Ctrl-C must not kill the cleanup
        print("gradcheck: interrupted", file=sys.stderr)
        return 130
    except OSError as e:                          # full disk, read-only or forbidden path
        if errno.errorcode.get(e.errno or -1) in _USER_OS_ERRORS:
            where = f" {e.filename}" if e.filename else ""
            print(f"gradcheck: error: cannot write{where}: {e.strerror or e}", file=sys.stderr)
            return 2
        return internal_error(e, argv)
    except Exception as e:  # noqa: BLE001 - a crash is exit 3 with a log, never 1
        return internal_error(e, argv)


if __name__ == "__main__":
    sys.exit(main())
