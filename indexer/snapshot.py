"""An index snapshot is a folder of plain files plus manifest.json, written beside the live one
and switched in by replacing one pointer file, so a reader sees the old or the new snapshot,
never half of one, and a build killed halfway leaves the live snapshot serving."""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from indexer import segments
from kb.errors import CorruptIndex, NoIndex

# 2: segments (indexer/segments.py); 1 is read as one base segment. 3 and 4: answers rendered
# with lists apart from the text before (3) and after (4) them (kb/render.py); an older index is
# rebuilt once to get them.
FORMAT_VERSION = 4
READABLE = (1, 2, 3, 4)
POINTER = "CURRENT"
MANIFEST = "manifest.json"
KEEP_OLD = 2  # older snapshots kept so in-flight readers of them can finish


def new_folder(index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    folder = index_dir / f"snap-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return folder


def write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())


def link(source: Path, folder: Path, names: list[str]) -> None:
    """Hard-link files of an older snapshot into a new one: snapshots never change their files,
    so sharing them is safe and costs no copy."""
    for name in names:
        os.link(source / name, folder / name)


def publish(folder: Path, manifest: dict) -> None:
    """Write the manifest last, then point CURRENT at the folder in one atomic rename."""
    for name in os.listdir(folder):
        if os.stat(folder / name).st_nlink > 1:
            continue  # linked from an older snapshot: on disk since that one was published
        with open(folder / name, "rb") as fh:
            os.fsync(fh.fileno())
    write_json(folder / MANIFEST, manifest)
    tmp = folder.parent / f".{POINTER}.{uuid.uuid4().hex[:6]}"
    tmp.write_text(folder.name, encoding="utf-8")
    os.replace(tmp, folder.parent / POINTER)
    fsync_dir(folder.parent)


def pointer_name(index_dir: Path) -> str | None:
    """The live snapshot's folder name from the pointer file; None when there is none yet."""
    try:
        name = (index_dir / POINTER).read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptIndex(f"index pointer {index_dir / POINTER} is unreadable ({exc}): "
                           "rebuild it with `kb index --full`") from None
    if not name or name != Path(name).name or name.startswith("."):
        raise CorruptIndex(f"index pointer {index_dir / POINTER} names no snapshot folder "
                           f"({name[:80]!r}): rebuild it with `kb index --full`")
    return name


def pointer_stamp(index_dir: Path) -> tuple | None:
    """What tells one version of the pointer file from another without reading it: publish
    replaces the file by a rename, so each version is a new inode. None when there is none."""
    try:
        st = os.stat(os.path.join(index_dir, POINTER))
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def current_folder(index_dir: Path) -> Path:
    name = pointer_name(index_dir)
    if name is None:
        raise NoIndex(f"no index in {index_dir}: run `kb index`")
    folder = index_dir / name
    check(folder)
    return folder


def check(folder: Path) -> dict:
    """The manifest, after making sure every file is there. Raises CorruptIndex otherwise."""
    rebuild = "rebuild it with `kb index --full`"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptIndex(f"index {folder} has no readable manifest ({exc}): {rebuild}") from None
    if manifest.get("version") not in READABLE:
        raise CorruptIndex(f"index {folder} has format {manifest.get('version')}: {rebuild}")
    names = ["dictionary.json", *segments.required_files(manifest, folder)]
    if manifest.get("ranker"):  # without it the answers change and nothing says so
        names.append("ranker.npz")
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise CorruptIndex(f"index {folder} is missing {', '.join(missing)}: {rebuild}")
    return manifest


def clean(index_dir: Path) -> None:
    """Remove unfinished snapshots (from killed builds) and all but the newest old ones."""
    try:
        live = (index_dir / POINTER).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):  # none yet, or damaged: the build in hand replaces it
        live = None
    folders = sorted(
        (p for p in index_dir.glob("snap-*") if p.is_dir() and p.name != live),
        key=lambda p: p.stat().st_mtime,
    )
    finished = [p for p in folders if (p / MANIFEST).exists()]
    unfinished = [p for p in folders if not (p / MANIFEST).exists()]
    for folder in unfinished + finished[: max(len(finished) - KEEP_OLD, 0)]:
        shutil.rmtree(folder, ignore_errors=True)
    for tmp in index_dir.glob(f".{POINTER}.*"):
        tmp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
