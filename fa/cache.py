"""The run cache: one ``.npz`` file per (experiment, seed), named by what produced it.

A file's name is the sha256 of the experiment's kind and fields (labels left out), the
seed, the ``backend`` if chosen, and the code of ``experiment.numerics_modules`` without
docstrings and comments (:func:`code_text`): editing that code recomputes the runs,
editing its documentation or any other module reuses them. An activation or rule
registered at run time is keyed by its own code (:func:`registered`). Files are written
atomically, each saying which run it holds; one that cannot be read back as a valid record
of the run its name stands for counts as absent.

Cache files travel between machines as a zip archive (:func:`pack`, :func:`unpack`), as
the committed gallery's runs do. An archive holds the files under their names, the
keys, so a run from other code is never taken for one of this code.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import io
import json
import re
import tokenize
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import model, paths
from ._io import atomic_write

#: The name of a cache file: its key and ``.npz``. Nothing else is taken from an archive.
_FILE_NAME = re.compile(r"[0-9a-f]{64}\.npz")
#: The date every archive entry carries, so the same runs make the same archive bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
#: The tokens around an f-string's pieces (Python 3.12+; None before, matching no token).
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
#: dtype kinds a record's scalars may have, by declared Python type.
_KINDS = {bool: "b", int: "iu", float: "f"}


def code_text(source: str) -> str:
    """Return Python ``source`` without its docstrings, comments and blank lines.

    What is left is what runs, line by line, so a key does not move when only the
    documentation does. Strings over several lines are kept exactly; so is the line
    after a backslash, even blank, and a docstring that shares a line with code or
    follows a backslash: keeping too much can only re-key runs, never mix them up.
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n")  # lines as Python counts them
    lines = source.split("\n")
    dropped = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if not isinstance(node, _DOCUMENTED) or not body:
            continue
        first = body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            continue
        start, end = first.lineno - 1, first.end_lineno - 1
        # ast's columns count UTF-8 bytes
        if not (start and lines[start - 1].endswith("\\")) \
                and not lines[start].encode()[:first.col_offset].strip() \
                and not lines[end].encode()[first.end_col_offset:].strip():
            dropped.update(range(start, end + 1))
    comment_at, verbatim, fstrings = {}, set(), []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == _FSTRING_START:          # Python 3.12+: an f-string comes in pieces
            fstrings.append(tok.start[0])
        elif tok.type == _FSTRING_END:          # verbatim over several lines, as before 3.12
            first_line = fstrings.pop()
            if tok.end[0] > first_line:
                verbatim.update(range(first_line - 1, tok.end[0]))
        elif tok.type == tokenize.COMMENT:
            comment_at[tok.start[0] - 1] = tok.start[1]
        elif tok.end[0] > tok.start[0]:         # a string over several lines
            verbatim.update(range(tok.start[0] - 1, tok.end[0]))
    kept = []
    for i, line in enumerate(lines):
        if i in dropped:
            continue
        code = line[:comment_at.get(i, len(line))].rstrip()
        if i in verbatim:
            kept.append(line)
        elif code or (i and lines[i - 1].endswith("\\")):   # a blank line ends a continuation
            kept.append(code)
    return "\n".join(kept)


@functools.lru_cache(maxsize=None)
def source_fingerprint(modules: tuple[str, ...]) -> str:
    """Return the sha256 of the code (:func:`code_text`) of ``modules`` (``"fa.model"``,
    ...; absent ones skipped), once per process: the code this process runs."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        # decoded as the interpreter does: coding cookie, BOM, universal newlines
        code = code_text(importlib.util.decode_source(Path(spec.origin).read_bytes()))
        digest.update(name.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()


#: The package's own activations and rules: their code is fa/model.py, keyed as a file.
_PACKAGED = {"activation": dict(model.ACTIVATIONS), "rule": dict(model.RULES)}
TABLES = {"activation": model.ACTIVATIONS, "rule": model.RULES}


def registered(experiment) -> dict:
    """``{(table, name): entry}`` for the experiment's ``activation`` and ``rule`` whose
    entry in :data:`fa.model.ACTIVATIONS` / :data:`fa.model.RULES` is not the package's
    own (a new name, or a packaged name replaced)."""
    out = {}
    for table, entries in TABLES.items():
        name = getattr(experiment, table, None)
        if name in entries and entries[name] is not _PACKAGED[table].get(name):
            out[table, name] = entries[name]
    return out


def code_digest(obj) -> str:
    """sha256 of what a function (or a dataclass of functions) runs: its bytecode,
    constants and names, its default arguments, and those of the functions, closures,
    partials and global values (numbers, strings, arrays, containers of them: ``alpha =
    0.01`` in a notebook) it uses. Modules and other objects count by name only."""
    seen = set()

    def names(code):
        return code.co_names + tuple(n for c in code.co_consts
                                     if isinstance(c, types.CodeType) for n in names(c))

    def walk(x):
        if isinstance(x, (bool, int, float, complex, str, bytes, type(None), np.generic)):
            return repr(x)
        if isinstance(x, np.ndarray):
            return (x.dtype.str, x.shape, hashlib.sha256(np.ascontiguousarray(x)).hexdigest())
        if id(x) in seen:
            return "..."
        seen.add(id(x))
        if isinstance(x, types.CodeType):
            return (x.co_code, tuple(walk(c) for c in x.co_consts), x.co_names)
        if isinstance(x, types.FunctionType):
            used = [(n, x.__globals__[n]) for n in dict.fromkeys(names(x.__code__))
                    if n in x.__globals__]
            cells = [c.cell_contents for c in x.__closure__ or ()]
            return (walk(x.__code__), tuple((n, walk(v)) for n, v in used),
                    tuple(walk(c) for c in cells), walk(x.__defaults__),
                    walk(x.__kwdefaults__))
        if isinstance(x, functools.partial):
            return (walk(x.func), walk(x.args), walk(x.keywords))
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return tuple(walk(getattr(x, f.name)) for f in dataclasses.fields(x))
        if isinstance(x, (tuple, list)):
            return tuple(walk(v) for v in x)
        if isinstance(x, (set, frozenset)):     # in an order that no hash seed changes
            return tuple(sorted(repr(walk(v)) for v in x))
        if isinstance(x, dict):
            return tuple(sorted((repr(walk(k)), repr(walk(v))) for k, v in x.items()))
        return type(x).__qualname__       # a module, a class: its name, never an address

    return hashlib.sha256(repr(walk(obj)).encode()).hexdigest()


def label_fields(experiment) -> set[str]:
    """Names of the fields marked ``metadata={"label": True}``: they never change numbers."""
    return {f.name for f in dataclasses.fields(experiment) if f.metadata.get("label")}


def local_fields(experiment) -> set[str]:
    """Names of the labels also marked ``"local": True`` (F4's ``data_dir``): a place on
    this machine, left out of whatever may be published (cache files, gallery data)."""
    return {f.name for f in dataclasses.fields(experiment) if f.metadata.get("local")}


def cache_key(experiment, seed: int, *, backend: str | None = None) -> str:
    """Return the sha256 hex digest naming the cached result of ``(experiment, seed)``.

    The key covers the experiment's kind and every field except the labels, the seed,
    ``backend`` when not None, :func:`source_fingerprint` of its ``numerics_modules``
    and the code of a registered activation or rule it uses (:func:`registered`).

    Parameters
    ----------
    experiment : dataclass
        An experiment of :mod:`fa.sweep`, e.g. a :class:`fa.RunConfig`.
    seed : int
        The seed of the run.
    backend : str, optional
        The array library the run is trained on (None: the default path).

    Returns
    -------
    str
        64 hex digits, the name of the run's cache file without ``.npz``.
    """
    fields = dataclasses.asdict(experiment)
    for name in label_fields(experiment):
        del fields[name]
    fields.update(kind=type(experiment).__qualname__, seed=int(seed),
                  source=source_fingerprint(tuple(experiment.numerics_modules)))
    extensions = {f"{table}:{name}": code_digest(entry)
                  for (table, name), entry in registered(experiment).items()}
    if extensions:
        fields["registered"] = extensions
    if backend is not None:
        fields["backend"] = backend
    text = json.dumps(fields, sort_keys=True)  # floats written with repr: exact
    return hashlib.sha256(text.encode()).hexdigest()


def path(cache: Path, experiment, seed: int, *, backend: str | None = None) -> Path:
    """The file of ``(experiment, seed)`` in the folder ``cache``."""
    return cache / f"{cache_key(experiment, seed, backend=backend)}.npz"


def is_cached(cache_dir, experiment, seed: int, *, backend: str | None = None) -> bool:
    """Whether ``(experiment, seed)`` has a result file under ``cache_dir`` (not read)."""
    folder = paths.resolve(cache_dir, paths.CACHE_DIR)
    return path(folder, experiment, seed, backend=backend).exists()


def check_record(record: dict, experiment) -> dict:
    """Return ``record`` with scalars as Python numbers, or raise ``ValueError``: it
    holds ``experiment.scalars`` with their types, ``experiment.curves`` as 1-D numeric
    arrays of one length, and possibly further bool / int / float scalars."""
    out = {}
    for name, kind in experiment.scalars.items():
        value = np.asarray(record[name])   # KeyError for a missing one
        if value.ndim != 0 or value.dtype.kind not in _KINDS[kind]:
            raise ValueError(f"record entry {name!r} is not a {kind.__name__} scalar")
        out[name] = kind(value)
    lengths = set()
    for name in experiment.curves:
        value = np.asarray(record[name])
        if value.ndim != 1 or value.dtype.kind not in "biuf":
            raise ValueError(f"record entry {name!r} is not a 1-D numeric array")
        out[name] = value
        lengths.add(len(value))
    if len(lengths) > 1:
        raise ValueError(f"record curves have different lengths {sorted(lengths)}")
    for name in record.keys() - out.keys():
        value = np.asarray(record[name])
        if value.ndim != 0 or value.dtype.kind not in "biuf":
            raise ValueError(f"record entry {name!r} is not a bool, int or float scalar")
        out[name] = value.item()
    return out


def load(cache: Path | None, experiment, seed: int, *, backend=None) -> dict | None:
    """Return the cached record of ``(experiment, seed)``, or None if absent, unreadable
    or about another run (a file renamed or copied to the wrong key)."""
    if cache is None:
        return None
    try:
        with np.load(path(cache, experiment, seed, backend=backend), allow_pickle=False) as f:
            record = {name: f[name] for name in f.files if name != "about"}
            about = json.loads(str(f["about"]))
        if not _describes(about, experiment, seed, backend):
            return None
        return check_record(record, experiment)
    # Absent, empty, truncated, not a zip, wrong entries: the run is trained again.
    except Exception:
        return None


def _describes(about: dict, experiment, seed: int, backend) -> bool:
    """Whether a file's ``about`` (written by :func:`save`) names ``(experiment, seed)``:
    its kind, seed, backend and every field it records but the labels (which never change
    numbers; a field added since the file was written is not in it)."""
    fields = json.loads(json.dumps(dataclasses.asdict(experiment)))   # tuples as lists
    wanted = dict(fields, kind=type(experiment).__qualname__, seed=int(seed), backend=backend)
    ignored = label_fields(experiment)
    return all(about.get(name) == value for name, value in wanted.items()
               if name not in ignored and (name in about or name not in fields))


def save(cache: Path | None, experiment, seed: int, record: dict, *, backend=None) -> None:
    """Write the record atomically: a crash can leave no half-written ``.npz``."""
    if cache is None:
        return
    # The experiment goes along, so a file says what it holds, without a local place
    # (archives of cache files are committed).
    local = local_fields(experiment)
    fields = {k: v for k, v in dataclasses.asdict(experiment).items() if k not in local}
    about = json.dumps(dict(fields, kind=type(experiment).__qualname__, seed=int(seed),
                            backend=backend), sort_keys=True)
    atomic_write(path(cache, experiment, seed, backend=backend),
                 lambda f: np.savez(f, about=np.array(about), **record))


def pack(archive, pairs, *, cache_dir=paths.CACHE_DIR, backend=None) -> tuple[int, int]:
    """Add the runs of ``pairs`` (experiment, seed) cached under ``backend`` in
    ``cache_dir`` to the zip file ``archive``; return ``(runs added, runs in it)``.

    Runs not cached yet are skipped; runs the archive holds stay in it, so packing only
    ever adds (delete the file to start afresh). ``ValueError`` if ``archive`` exists but
    is not a readable zip file (it is left as it is).
    """
    folder = paths.resolve(cache_dir, paths.CACHE_DIR)
    archive = Path(archive)
    entries = {}
    if archive.exists():
        try:
            with zipfile.ZipFile(archive) as z:
                entries = {name: z.read(name) for name in z.namelist()
                           if _FILE_NAME.fullmatch(name)}
        except zipfile.BadZipFile as err:
            raise ValueError(f"The archive {archive} is not a readable zip file of cache files "
                             f"({err}); move it away to pack afresh.") from None
    held = len(entries)
    for experiment, seed in pairs:
        file = path(folder, experiment, seed, backend=backend)
        if file.name not in entries and file.exists():
            entries[file.name] = file.read_bytes()

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for name in sorted(entries):
                z.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), entries[name],
                           compress_type=zipfile.ZIP_DEFLATED)

    archive.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(archive, write)
    return len(entries) - held, len(entries)


def unpack(archive, *, cache_dir=paths.CACHE_DIR) -> int:
    """Copy the runs of the zip file ``archive`` (made by :func:`pack`) into the cache;
    return how many were not there yet.

    Entries not named as cache files are ignored; a run from other numerics is copied
    but never read (this code computes other keys). ``ValueError`` if ``archive`` is not
    a readable zip file; the runs copied before the damaged entry stay.
    """
    folder = paths.resolve(cache_dir, paths.CACHE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    added = 0
    try:
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                target = folder / name
                if _FILE_NAME.fullmatch(name) and not target.exists():
                    data = z.read(name)
                    atomic_write(target, lambda f: f.write(data))
                    added += 1
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise ValueError(f"The archive {archive} is not a readable zip file of cache files "
                         f"({err}); {added} of its runs were copied.") from None
    return added
