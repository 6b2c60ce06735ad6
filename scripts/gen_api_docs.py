"""Render docs/api.md from the docstrings of uringloop's public names.

    python scripts/gen_api_docs.py            # rewrite docs/api.md
    python scripts/gen_api_docs.py --check    # exit 1 if docs/api.md is out of date
    python scripts/gen_api_docs.py --undocumented   # list public names without a docstring

Public means: the names in `__all__` of `uringloop` and of every submodule whose name does
not start with an underscore (uringloop.os, uringloop.threads, uringloop.pytest_plugin,
...), plus the deprecated names `uringloop` builds lazily. Of a class, the members it
defines itself (not those inherited from asyncio) whose names do not start with an
underscore, and its constructor. The output depends on the source and on the Python
version only where a signature does (uringloop.tempfile.NamedTemporaryFile's order of
parameters is aiofiles' for the running Python): docs/api.md is rendered, and checked, on
Python 3.11.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import io
import os
import pkgutil
import re
import sys
import tokenize
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# The API as the pure-Python references declare it, whichever twins were built: a compiled
# method (AsyncFileIO.read, for one) has no Python signature or `async def` of its own.
os.environ["URINGLOOP_NO_EXTENSIONS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "api.md"
PACKAGE = "uringloop"
# Names a module builds in its __getattr__ (deprecated); documented after its __all__.
LAZY_NAMES = {"uringloop": ("EventLoopPolicy", "install")}
NO_DOCSTRING = "*(no docstring)*"
# Classes users get from the API without a public name: {module: (heading, [objects])}.
RETURNED_TYPES = {
    "uringloop": (
        "Types returned by uringloop.open",
        [
            "uringloop._files.AsyncFileIO",
            "uringloop._files.AsyncBufferedFile",
            "uringloop._files.AsyncTextFile",
        ],
    ),
    "uringloop.tempfile": (
        "Types returned by uringloop.tempfile",
        [
            "uringloop.tempfile.NamedTemporaryFileWrapper",
            "uringloop.tempfile.SpooledTemporaryFileWrapper",
            "uringloop.tempfile.TemporaryDirectoryWrapper",
        ],
    ),
}
# Classes whose undocumented methods mirror another class's methods:
# {class name: (the other class, dotted; text for a method without a docstring; whether to
# append the other method's docstring)}. The io module's docstrings differ between Python
# versions, so they are referred to, not copied.
MIRRORS = {
    "ThreadsafeOperations": (
        "uringloop.Loop",
        "From any thread: like `Loop.{name}`, but returns a concurrent.futures.Future.",
        True,
    ),
    "AsyncFileIO": ("io.FileIO", "{awaited}`io.FileIO.{name}`.", False),
    "AsyncBufferedFile": ("io.BufferedRandom", "{awaited}`io.BufferedRandom.{name}`.", False),
    "AsyncTextFile": ("io.TextIOWrapper", "{awaited}`io.TextIOWrapper.{name}`.", False),
    "_Path": ("os.path", "{awaited}`os.path.{name}`.", False),
    "AsyncStandardTextStream": (
        "io.TextIOWrapper",
        "{awaited}`io.TextIOWrapper.{name}`, of the stream at the time of the call (of an "
        "awaitable, when it begins: awaited, or its task's first step).",
        False,
    ),
    "AsyncStandardBinaryStream": (
        "io.BufferedRandom",
        "{awaited}`io.BufferedRandom.{name}`, of the stream at the time of the call (of an "
        "awaitable, when it begins: awaited, or its task's first step).",
        False,
    ),
    "SpooledTemporaryFileWrapper": (
        "tempfile.SpooledTemporaryFile",
        "{awaited}`tempfile.SpooledTemporaryFile.{name}`.",
        False,
    ),
}

# Modules whose undocumented functions are counterparts of another module's:
# {module: (the other module, text)}.
FUNCTION_MIRRORS = {
    "uringloop.os": ("os", "Awaitable; as `os.{name}`."),
    "uringloop.threads": (
        "os",
        "Blocks the calling thread (not the loop's) while the loop performs `os.{name}`.",
    ),
}

HEADER = """\
# API reference

Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand
(`python scripts/gen_api_docs.py --check` fails when this file is out of date).
How the pieces fit together: [architecture.md](architecture.md).
"""


class _Raw:
    """An annotation shown as written in the source (annotations are strings here)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return value
    if isinstance(value, str):
        return _Raw(value)
    return _Raw(inspect.formatannotation(value))


def _source_defaults(obj: Callable[..., Any]) -> dict[str, str]:
    """{parameter: default expression as written}, e.g. {'mode': '0o777'}."""
    try:
        source = inspect.cleandoc("\n" + inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    args = func.args
    positional = args.posonlyargs + args.args
    with_default = positional[len(positional) - len(args.defaults) :]
    pairs = list(zip(with_default, args.defaults, strict=True))
    keyword = zip(args.kwonlyargs, args.kw_defaults, strict=True)
    pairs += [(a, d) for a, d in keyword if d is not None]
    return {a.arg: ast.get_source_segment(source, d) or "" for a, d in pairs}


def _is_public_expression(text: str) -> bool:
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Attribute):
        return not re.search(r"(^|\.)_", text)
    return False


def _default(value: Any, written: str | None) -> Any:
    if value is inspect.Parameter.empty:
        return value
    # The expression as written when a reader can use it as is: a literal (0o777) or a
    # public dotted name (os.O_RDONLY); a module constant's value otherwise.
    if written and _is_public_expression(written):
        return _Raw(written)
    if isinstance(value, (enum.Enum, type)) or callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "name", None)
        return _Raw(str(name) if name else repr(value))
    return value


def signature(
    obj: Callable[..., Any], *, drop_self: bool = False, drop_return: bool = False
) -> str:
    """`(a: int, b: str = 'x') -> bool` with annotations and defaults as written."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    written = _source_defaults(obj)
    params = list(sig.parameters.values())
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    params = [
        p.replace(
            annotation=_annotation(p.annotation), default=_default(p.default, written.get(p.name))
        )
        for p in params
    ]
    ret = inspect.Signature.empty if drop_return else _annotation(sig.return_annotation)
    sig = sig.replace(parameters=params, return_annotation=ret)
    return str(sig)


def _is_private(cls: type) -> bool:
    return any(part.startswith("_") for part in _public_name(cls).split("."))


def _public_name(cls: type) -> str:
    """`asyncio.SelectorEventLoop` rather than `asyncio.unix_events._UnixSelectorEventLoop`."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    top = sys.modules.get(cls.__module__.split(".")[0])
    if top is not None:
        for name, value in sorted(vars(top).items()):
            if value is cls and not name.startswith("_"):
                return f"{top.__name__}.{name}"
    return f"{cls.__module__}.{cls.__qualname__}"


def docstring(obj: Any) -> str:
    # The object's own docstring only: an inherited one (inspect.getdoc's fallback) would
    # be the standard library's, which varies across Python versions.
    doc = obj.__doc__
    if doc is not None:
        doc = inspect.cleandoc(doc)
        made_up = obj.__name__ + "(" if isinstance(obj, type) else None
        if made_up and dataclasses.is_dataclass(obj) and doc.startswith(made_up):
            doc = None  # the text dataclass() makes up, which also varies
    return doc if doc else NO_DOCSTRING


def _field_comments(cls: type) -> dict[str, str]:
    """Trailing `# comments` of a dataclass's field lines, which document the fields."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    last_field: str | None = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and last_field is None:
            last_field = tok.string
        elif tok.type == tokenize.COMMENT and last_field is not None:
            comments[last_field] = tok.string.lstrip("#").strip()
        elif tok.type == tokenize.NEWLINE:
            last_field = None
    return comments


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public members a class defines itself or inherits from a class of this package,
    in source order (a base's first); not those inherited from asyncio or builtins."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is not cls and not klass.__module__.startswith(PACKAGE):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in getattr(cls, "__dataclass_fields__", {}):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                found[name] = (klass, value)
    for name, (_, value) in found.items():
        yield name, value


def _raw_member(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def render_class(
    qualname: str, cls: type, out: list[str], constructor: bool = True, kind: str = "class"
) -> None:
    bases = [b for b in cls.__bases__ if b is not object and not _is_private(b)]
    base_text = ", ".join(_public_name(b) for b in bases)
    if issubclass(cls, enum.Enum):
        out.append(f"### class `{qualname}`\n")
        out.append(f"*{base_text}*\n")
        out.append(docstring(cls) + "\n")
        for name, member in cls.__members__.items():
            value = member.value
            shown = hex(value) if isinstance(value, int) and value > 9 else repr(value)
            out.append(f"- `{name}` = `{shown}`")
        out.append("")
        return
    # Records are described by their field table, exceptions by their base.
    own_init = "__init__" in vars(cls) and not dataclasses.is_dataclass(cls)
    init = cls.__init__ if own_init and constructor else None
    sig = signature(init, drop_self=True, drop_return=True) if init is not None else ""
    out.append(f"### {kind} `{qualname}{sig}`\n")
    if base_text:
        out.append(f"*Bases: {base_text}*\n")
    out.append(docstring(cls) + "\n")
    if dataclasses.is_dataclass(cls):
        comments = _field_comments(cls)
        out.append("| field | type | meaning |\n| --- | --- | --- |")
        for f in dataclasses.fields(cls):
            out.append(f"| `{f.name}` | `{f.type}` | {comments.get(f.name, '')} |")
        out.append("")
    for name, value in _members(cls):
        member_name = f"{qualname}.{name}"
        if isinstance(value, property):
            out.append(f"#### property `{member_name}`\n")
            out.append(_method_doc(cls, name, value) + "\n")
            continue
        prefix = "async " if inspect.iscoroutinefunction(value) else ""
        raw = _raw_member(cls, name)
        label = "classmethod " if isinstance(raw, classmethod) else ""
        if isinstance(raw, staticmethod) and kind == "class":
            label = "staticmethod "
        drop = not isinstance(raw, staticmethod)
        original = _foreign_original(value)
        if original is not None:
            wrapped = value.__wrapped__
            sig = "(...)" if inspect.isbuiltin(wrapped) else signature(wrapped)
            out.append(f"#### {label}{prefix}`{member_name}{sig}`\n")
            awaited = "Awaitable; as" if prefix else "As"
            extra = _extra_parameters(value)
            out.append(f"{awaited} `{original}`, with the same arguments{extra}.\n")
            continue
        out.append(f"#### {label}{prefix}`{member_name}{signature(value, drop_self=drop)}`\n")
        out.append(_method_doc(cls, name, value) + "\n")


def _method_doc(cls: type, name: str, method: Any) -> str:
    doc = docstring(method)
    if doc != NO_DOCSTRING:
        return doc
    mirror = MIRRORS.get(cls.__name__)
    if mirror is None:
        # An override of a standard-library method: refer to the public base class (where
        # in its MRO the method lives differs between Python versions).
        foreign = [k for k in cls.__mro__[1:] if not k.__module__.startswith(PACKAGE)]
        if any(name in vars(k) for k in foreign):
            base = next((b for b in cls.__bases__ if not _is_private(b)), cls.__bases__[0])
            return f"Overrides `{_public_name(base)}.{name}`."
        return doc
    target, template, copy_doc = mirror
    module_name, _, class_name = target.rpartition(".")
    other = getattr(importlib.import_module(module_name), class_name)
    original = getattr(other, name, None)
    if original is None:
        return doc
    awaited = "Awaitable; as " if inspect.iscoroutinefunction(method) else "As "
    text = template.format(name=name, awaited=awaited)
    return text + "\n\n" + docstring(original) if copy_doc else text


def _foreign_original(func: Any) -> str | None:
    """`os.access` for a wrapper of a function outside this package, else None."""
    wrapped = getattr(func, "__wrapped__", None)
    module = getattr(wrapped, "__module__", None) or ""
    if wrapped is None or module.split(".")[0] == PACKAGE:
        return None
    module = {"posix": "os", "posixpath": "os.path", "genericpath": "os.path"}.get(module, module)
    return f"{module}.{wrapped.__name__}"


def _extra_parameters(func: Any) -> str:
    """', plus `executor=`' for the keyword-only parameters a wrapper adds."""
    try:
        params = inspect.signature(func, follow_wrapped=False).parameters.values()
    except (TypeError, ValueError):
        return ""
    names = [f"`{p.name}=`" for p in params if p.kind is p.KEYWORD_ONLY and p.name != "loop"]
    return ", plus " + ", ".join(names) if names else ""


def _function_doc(qualname: str, func: Any) -> str:
    doc = docstring(func)
    module_name, _, name = qualname.rpartition(".")
    mirror = FUNCTION_MIRRORS.get(module_name)
    if doc != NO_DOCSTRING or mirror is None:
        return doc
    other, text = mirror
    if not hasattr(importlib.import_module(other), name):
        return doc
    return text.format(name=name)


# {class: the first public object of that class rendered}: later ones refer to it.
_objects_rendered: dict[type, str] = {}


def _python_twin(qualname: str, obj: Any) -> Any:
    """A compiled twin is documented as its pure-Python reference (`_<name>_python` beside
    it in its module), so the page reads the same with or without the extensions."""
    if inspect.isbuiltin(obj):
        module, _, name = qualname.rpartition(".")
        reference = getattr(sys.modules.get(module), f"_{name}_python", None)
        if reference is not None:
            return reference
    return obj


def render_object(qualname: str, obj: Any, out: list[str]) -> None:
    obj = _python_twin(qualname, obj)
    if isinstance(obj, type):
        render_class(qualname, obj, out)
    elif callable(obj):
        prefix = "async " if inspect.iscoroutinefunction(obj) else ""
        original = _foreign_original(obj)
        if original is not None:
            # A wrapper of a standard-library function: its docstring (and a C function's
            # signature) is the standard library's, which differs between Python versions.
            # Name the original instead.
            wrapped = obj.__wrapped__
            sig = "(...)" if inspect.isbuiltin(wrapped) else signature(wrapped)
            out.append(f"### {prefix}`{qualname}{sig}`\n")
            awaited = "Awaitable; as" if prefix else "As"
            extra = _extra_parameters(obj)
            out.append(f"{awaited} `{original}`, with the same arguments{extra}.\n")
            return
        out.append(f"### {prefix}`{qualname}{signature(obj)}`\n")
        out.append(_function_doc(qualname, obj) + "\n")
    elif isinstance(obj, ModuleType):
        out.append(f"### module `{qualname}`\n")
        out.append(f"See [{obj.__name__}](#module-{obj.__name__.replace('.', '')}).\n")
    elif type(obj).__module__.startswith(PACKAGE + "."):
        first = _objects_rendered.setdefault(type(obj), qualname)
        if first == qualname:
            render_class(qualname, type(obj), out, constructor=False, kind="object")
        else:  # another instance of a class rendered above (uringloop.stdout, ...)
            out.append(f"### object `{qualname}`\n")
            out.append(f"Like `{first}` (the same methods), for `{_short_repr(obj)}`.\n")
    else:
        out.append(f"### `{qualname}`\n")
        out.append(f"*{type(obj).__name__}*, `{_short_repr(obj)}`\n")
        comment = _constant_comment(qualname)
        if comment:
            out.append(comment + "\n")


def _constant_comment(qualname: str) -> str:
    """The `#` comment lines just above a module constant's assignment."""
    module_name, _, name = qualname.rpartition(".")
    try:
        lines = inspect.getsource(sys.modules[module_name]).splitlines()
    except (KeyError, OSError, TypeError):
        return ""
    for i, line in enumerate(lines):
        if re.match(rf"{re.escape(name)}\s*[:=]", line):
            above: list[str] = []
            while i > 0 and lines[i - 1].startswith("#"):
                i -= 1
                above.insert(0, lines[i].lstrip("#").strip())
            return " ".join(above)
    return ""


def _short_repr(obj: Any) -> str:
    if isinstance(obj, dict):
        return "keys " + ", ".join(repr(k) for k in obj)
    text = repr(obj)
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def public_modules() -> list[ModuleType]:
    package = importlib.import_module(PACKAGE)
    modules = [package]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{PACKAGE}.{info.name}"))
    return modules


def render_module(module: ModuleType, out: list[str]) -> None:
    name = module.__name__
    out.append(f"## Module {name}\n")
    out.append(docstring(module) + "\n")
    names = list(getattr(module, "__all__", []))
    if not names:
        names = sorted(
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == name
        )
    for public in names:
        render_object(f"{name}.{public}", getattr(module, public), out)
    returned = RETURNED_TYPES.get(name)
    if returned:
        heading, paths = returned
        out.append(f"### {heading}\n")
        for path in paths:
            module_name, _, attr = path.rpartition(".")
            cls = getattr(importlib.import_module(module_name), attr)
            render_class(attr, cls, out, constructor=False)
    lazy = LAZY_NAMES.get(name, ())
    if lazy:
        out.append(f"### Deprecated names of {name}\n")
        out.append("Built on first use; deprecated where asyncio's event loop policies are.\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for public in lazy:
                render_object(f"{name}.{public}", getattr(module, public), out)


def render() -> str:
    _objects_rendered.clear()
    out = [HEADER]
    modules = public_modules()
    out.append("Modules: " + ", ".join(f"[{m.__name__}](#module-{_anchor(m)})" for m in modules))
    out.append("")
    for module in modules:
        render_module(module, out)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def _anchor(module: ModuleType) -> str:
    return module.__name__.replace(".", "")


def undocumented(text: str) -> list[str]:
    """Headings in the rendered text whose docstring is missing."""
    missing = []
    heading = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line == NO_DOCSTRING:
            missing.append(heading)
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--undocumented", action="store_true", help="list public names without a docstring"
    )
    args = parser.parse_args(argv)
    text = render()
    missing = undocumented(text)
    if args.undocumented:
        for heading in missing:
            print(f"no docstring: {heading}")
        return 1 if missing else 0
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is out of date: run python scripts/gen_api_docs.py",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(missing)} names without a docstring: --undocumented)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
