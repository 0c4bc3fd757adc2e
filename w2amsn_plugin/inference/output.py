"""Writing ``w2amsn infer``'s results safely: output paths checked before any work, files written
under hidden temporary names and renamed into place, leftovers of killed runs removed.

- Before the work: every file of the output (both files of a .hdr/.img pair, and the JSON
  sidecar) is compared with every file of the input, by resolved path (symlinks, ``..``) and by
  :func:`os.path.samefile` (hard links); an output that is a folder, or whose folder is a file or
  not writable, is refused in one line.
- The writes: each file goes to ``.<name>.w2amsn-partial-<pid><suffix>`` in the output's folder
  (hidden, and named so it is obviously temporary), then :func:`os.replace` moves it into place:
  the sidecar first, the image last, so a visible image is always complete. On an error or
  Ctrl-C the temporary files are removed. After a ``kill -9`` they stay; the next run into the
  same output removes those whose process is gone.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .loading import InferenceError
from .volumes import image_files, strip_suffix

__all__ = ["PARTIAL_MARK", "OutputFiles", "plan_outputs", "sidecar_path", "partial_path",
           "remove_stale_partials", "write_outputs"]

PARTIAL_MARK = ".w2amsn-partial-"


def sidecar_path(out_path: Path) -> Path:
    """``sr.nii.gz`` -> ``sr.json`` (the image suffix replaced, as BIDS names sidecars)."""
    stem, _ = strip_suffix(out_path.name)
    return out_path.with_name(stem + ".json")


def _split(final: Path) -> tuple[str, str]:
    stem, suffix = strip_suffix(final.name)
    return (stem, suffix) if suffix is not None else (final.stem, final.suffix)


def partial_path(final: Path, pid: int | None = None) -> Path:
    """The hidden temporary name ``final`` is written under by process ``pid``."""
    stem, suffix = _split(final)
    return final.with_name(f".{stem}{PARTIAL_MARK}{os.getpid() if pid is None else pid}{suffix}")


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
        prefix = f".{_split(final)[0]}{PARTIAL_MARK}"
        if not final.parent.is_dir():
            continue
        for leftover in final.parent.glob(glob.escape(prefix) + "*"):
            pid_text = leftover.name[len(prefix):].split(".", 1)[0]
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


def _check_folder(path: Path) -> None:
    """``path``'s folder, or its nearest existing ancestor, is a writable folder."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InferenceError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InferenceError(f"{path}: folder {folder} is not writable")


def plan_outputs(out_path: Path, klass: type, input_files: Iterable[Path]) -> OutputFiles:
    """The files of the result, checked before any work (module docstring)."""
    files = OutputFiles(out_path, tuple(image_files(klass, out_path)), sidecar_path(out_path))
    inputs = list(input_files)
    for path in files.all:
        for src in inputs:
            if _same_file(path, src):
                what = "its JSON sidecar" if path == files.sidecar else "it"
                raise InferenceError(f"{out_path}: {what} would overwrite the input {src}")
        if path.is_dir():
            raise InferenceError(f"{path}: is a folder; name an output file")
        _check_folder(path)
    return files


def write_outputs(files: OutputFiles, save_image: Callable[[Path], None], sidecar_text: str) -> None:
    """Write the sidecar and the image (``save_image(temporary_name)``) under temporary names,
    then rename them into place, sidecar first (module docstring)."""
    remove_stale_partials(files.all)
    files.image.parent.mkdir(parents=True, exist_ok=True)
    temp_image = partial_path(files.image)
    temps = {final: partial_path(final) for final in files.all}
    try:
        temps[files.sidecar].write_text(sidecar_text, encoding="utf-8")
        save_image(temp_image)
        os.replace(temps[files.sidecar], files.sidecar)
        for final in files.image_files:
            os.replace(temps[final], final)
    except OSError as err:
        raise InferenceError(f"{files.image}: cannot write ({err.strerror or err})") from err
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
