"""Writing a super-resolved result safely: output paths checked before any work, files written
under hidden temporary names and published together under a lock, leftovers of killed runs removed.

- Before the work: every file of the output (both files of a .hdr/.img pair, and the JSON
  sidecar) is compared with every file of the input, by resolved path (symlinks, ``..``) and by
  :func:`os.path.samefile` (hard links); an output that is a folder, whose folder is a file or
  cannot be written in (tested by creating a file there:
  :func:`w2amsn_plugin.results.output_paths.output_folder_problem`), whose name is longer than the
  file system takes, or that exists already (unless ``overwrite``) is refused in one line.
- The writes: each file goes to a hidden temporary name in the output's folder
  (:func:`w2amsn_plugin.results.files.temp_path`: ``.<name>.w2amsn-partial-<pid><suffix>``, cut to
  fit the name limit), the image first, then the sidecar. Then, holding an exclusive lock on the
  output's folder (:func:`fcntl.flock`, which the kernel releases when a process dies), the
  existing-output rule is checked again and the files are renamed into place, sidecar first and
  image last: two runs writing one output at once publish one after the other, so the image, its
  sidecar and both files of a pair always come from one run. On an error or Ctrl-C the temporary
  files are removed; after a ``kill -9`` they stay, and the next run into the same output removes
  those whose process is gone.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..results.files import TEMP_MARK, name_max, temp_path
from ..results.output_paths import output_folder_problem
from .errors import InferenceError
from .volumes import image_files, strip_suffix

__all__ = ["OutputFiles", "plan_outputs", "sidecar_path", "partial_path", "remove_stale_partials",
           "publish_lock", "write_outputs"]


#: the largest process id Linux gives (``/proc/sys/kernel/pid_max`` is at most 2**22)
_PID_MAX = 1 << 22


def sidecar_path(out_path: Path) -> Path:
    """``sr.nii.gz`` -> ``sr.json`` (the image suffix replaced, as BIDS names sidecars)."""
    stem, _ = strip_suffix(out_path.name)
    return out_path.with_name(stem + ".json")


def _suffix(final: Path) -> str:
    _, suffix = strip_suffix(final.name)
    return final.name[-len(suffix):] if suffix is not None else final.suffix


def partial_path(final: Path, pid: int | None = None) -> Path:
    """The hidden temporary name ``final`` is written under by process ``pid``."""
    return temp_path(final, _suffix(final), pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(finals: Iterable[Path]) -> list[Path]:
    """Remove temporary files of ``finals`` left by processes that no longer run; return them."""
    removed = []
    for final in finals:
        if not final.parent.is_dir():
            continue
        # the stem as cut for the longest pid is a prefix of the stem of every temporary name
        stem = partial_path(final, _PID_MAX).name.split(TEMP_MARK)[0]
        for leftover in final.parent.glob(glob.escape(stem) + "*" + glob.escape(TEMP_MARK) + "*"):
            pid_text = leftover.name.rsplit(TEMP_MARK, 1)[1].split(".", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


@dataclass(frozen=True)
class OutputFiles:
    """Where one result goes: the image as named, every file it consists of, the sidecar."""

    image: Path
    image_files: tuple[Path, ...]
    sidecar: Path

    @property
    def all(self) -> tuple[Path, ...]:
        return (*self.image_files, self.sidecar)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _check_name(path: Path) -> None:
    """The name fits the file system (with its temporary name: :func:`partial_path` cuts the
    stem to fit, so the name itself is the limit) and the whole path fits ``PATH_MAX``."""
    limit = name_max(path.parent)
    size = len(os.fsencode(path.name))
    if size > limit:
        raise InferenceError(f"{path.name[:40]}...: output file name is {size} bytes, longer than "
                             f"the {limit} bytes a file name may have here; choose a shorter name")
    if len(os.fsencode(str(path.resolve()))) >= os.pathconf("/", "PC_PATH_MAX"):
        raise InferenceError(f"{str(path)[:40]}...: output path is longer than this system's "
                             "path limit; choose a shorter one")


def plan_outputs(out_path: Path, klass: type, input_files: Iterable[Path],
                 overwrite: bool = False) -> OutputFiles:
    """The files of the result, checked before any work (module docstring)."""
    _check_name(out_path)
    files = OutputFiles(out_path, tuple(image_files(klass, out_path)), sidecar_path(out_path))
    inputs = list(input_files)
    for path in files.all:
        _check_name(path)
        for src in inputs:
            if _same_file(path, src):
                what = "its JSON sidecar" if path == files.sidecar else "it"
                raise InferenceError(f"{out_path}: {what} would overwrite the input {src}")
        if path.is_dir():
            raise InferenceError(f"{path}: is a folder; name an output file")
        problem = output_folder_problem(path.parent)
        if problem:
            raise InferenceError(f"{path}: {problem}")
    _check_existing(files, overwrite, "")
    return files


def _check_existing(files: OutputFiles, overwrite: bool, when: str) -> None:
    existing = [p for p in files.all if os.path.lexists(p)]
    if existing and not overwrite:
        raise InferenceError(f"{existing[0]}: exists{when}; pass --force (overwrite=True) to "
                             "replace it")


@contextlib.contextmanager
def publish_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive :func:`fcntl.flock` on ``folder`` (no lock file is left behind; the
    kernel releases it when the process ends, however it ends)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_outputs(files: OutputFiles, save_image: Callable[[Path], None],
                  sidecar_text: Callable[[], str], overwrite: bool = False) -> None:
    """Write the image (``save_image(temporary_name)``) and then the sidecar (``sidecar_text()``,
    called once the image is written) under temporary names, and publish them together under
    :func:`publish_lock` (module docstring)."""
    remove_stale_partials(files.all)
    try:
        files.image.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InferenceError(f"{files.image}: cannot create its folder ({err.strerror or err})") from err
    temps = {final: partial_path(final) for final in files.all}
    try:
        save_image(temps[files.image])
        temps[files.sidecar].write_text(sidecar_text(), encoding="utf-8")
        for temp in temps.values():
            with open(temp, "rb+") as f:
                os.fsync(f.fileno())
        with publish_lock(files.image.parent):
            _check_existing(files, overwrite, " (another run wrote it while this one ran)")
            os.replace(temps[files.sidecar], files.sidecar)
            for final in sorted(files.image_files, key=lambda p: p == files.image):  # named last
                os.replace(temps[final], final)
    except OSError as err:
        raise InferenceError(f"{files.image}: cannot write ({err.strerror or err})") from err
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
