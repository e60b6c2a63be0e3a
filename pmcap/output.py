"""Writing a run folder safely: ``--out`` never destroys or hides a user's files.

Rules (:func:`check_out`)
    ``out`` may replace only a folder pmcap wrote (its ``manifest.json`` carries the pmcap
    marker, or ``out`` is pmcap's own link, see below) of the same kind (the manifest's
    ``command``: run, capacity, sweep, sensitivity) or an empty folder. A file is never
    replaced; nor a folder that is, holds or lies inside an input, nor a symbolic link pmcap
    did not make. ``force`` allows replacing any other folder, except (:data:`NEVER`) the
    filesystem root, the home folder or a folder above it, the current folder or a folder
    above it, and a folder holding a version-control repository. A pmcap output to which the
    user has added files (not listed in its manifest) needs ``force`` too.

Swap (:func:`atomic_folder`)
    The output is built in a hidden sibling ``.NAME.pmcap-PID-TOKEN``; ``out`` is a relative
    symbolic link to it. A new run builds its own sibling, makes a link to it beside ``out`` and
    renames that link over ``out``: one ``rename(2)``, atomic, so at every instant ``out`` is the
    complete old output or the complete new one. Readers ``cd out`` and read files as usual. A
    real folder at ``out`` (an older pmcap's output, an empty folder, ``force``) is swapped with
    the link in one ``renameat2(RENAME_EXCHANGE)`` on Linux; where that call is missing (other
    systems, some network filesystems) it is two renames, and a run killed between them leaves
    the old folder beside ``out``, which the next run puts back. On a filesystem without
    symbolic links the folder itself is swapped in the same way.

Leftovers
    Siblings named ``.NAME.pmcap-PID-TOKEN[.link|.old]`` whose process is gone and that ``out``
    does not point to are removed at the start of the next run into the same ``out``, as are
    the ``.NAME.XXXXXXXX.tmp`` and ``.NAME.old-PID`` folders of older pmcap versions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from capacity.errors import InputError

PACKAGES = ("pmcap", "numpy", "pandas", "xarray", "scipy", "pydantic", "pymc", "arviz")
MANIFEST = "manifest.json"
MARKER = "pmcap_output"
# Any folder pmcap keeps beside an ``out`` (never a valid ``--out`` itself).
_ANY_VERSION = re.compile(r"^\..+\.pmcap-\d+-[0-9a-f]{8}(\.link|\.old)?$")
# what an output folder is never, with or without --force
NEVER = (
    "--force never replaces the filesystem root, the home folder, the current folder or a "
    "folder above them, nor a folder holding a version-control repository (.git, .hg, .svn)"
)
VCS = (".git", ".hg", ".svn")


class WriteError(Exception):
    """Writing an output failed for a reason outside the inputs (a full disk); the message
    names the folder and what is needed, and the earlier output is as it was."""


# --- checks ---------------------------------------------------------------------------------


def check_out(
    out: Path, *, inputs: Sequence[Path] = (), force: bool = False, command: str | None = None
) -> None:
    """Raise InputError if writing to ``out`` is not allowed (call before long work).

    ``inputs`` are the files (or folders) the run reads; ``out`` may not be one of them, hold
    one or lie inside one, whatever ``force`` says. ``command`` (run, capacity, ...): an
    earlier output of another command is replaced only with ``force``.
    """
    path = _absolute(out)
    shown = f"--out {out}"
    if path.parent == path:
        raise InputError(f"{shown}: is the root folder; choose a folder of its own ({NEVER})")
    if path.is_symlink() and not _own_link(path, path.name):
        raise InputError(
            f"{shown}: is a symbolic link to {os.readlink(path)} that pmcap did not make; "
            "give the folder itself"
        )
    real = path.resolve()
    _check_protected(real, shown)
    for item in inputs:
        source = Path(item).resolve()
        if source == real:
            raise InputError(f"{shown}: is the input {item}; choose another output folder")
        if real in source.parents:
            raise InputError(
                f"{shown}: holds the input {item}, so replacing it would delete that input; "
                "choose another output folder"
            )
        if source in real.parents:
            raise InputError(f"{shown}: lies inside the input {item}; choose another folder")
    with contextlib.suppress(OSError):  # no current folder: nothing to protect
        cwd = Path.cwd().resolve()
        if real == cwd or real in cwd.parents:
            raise InputError(
                f"{shown}: holds the current folder; choose another output folder ({NEVER})"
            )
    if _ANY_VERSION.match(path.name):
        raise InputError(f"{shown}: is a folder pmcap keeps beside an output; give that output")

    if path.is_symlink():  # pmcap's own link (checked above)
        folder = path.parent / os.readlink(path)
        if folder.is_dir() and not force:
            manifest = read_manifest(folder)
            _check_kind(manifest, command, shown)
            _check_own_files(folder, shown, manifest)
    elif os.path.lexists(path) and not path.is_dir():
        raise InputError(
            f"{shown}: is a file, not a folder; pmcap never replaces a file, "
            "give a folder name for the output"
        )
    elif path.is_dir() and force:
        _check_no_repository(path, shown)
    elif path.is_dir():
        names = sorted(os.listdir(path))
        if names:
            manifest = read_manifest(path)
            if manifest is None:
                raise InputError(
                    f"{shown}: the folder holds files pmcap did not write ({_few(names)}); "
                    "choose a new folder, or pass --force to replace it"
                )
            # a sweep's own folder (not one of its scenarios'; the sweep checks it with force)
            if manifest.get("command") in ("sweep", "sensitivity") and "sweep_case" not in manifest:
                raise InputError(
                    f"{shown}: holds the outputs of pmcap {manifest['command']} (its scenarios' "
                    "run folders and comparison); choose a new folder, or pass --force to "
                    "replace it all"
                )
            _check_kind(manifest, command, shown)
            _check_own_files(path, shown, manifest)

    existing = path.parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{shown}: cannot create a folder inside {existing}: it is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{shown}: the folder {existing} is not writable")


def _check_protected(real: Path, shown: str) -> None:
    """Refuse the filesystem root and the home folder or a folder above it."""
    if real.parent == real:
        raise InputError(f"{shown}: is the filesystem root; choose a folder of its own ({NEVER})")
    with contextlib.suppress(RuntimeError, OSError):  # no home folder: nothing to protect
        home = Path.home().resolve()
        if real == home or real in home.parents:
            what = "is the home folder" if real == home else f"holds the home folder {home}"
            raise InputError(f"{shown}: {what}; choose a folder of its own ({NEVER})")


def _check_no_repository(folder: Path, shown: str) -> None:
    """Refuse a folder holding a version-control repository (at any depth)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        found = sorted({*dirnames, *filenames} & set(VCS))
        if found:
            where = Path(dirpath, found[0])
            raise InputError(
                f"{shown}: holds the version-control repository {where}; choose a folder of "
                f"its own ({NEVER})"
            )


def _check_kind(manifest: dict[str, Any] | None, command: str | None, shown: str) -> None:
    """An earlier output of another command (``manifest["command"]``) needs ``force``."""
    earlier = manifest.get("command") if manifest else None
    if command is None or earlier in (None, command):
        return
    raise InputError(
        f"{shown}: holds the output of pmcap {earlier}, not of pmcap {command}; choose a new "
        "folder, or pass --force to replace it"
    )


def _absolute(out: Path) -> Path:
    """``out`` as an absolute path whose parent has its symbolic links resolved."""
    path = Path(out)
    if path.name in ("", ".", ".."):
        path = path.resolve()
    return Path(os.path.abspath(path.parent)).resolve() / path.name


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a pmcap output, or None if ``folder`` holds none."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    if manifest.get(MARKER) or ("command" in manifest and "versions" in manifest):
        return manifest
    return None


def _check_own_files(folder: Path, shown: str, manifest: dict[str, Any] | None = None) -> None:
    """Refuse if a pmcap output holds files its manifest does not list (the user's)."""
    manifest = manifest if manifest is not None else read_manifest(folder)
    listed = manifest.get("files") if manifest else None
    if not isinstance(listed, list):
        return
    extra = sorted(set(_files(folder)) - {*listed, MANIFEST})
    if extra:
        raise InputError(
            f"{shown}: the folder holds files pmcap did not write ({_few(extra)}); "
            "move them, or pass --force to replace them too"
        )


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def _few(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# --- writing ------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_folder(
    out: Path, *, inputs: Sequence[Path] = (), force: bool = False, command: str | None = None
) -> Iterator[Path]:
    """check_out, then yield a temp folder; on success it becomes ``out``, on error it is removed.

    At every instant ``out`` is the complete old output or the complete new one. If the folder
    holds a ``manifest.json`` when the body ends, the names of the files written are added to
    it (``"files"``), so a later run can tell the user's files from pmcap's. A full disk
    (``ENOSPC``, ``EDQUOT``) raises :class:`WriteError` naming the folder and the space the
    output needs.
    """
    check_out(out, inputs=inputs, force=force, command=command)
    path = _absolute(out)
    shown = f"--out {out}"
    with _as_input_error(shown, path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(path, inputs)
    new = path.parent / f".{path.name}.pmcap-{os.getpid()}-{secrets.token_hex(4)}"
    with _as_input_error(shown, new):
        _mkdir(new)
    try:
        yield new
        _record_files(new)
        # the world may have changed meanwhile
        check_out(out, inputs=inputs, force=force, command=command)
        old = _swap_in(new, path, shown)
    except OSError as exc:
        if exc.errno not in _FULL:
            _rmtree(new)
            raise
        written = _tree_size(new)
        _rmtree(new)
        raise WriteError(_full_message(shown, path, written)) from None
    except BaseException:
        _rmtree(new)
        raise
    if old is not None:
        _discard(old, path.name)


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _tree_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed); 0 if it is gone."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _size(n: float) -> str:
    """Bytes as KiB, MiB or GiB with one decimal."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"


def _full_message(shown: str, path: Path, written: int) -> str:
    """The disk holding ``path`` filled while its new output was written (``written`` bytes
    so far): where, how much is free, and how much the output needs (about the size of the
    earlier output there, else more than what was written)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    earlier = _tree_size(path.resolve()) if path.is_dir() else 0
    if earlier:
        need = f"about {_size(earlier)} (the size of the earlier output)"
    else:
        need = f"more than the {_size(written)} written before the disk filled"
    return (
        f"{shown}: no space left on the disk holding {path.parent}"
        + ("" if free is None else f" ({_size(free)} free)")
        + f"; the output needs {need}; free space or choose a folder on another disk. "
        + ("The earlier output is as it was." if earlier else "Nothing was written.")
    )


def _swap_in(new: Path, path: Path, shown: str) -> Path | None:
    """Make ``path`` show ``new`` in one step; return what to discard of the old output.

    If this raises, ``path`` is as it was and ``new`` is the caller's to remove.
    """
    link = new.with_name(new.name + ".link")
    try:
        _symlink(new.name, link)
        source = link
    except OSError:  # a filesystem without symbolic links: swap the folder itself
        source = new
    try:
        if not os.path.lexists(path):
            _rename_new(source, path)
            return None
        if _exchange(source, path):
            # ``source`` holds what ``out`` was: checked above, unless replaced meanwhile
            if source.is_dir() or _own_link(source, path.name):
                return source
            try:
                _exchange(source, path)
            except OSError:
                return None  # ``out`` is the new output; leave the stranger beside it
            raise InputError(f"{shown}: was replaced by a file while pmcap ran; left as it is")
        if source == link and _own_link(path, path.name):
            old = path.parent / os.readlink(path)
            _replace(link, path)
            return old
        # No atomic exchange here: two renames; the next run restores ``.old`` if killed.
        aside = new.with_name(new.name + ".old")
        _rename(path, aside)
        try:
            _rename(source, path)
        except OSError:
            _rename(aside, path)
            raise
        return aside
    except OSError as exc:
        if source == link:
            _unlink(link)
        raise InputError(f"{shown}: cannot put the output in place: {_reason(exc)}") from None
    except BaseException:
        if source == link:
            _unlink(link)
        raise


def _record_files(folder: Path) -> None:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(manifest, dict):
        manifest["files"] = [name for name in _files(folder) if name != MANIFEST]
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def _own_link(path: Path, name: str) -> bool:
    """True if ``path`` is a link pmcap made from the output ``name`` to one of its folders."""
    try:
        target = os.readlink(path)
    except OSError:
        return False
    return bool(re.fullmatch(rf"\.{re.escape(name)}\.pmcap-\d+-[0-9a-f]{{8}}", target))


def _discard(path: Path, name: str) -> None:
    """Remove an old output: a link pmcap made (and the folder it points to) or a folder."""
    if _own_link(path, name):
        target = path.parent / os.readlink(path)
        _unlink(path)
        _rmtree(target)
    elif path.is_symlink() or not path.is_dir():
        _unlink(path)
    else:
        _rmtree(path)


# --- leftovers of killed runs -------------------------------------------------------------


def _version_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.pmcap-(\d+)-[0-9a-f]{{8}}(\.link|\.old)?")


def _clean_leftovers(path: Path, inputs: Sequence[Path]) -> None:
    """Put back an output a killed run left aside; remove what killed runs left behind."""
    ours = _version_re(path.name)
    legacy_tmp = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    legacy_old = re.compile(rf"\.{re.escape(path.name)}\.old-(\d+)")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    dead: list[tuple[os.DirEntry, bool]] = []  # (entry, an output set aside)
    for entry in entries:
        if m := ours.fullmatch(entry.name):
            if not _alive(int(m[1])):
                dead.append((entry, m[2] == ".old"))
        elif m := legacy_old.fullmatch(entry.name):
            if not _alive(int(m[1])):
                dead.append((entry, True))
        elif legacy_tmp.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            dead.append((entry, False))
    if not os.path.lexists(path):
        aside = [e for e, is_aside in dead if is_aside]
        if aside:
            latest = max(aside, key=lambda e: e.stat(follow_symlinks=False).st_mtime)
            with contextlib.suppress(OSError):
                _rename(Path(latest.path), path)
    current = os.readlink(path) if path.is_symlink() else None
    sources = [Path(item).resolve() for item in inputs]
    for entry, _ in dead:
        where = Path(entry.path)
        if entry.name == current or not os.path.lexists(where):
            continue
        if any(where == s or where in s.parents for s in sources):
            continue
        if entry.is_dir(follow_symlinks=False):
            _rmtree(where)
        else:
            _unlink(where)


def _alive(pid: int) -> bool:
    """True if process ``pid`` may still be running (always, where that cannot be told)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


# --- filesystem steps (one place each, so tests can interrupt between them) --------------


def _mkdir(path: Path) -> None:
    os.mkdir(path)


def _symlink(target: str, path: Path) -> None:
    os.symlink(target, path)


def _rename(source: Path, target: Path) -> None:
    os.rename(source, target)


def _replace(source: Path, target: Path) -> None:
    os.replace(source, target)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100
_renameat2: Any = None
if platform.system() == "Linux":
    with contextlib.suppress(OSError, AttributeError):
        _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2


def _rename_flags(source: Path, target: Path, flags: int) -> bool:
    """``renameat2(2)`` with ``flags``; False if this system or filesystem lacks it."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step; False if this system or filesystem cannot."""
    return _rename_flags(a, b, _RENAME_EXCHANGE)


def _rename_new(source: Path, target: Path) -> None:
    """Rename to a ``target`` that does not exist; never over one that appeared meanwhile."""
    if not _rename_flags(source, target, _RENAME_NOREPLACE):
        os.rename(source, target)


@contextlib.contextmanager
def _as_input_error(shown: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise InputError(f"{shown}: cannot create {path}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- manifest -------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def write_manifest(folder: Path, **fields: Any) -> Path:
    path = folder / MANIFEST
    manifest = {**fields, MARKER: 1, "versions": package_versions()}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path
