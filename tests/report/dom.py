"""A minimal DOM from the standard library's HTML parser, enough to query the report's markup in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str | None) -> list[Node]:
        """Descendants with a tag, a CSS class and attribute values (``None``: attribute present)."""

        def ok(n: Node) -> bool:
            if tag is not None and n.tag != tag:
                return False
            if cls is not None and cls not in n.classes:
                return False
            return all(
                (k.replace("_", "-") in n.attrs) if v is None else n.attrs.get(k.replace("_", "-")) == v
                for k, v in attrs.items()
            )

        return [n for n in self.iter() if ok(n)]

    def find(self, *args: str | None, **kwargs: str | None) -> Node:
        found = self.find_all(*args, **kwargs)
        assert found, f"no element matches {args} {kwargs}"
        return found[0]

    def where(self, test: Callable[[Node], bool]) -> list[Node]:
        return [n for n in self.iter() if test(n)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    """The document's root node."""
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root
