"""Running a service as an unprivileged user when the harness runs as root (PostgreSQL refuses root),
and giving it a data directory that user can reach, created safely.

The data dir is `<state_dir>/<service>` when the service user can traverse the state dir. When it
cannot (a clone under a private home, a 0700 temp dir), a private directory made by `mkdtemp` holds
it, and its path is recorded in the state dir so every later start reuses the same one. Nothing here
follows a symbolic link: a link where a directory is expected is refused.
"""

from __future__ import annotations

import os
import pwd
import stat
import tempfile
from pathlib import Path

from harness.service import Service, StackError

PRIVATE_DIR_RECORD = "private_data_dir"


def service_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise StackError("running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL as")


def as_service_user(command: list[str]) -> list[str]:
    user = service_user()
    if user is None:
        return command
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *command]


def data_dir_for(service: Service, state_dir: Path) -> Path:
    default = state_dir / service.name
    user = service_user() if service.needs_unprivileged_user else None
    if user is None or reachable(state_dir, user):
        return default
    return private_dir(state_dir) / service.name


def private_dir(state_dir: Path) -> Path:
    """The recorded private directory if it is still there and safe, else a new one (recorded)."""
    record = state_dir / PRIVATE_DIR_RECORD
    if record.is_file():
        recorded = Path(record.read_text().strip())
        if recorded.exists() or recorded.is_symlink():
            _check_private(recorded, record)
            return recorded
    state_dir.mkdir(parents=True, exist_ok=True)
    created = Path(tempfile.mkdtemp(prefix="pattern-harness-"))  # 0700, unpredictable name
    created.chmod(0o711)  # the service user may traverse it to its own data dir, not list it
    tmp = record.with_suffix(".tmp")
    tmp.write_text(f"{created}\n")
    tmp.replace(record)
    return created


def _check_private(path: Path, record: Path) -> None:
    st = os.lstat(path)
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "it is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "it is not a directory"
    elif st.st_uid != os.geteuid():
        problem = f"it belongs to uid {st.st_uid}, not to this user"
    elif st.st_mode & 0o022:
        problem = "others may write to it"
    if problem:
        raise StackError(f"refusing the private data dir {path} recorded in {record}: {problem}; "
                         f"remove {record} to get a new one")


def reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory down to `path` (those that exist)."""
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        if not (st.st_mode & 0o001 or (st.st_uid == user.pw_uid and st.st_mode & 0o100)):
            return False
    return True


def hand_to_service_user(path: Path) -> None:
    """Make `path` (a directory, never a link) private to the user the service runs as."""
    user = service_user()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        what = "it is a symbolic link" if path.is_symlink() else exc.strerror
        raise StackError(f"refusing the data dir {path}: {what}") from None
    try:
        if user is not None:
            os.fchown(fd, user.pw_uid, user.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def give_file_to_service_user(fd: int) -> None:
    user = service_user()
    if user is not None:
        os.fchown(fd, user.pw_uid, user.pw_gid)
