"""Console entry points.

``basicsr train|test -opt X.yml [BasicSR's own flags]``: import the plugin (so its registrations
exist), check the options file and every file the run will read (checkpoints, the state to resume
from, the LMDBs: :func:`w2amsn_plugin.option_check.check_run_inputs`; one line and exit 2 before
BasicSR creates or archives any folder), then call BasicSR's ``train_pipeline`` /
``test_pipeline`` with the current working directory as root, so ``experiments/``, ``results/``
and ``tb_logger/`` land where the user runs the command (``python -m basicsr.train`` would put
them in site-packages). One run per experiment: a second ``basicsr train`` of the same name is
refused while the first runs (a lock beside its folder). Ctrl-C is one line and exit 130; SIGTERM
saves the last finished iteration's state and exits 143; a NaN loss, a checkpoint that cannot be
written or a damaged database slice stop the run with one line and exit 2; a run folder BasicSR
archived is renamed back when the run stops before writing any result (docs/reliability.md).
``python -m w2amsn_plugin.cli train ...`` is the same command, for ``torchrun``.

``w2amsn <verb>``: the plugin's own tools; verb ``a-b`` lives in :mod:`w2amsn_plugin.commands.a_b`,
which exposes ``configure_parser(parser)`` and ``run(args) -> int`` (0 on success, 2 with one
``error:`` line on stderr for a user-caused problem).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import Iterator, Sequence

__all__ = ["basicsr_main", "w2amsn_main"]

_W2AMSN_VERBS = {
    "prepare": "build slice LMDBs from any folder of NIfTI/MGH volumes or a BIDS dataset",
    "prepare-ixi": "build the IXI slice LMDBs of one modality from IXI's NIfTI volumes",
    "demo": "train and test W²AMSN end to end on the MR sample shipped in the package",
    "make-options": "write every options YAML of the paper's experiments (or --check them)",
    "infer": "super-resolve a whole MR volume with a trained model",
    "stats": "parameters and multiply-adds of W²AMSN and the baselines (Table II)",
    "calibrate": "bicubic scores of IXI under each data-protocol reading vs Table III's Bicubic column",
    "bench": "measure this machine's limits and the plugin's speed against them",
    "baselines": "train and test W²AMSN and baselines with one budget; comparison table and plot",
    "self-sr": "super-resolve one thick-slice scan along its coarse axis, trained on the scan itself",
}


def _basicsr_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basicsr", description="BasicSR's trainer and tester with the W²AMSN plugin registered.")
    verbs = parser.add_subparsers(dest="verb", metavar="{train,test}", required=True)
    for verb, text in (("train", "train a model from an options YAML (BasicSR train_pipeline)"),
                       ("test", "test a model from an options YAML (BasicSR test_pipeline)")):
        sub = verbs.add_parser(verb, help=text, description=text)
        sub.add_argument("-opt", required=True, help="path to the options YAML file")
        sub.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                         help="job launcher (pytorch = torchrun)")
        sub.add_argument("--auto_resume", action="store_true",
                         help="resume from the latest state in experiments/<name>/training_states")
        sub.add_argument("--debug", action="store_true", help="BasicSR's debug mode")
        sub.add_argument("--local_rank", "--local-rank", type=int, default=0,
                         help="set by torch.distributed.launch (either spelling)")
        sub.add_argument("--force_yml", nargs="+", default=None,
                         help="override options, e.g. num_gpu=0 train:total_iter=100")
    return parser


def _basicsr_argv(args: argparse.Namespace) -> list[str]:
    """The argument list BasicSR's own ``parse_options`` expects (it reads ``sys.argv``)."""
    argv = [f"basicsr {args.verb}", "-opt", args.opt, "--launcher", args.launcher,
            "--local_rank", str(args.local_rank)]
    if args.auto_resume:
        argv.append("--auto_resume")
    if args.debug:
        argv.append("--debug")
    if args.force_yml:
        argv += ["--force_yml", *args.force_yml]
    return argv


def basicsr_main(argv: Sequence[str] | None = None) -> int:
    """``basicsr train|test``: check the options, hold the experiment's lock, then run BasicSR's
    pipeline from the cwd; a stop (SIGTERM, non-finite loss, failed save, damaged slice) is one
    line."""
    args = _basicsr_parser().parse_args(argv)
    prog = f"basicsr {args.verb}"
    from .data.lock import FolderLocked
    from .option_check import OptionsError

    try:
        name, warnings = _check_inputs(args)
        for warning in warnings if _rank(args) == 0 else []:
            print(f"{prog}: warning: {args.opt}: {warning}", file=sys.stderr)
        with _experiment_lock(args, name):
            return _run_pipeline(args, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before the run started", file=sys.stderr)
        return 130
    except (OptionsError, FolderLocked) as err:  # a user's mistake, one line
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


def _run_pipeline(args: argparse.Namespace, prog: str) -> int:
    import torch.distributed as dist
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from . import compat
    from .data.png16 import PngDecodeError
    from .run_guard import RunStopped, Terminated, sigterm_saves_and_stops

    pipeline = train_pipeline if args.verb == "train" else test_pipeline
    saved_argv, sys.argv = sys.argv, _basicsr_argv(args)
    try:
        with sigterm_saves_and_stops():
            pipeline(os.getcwd())
    except BaseException as err:
        for folder in compat.restore_archived():  # a failure before any result was written
            print(f"{prog}: {folder} was archived by this run; restored", file=sys.stderr)
        where = " (resume with --auto_resume)" if args.verb == "train" else ""
        if isinstance(err, KeyboardInterrupt):
            print(f"{prog}: interrupted (Ctrl-C); results written so far are kept{where}",
                  file=sys.stderr)
            return 130
        if isinstance(err, RunStopped):
            kind = "" if isinstance(err, Terminated) else "error: "
            print(f"{prog}: {kind}{err}", file=sys.stderr)
            return err.exit_code
        if isinstance(err, PngDecodeError):  # also when re-raised from a DataLoader worker
            line = [ln for ln in str(err).splitlines() if ln.strip()][-1]
            print(f"{prog}: error: {line.split('PngDecodeError: ')[-1]}; rebuild that database"
                  f"{where}", file=sys.stderr)
            return 2
        raise
    finally:
        sys.argv = saved_argv
        # BasicSR never tears its process group down; without this, gloo ranks can abort at exit
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _rank(args: argparse.Namespace) -> int:
    """This process's rank: torchrun's RANK, Slurm's SLURM_PROCID; 0 without a launcher."""
    if args.launcher == "none":
        return 0
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


@contextlib.contextmanager
def _experiment_lock(args: argparse.Namespace, name: str) -> Iterator[None]:
    """One run per experiment: rank 0 holds ``experiments/.<name>.lock`` (``results/`` for test;
    an flock, which a dead process no longer holds) for the whole run; a second run of the name
    refuses in one line naming the pid that holds it."""
    if _rank(args) != 0:
        yield
        return
    from .data.lock import FolderLocked, folder_lock

    kind = "experiments" if args.verb == "train" else "results"
    try:
        with folder_lock(kind, f"basicsr {args.verb} {name}", lock_name=f".{name}.lock"):
            yield
    except FolderLocked as err:
        raise FolderLocked(f"{kind}/{name}: {err}") from None


def _check_inputs(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Everything a ``basicsr train|test`` run reads or writes, checked before BasicSR creates or
    archives a folder (:mod:`w2amsn_plugin.option_check`); raises ``OptionsError`` (one line).
    Returns the experiment's name as BasicSR will use it, and the warnings (unknown option keys,
    an lr that resuming will not apply). A wall-time scheduler with a distributed launcher is
    refused (each rank would stop on its own clock)."""
    from .option_check import OptionsError, check_options_file, check_run_inputs
    from .time_budget import NOT_DISTRIBUTED, is_timed

    is_train = args.verb == "train"
    opt = check_options_file(args.opt, force_yml=args.force_yml, is_train=is_train)
    if is_train and args.launcher != "none" and is_timed(opt):
        raise OptionsError(f"{args.opt}: {NOT_DISTRIBUTED}")
    name = opt["name"]
    if args.debug and not name.startswith("debug"):  # basicsr/utils/options.py:134-135
        name = "debug_" + name
    return name, check_run_inputs(opt, args.opt, is_train=is_train, auto_resume=args.auto_resume,
                                  debug=args.debug, root=os.getcwd())


def w2amsn_main(argv: Sequence[str] | None = None) -> int:
    """``w2amsn <verb>``: the plugin's own tools (verbs are imported only when used)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="w2amsn", description="W²AMSN plugin tools.")
    verbs = parser.add_subparsers(dest="verb", metavar="{" + ",".join(_W2AMSN_VERBS) + "}",
                                  required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for verb, text in _W2AMSN_VERBS.items():
        sub = verbs.add_parser(verb, help=text, description=text)
        if verb == chosen:
            _command(verb).configure_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(_command(args.verb).run(args))
    except KeyboardInterrupt:  # Ctrl-C in any verb: one line, the shell's 128 + SIGINT
        print(f"w2amsn {args.verb}: interrupted", file=sys.stderr)
        return 130


def _command(verb: str):
    """The module of ``w2amsn <verb>`` (imported only when used: torch is slow to import)."""
    return importlib.import_module(f"w2amsn_plugin.commands.{verb.replace('-', '_')}")


def _module_main() -> int:
    """``python -m w2amsn_plugin.cli train|test ...`` (torchrun) or ``... w2amsn-verb ...``."""
    first = sys.argv[1] if len(sys.argv) > 1 else ""
    if first in _W2AMSN_VERBS:
        return w2amsn_main()
    return basicsr_main()


if __name__ == "__main__":
    sys.exit(_module_main())
