"""Reading downloaded files without trusting them: a restricted unpickler and an archive extractor that
writes nothing outside its target folder.

``restricted_load`` unpickles plain data only (dicts, sets, lists, tuples, strings, numbers, None, booleans
and ``collections.defaultdict``, the type of MetaShift's meta-data): every other global a pickle names is
refused, so a pickle cannot run code. ``safe_extract`` checks every member of a tar (any compression) or
zip archive before writing anything and refuses the whole archive if one member has an absolute path, leaves
the target through ``..`` or links (the archive's own and those already on disk), is a link pointing outside
the target, or is a device file or FIFO. Run as ``python -m shiftbench.safe_io ARCHIVE TARGET_DIR``.
"""

from __future__ import annotations

import os
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from shiftbench.errors import ShiftbenchError

#: the only globals a pickle may name: container constructors that run no code of the pickle's choosing
#: (``__builtin__`` is how protocols 0-2 spell ``builtins``)
ALLOWED_GLOBALS = frozenset({("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"),
                             ("__builtin__", "frozenset"), ("collections", "defaultdict")})
#: links followed while resolving one member path before it counts as a loop
_MAX_LINK_HOPS = 40
#: where an archive's symlinks are made on disk -> their members
_Links = dict[str, tarfile.TarInfo]


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: Any, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ShiftbenchError(f"refusing to unpickle {self.path}: it names the global {module}.{name}; only "
                                  f"dicts, sets, lists, tuples, strings, numbers, None and booleans are loaded")
        return super().find_class(module, name)


def restricted_load(file: str | os.PathLike[str]) -> object:
    """Unpickle the file at ``file``, allowing plain data only; a pickle naming any other global (a class, a
    function such as ``os.system``) raises a :class:`ShiftbenchError` naming the file and the global, before
    anything of it runs. Other malformed pickles raise what :mod:`pickle` raises."""
    path = Path(file)
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, path).load()


def safe_extract(archive_path: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> None:
    """Extract the tar (plain, gz, bz2, xz) or zip archive ``archive_path`` into ``target_dir`` (created if
    needed). Every member is checked first: an absolute path, a path leaving the target (through ``..`` or
    links), a link pointing outside the target, or a device file / FIFO raises a :class:`ShiftbenchError`
    naming the archive and the member, and nothing is written."""
    archive, target = Path(archive_path), Path(os.path.realpath(target_dir))
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            _check_tar(archive, target, members)
            target.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and the 3.8-3.11 security releases
                tar.extractall(target, members=members, filter="data")
            else:
                tar.extractall(target, members=members)
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                _check_path(archive, target, name, {}, follow_last=True)
            target.mkdir(parents=True, exist_ok=True)
            z.extractall(target)
    else:
        raise ShiftbenchError(f"cannot extract {archive}: not a tar or zip archive")


def _check_tar(archive: Path, target: Path, members: list[tarfile.TarInfo]) -> None:
    """Refuse the archive if a member, taken in extraction order, would write outside ``target``, or if one of
    its links points outside ``target`` (when it is made, or once the later members are in place)."""
    links: _Links = {}
    for member in members:
        if member.isdev():
            raise _refusal(archive, member.name, "is a device file or FIFO")
        # a symlink member replaces whatever is at its place; files (and hard links, whose fallback is a copy)
        # are written through a link already there
        place = _check_path(archive, target, member.name, links, follow_last=not member.issym())
        if member.issym() or member.islnk():
            # a symlink's text is relative to its folder, a hard link's to the archive's root
            _check_link(archive, target, member, os.path.dirname(place) if member.issym() else str(target), links)
        if member.issym():
            links[place] = member
    for place, member in links.items():  # a later symlink can move where an earlier one points
        _check_link(archive, target, member, os.path.dirname(place), links)


def _check_link(archive: Path, target: Path, member: tarfile.TarInfo, start: str, links: _Links) -> None:
    """Refuse a link member whose text is absolute or, read from the folder ``start``, leads outside ``target``."""
    if os.path.isabs(member.linkname) or _resolve(target, start, member.linkname, links, True) is None:
        kind = "symbolic" if member.issym() else "hard"
        raise _refusal(archive, member.name, f"is a {kind} link to {member.linkname!r}, outside {target}")


def _check_path(archive: Path, target: Path, name: str, links: _Links, follow_last: bool) -> str:
    """Where member ``name`` lands under ``target``, or a refusal if its path is absolute or leads outside it."""
    if os.path.isabs(name):
        raise _refusal(archive, name, "has an absolute path")
    place = _resolve(target, str(target), name, links, follow_last)
    if place is None:
        raise _refusal(archive, name, f"leads outside {target}")
    return place


def _resolve(target: Path, start: str, relative: str, links: _Links, follow_last: bool) -> str | None:
    """The real path ``relative`` (to the folder ``start``) reaches once the archive's symlinks (``links``)
    and those already on disk are followed, as the operating system would; None if it is outside ``target``
    or the links loop."""
    current, pending, hops = start, relative.split("/"), 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        step = os.path.join(current, part)
        link = links[step].linkname if step in links else os.readlink(step) if os.path.islink(step) else None
        if link is None or (not pending and not follow_last):
            current = step
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            return None
        if os.path.isabs(link):
            current = os.sep
        pending = link.split("/") + pending
    return current if os.path.commonpath([str(target), current]) == str(target) else None


def _refusal(archive: Path, member: str, reason: str) -> ShiftbenchError:
    return ShiftbenchError(f"refusing to extract {archive}: member {member!r} {reason}; nothing was extracted")


def main(argv: list[str] | None = None) -> int:
    """``python -m shiftbench.safe_io ARCHIVE TARGET_DIR``: :func:`safe_extract`, errors as one line, exit 2."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m shiftbench.safe_io ARCHIVE TARGET_DIR", file=sys.stderr)
        return 2
    try:
        safe_extract(args[0], args[1])
    except (ShiftbenchError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        print(f"shiftbench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
