"""Rules that find the files of an event log under ``--events``, in read order.

Each format's entry in ``negrec.data.formats`` holds one rule; a rule answers the
files it found with the layout key of each (a key of the entry's ``layouts``), or
stops the run with a :class:`~negrec.errors.NegrecError` that says what it looked for
and where. ``negrec.data.readers.discover`` runs the format's rule.

A rule is any object with a ``find(events: Events) -> list[Found]`` method and a
``lists`` attribute (whether it needs the listing of ``--events``); the kinds below
cover the built-in formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol

from negrec import storage as store
from negrec.data.layouts import with_compression, without_compression
from negrec.errors import NegrecError
from negrec.storage import StorageOptions


class Found(NamedTuple):
    """One file to read and the key of its layout."""

    uri: str
    layout: str


@dataclass(frozen=True)
class Events:
    """What a rule looks at: the ``--events`` URI and, when the rule lists, its files."""

    uri: str
    format: str
    storage: StorageOptions | None
    is_file: bool = False
    files: tuple[str, ...] = ()

    @classmethod
    def listed(cls, uri: str, format: str, storage: StorageOptions | None) -> Events:
        """``uri`` with the files under it (a missing ``uri`` is said here)."""
        is_file = store.file_info(uri, storage).is_file
        files = tuple(store.list_files(uri, options=storage))
        return cls(uri, format, storage, is_file, files)

    def need(self, found: list[str], what: str) -> list[str]:
        """``found``, unless it is empty: then the error naming ``what`` was looked for."""
        if not found:
            raise NegrecError(
                f"no {what} found at {self.uri}: point --events at the file or the "
                f"directory that holds it (format {self.format}), or choose the right --format"
            )
        return found


class Discovery(Protocol):
    """How one format's files are found (see the module docstring)."""

    lists: ClassVar[bool]

    def find(self, events: Events) -> list[Found]: ...


def _base_name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _endswith(files: tuple[str, ...], suffixes: tuple[str, ...]) -> list[str]:
    return [f for f in files if _base_name(f).endswith(suffixes)]


@dataclass(frozen=True)
class Named:
    """Files whose base name starts with ``prefix`` and ends with ``suffix`` (which may
    be followed by a compression suffix); a file given as ``--events`` is read
    whatever its name."""

    prefix: str
    suffix: str
    layout: str
    what: str  # the files, for messages: "MovieLens ratings.dat"
    lists: ClassVar[bool] = True

    def find(self, events: Events) -> list[Found]:
        suffixes = with_compression(self.suffix)
        chosen = (
            list(events.files)
            if events.is_file
            else [
                f
                for f in events.files
                if _base_name(f).startswith(self.prefix) and f.endswith(suffixes)
            ]
        )
        return [Found(f, self.layout) for f in events.need(chosen, self.what)]


@dataclass(frozen=True)
class Part:
    """One kind of file of a :class:`Parts` rule."""

    suffix: str  # the end of the base name, before any compression suffix
    layout: str
    what: str


@dataclass(frozen=True)
class Parts:
    """Several kinds of file, each required and each told apart by the end of its name;
    read kind after kind, in the order given."""

    parts: tuple[Part, ...]
    lists: ClassVar[bool] = True

    def find(self, events: Events) -> list[Found]:
        found: list[Found] = []
        for part in self.parts:
            chosen = _endswith(events.files, with_compression(part.suffix))
            found += [Found(f, part.layout) for f in events.need(chosen, part.what)]
        return found


@dataclass(frozen=True)
class GeneratedLog:
    """A committed ``negrec generate`` output: ``marker`` written last, the events in
    ``folder`` as files ending with ``suffix``."""

    marker: str
    folder: str
    suffix: str
    layout: str
    what: str
    lists: ClassVar[bool] = True

    def find(self, events: Events) -> list[Found]:
        if not store.exists(store.join(events.uri, self.marker), events.storage):
            raise NegrecError(
                f"{events.uri} holds no {self.marker}, so it is not a finished "
                "`negrec generate` output; rerun negrec generate --out with this URI"
            )
        chosen = events.need(
            store.list_files(store.join(events.uri, self.folder), self.suffix, events.storage),
            self.what,
        )
        return [Found(f, self.layout) for f in chosen]


@dataclass(frozen=True)
class BySuffix:
    """Every file whose name ends with a known suffix, its layout from the suffix:
    ``text`` suffixes may be followed by a compression suffix, ``binary`` ones not. A
    file given as ``--events`` with any other suffix is read as ``fallback``."""

    text: dict[str, str]  # suffix -> layout key
    binary: dict[str, str]
    fallback: str
    what: str
    lists: ClassVar[bool] = True

    def layout_of(self, uri: str) -> str:
        binary = next((key for s, key in self.binary.items() if uri.endswith(s)), None)
        if binary is not None:
            return binary
        name = without_compression(uri)
        return next((key for s, key in self.text.items() if name.endswith(s)), self.fallback)

    def find(self, events: Events) -> list[Found]:
        suffixes = (*self.binary, *with_compression(*self.text))
        chosen = list(events.files) if events.is_file else _endswith(events.files, suffixes)
        return [Found(f, self.layout_of(f)) for f in events.need(chosen, self.what)]


@dataclass(frozen=True)
class GivenFiles:
    """Files of fixed names directly in the ``--events`` folder, all required, in the
    order given; the folder is not listed."""

    names: tuple[str, ...]
    layout: str
    lists: ClassVar[bool] = False

    def find(self, events: Events) -> list[Found]:
        found = []
        for name in self.names:
            uri = store.join(events.uri, name)
            if not store.exists(uri, events.storage):
                raise NegrecError(
                    f"--format {events.format}: {uri} is missing; the folder must hold "
                    f"{', '.join(self.names)}"
                )
            found.append(Found(uri, self.layout))
        return found
