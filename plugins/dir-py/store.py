"""The `store` resource: a directory store under /repo.

Writes go to a temporary file that is synced and hard-linked to its name; link() fails when
the name exists, so create-only is atomic.
"""

import errno
import itertools
import os
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world.exports import store as wit
from wit_world.imports import types

ROOT = "/repo"
DIRS = {
    wit.Kind.KEY: "keys",
    wit.Kind.SNAPSHOT: "snapshots",
    wit.Kind.INDEX: "index",
    wit.Kind.PACK: "data",
    wit.Kind.LOCK: "locks",
}
_counter = itertools.count()


def _fail(what: str, name: str, e: OSError) -> Err:
    message = f"{what} {name}: {e.strerror or e}"
    if e.errno == errno.ENOENT:
        return Err(types.Error_NotFound(message))
    if e.errno == errno.EEXIST:
        return Err(types.Error_AlreadyExists(message))
    if e.errno in (errno.EACCES, errno.EPERM):
        return Err(types.Error_Denied(message))
    return Err(types.Error_Other(message))


def _path(kind: wit.Kind, name: str) -> str:
    if kind == wit.Kind.CONFIG:
        return f"{ROOT}/config"
    if not name or any(c not in "0123456789abcdefABCDEF" for c in name):
        raise Err(types.Error_InvalidConfig(f"`{name}` is not a valid file name"))
    if kind == wit.Kind.PACK:
        return f"{ROOT}/data/{name[:2]}/{name}"
    return f"{ROOT}/{DIRS[kind]}/{name}"


class Store(wit.Store):
    @classmethod
    def open(cls, config: List[Tuple[str, str]]) -> "Store":
        if not any(key == "path" for key, _ in config):
            raise Err(types.Error_InvalidConfig(
                "missing configuration key `path`: set it in the configuration file or with -o path=DIR"))
        return cls()

    def guarantees(self) -> wit.Guarantees:
        return wit.Guarantees(atomic_create=True)

    def create(self) -> None:
        if os.path.exists(f"{ROOT}/config"):
            raise Err(types.Error_AlreadyExists("the directory already holds a repository"))
        folders = [f"{ROOT}/{d}" for d in DIRS.values()]
        folders += [f"{ROOT}/data/{i:02x}" for i in range(256)]
        for folder in folders:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as e:
                raise _fail("cannot create", folder, e)

    def list_files(self, kind: wit.Kind) -> List[wit.Entry]:
        if kind == wit.Kind.CONFIG:
            try:
                return [wit.Entry("config", os.stat(f"{ROOT}/config").st_size)]
            except FileNotFoundError:
                return []
        top = f"{ROOT}/{DIRS[kind]}"
        folders = [f"{top}/{i:02x}" for i in range(256)] if kind == wit.Kind.PACK else [top]
        entries = []
        for folder in folders:
            try:
                with os.scandir(folder) as it:
                    for e in it:
                        if not e.name.startswith(".") and e.is_file():
                            entries.append(wit.Entry(e.name, e.stat().st_size))
            except FileNotFoundError:
                continue
            except OSError as e:
                raise _fail("cannot list", folder, e)
        return entries

    def read(self, kind: wit.Kind, name: str, offset: int, length: Optional[int]) -> bytes:
        try:
            with open(_path(kind, name), "rb") as f:
                if length is None:
                    return f.read()
                f.seek(offset)
                return f.read(length)
        except OSError as e:
            raise _fail("cannot read", name, e)

    def write(self, kind: wit.Kind, name: str, data: bytes) -> None:
        path = _path(kind, name)
        folder = ROOT if kind == wit.Kind.CONFIG else f"{ROOT}/{DIRS[kind]}"
        temp = f"{folder}/.tmp-{name[:8]}-{os.getpid()}-{next(_counter)}-{os.urandom(4).hex()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(temp, path)
        except OSError as e:
            raise _fail("cannot store", name, e)
        finally:
            try:
                os.unlink(temp)
            except OSError:
                pass

    def remove(self, kind: wit.Kind, name: str) -> None:
        try:
            os.unlink(_path(kind, name))
        except OSError as e:
            raise _fail("cannot remove", name, e)
