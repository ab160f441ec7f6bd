"""The report as plain blocks (tables, paragraphs, facts, plots), rendered twice: to HTML and to
Markdown (render.py). Every string here is user data or built from it: renderers escape all."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns
    caption: str = ""
    verdict: int | None = None  # a column whose cells start with pass / FAIL: coloured in HTML


@dataclass
class Para:
    text: str
    code: str = ""  # shown after the text as a command
    kind: str = "text"  # text, note, missing


@dataclass
class Facts:
    items: list[tuple[str, str]]


@dataclass
class Plot:
    key: str  # file name stem of the PNG beside the Markdown
    title: str
    png: bytes
    width: int = 0  # CSS pixels to show it at (it is drawn at a higher density)


Block = Table | Para | Facts | Plot


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    present: bool = True  # False: the section says what to run instead


@dataclass
class Document:
    title: str
    subtitle: str
    overview: Facts
    sections: list[Section]
    footer: list[str]

    @property
    def plots(self) -> list[Plot]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Plot)]


def num(value: float | None, spec: str) -> str:
    """A number as the CLI tables show it; 'n/a' for none (a non-finite value saved as null)."""
    return "n/a" if value is None else format(value, spec)

