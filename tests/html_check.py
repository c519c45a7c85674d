"""Checks an HTML report as a browser-free reader would: every element closed in order (void elements aside), and
each inline SVG well-formed XML with drawn content."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Balance(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.in_svg = 0

    def handle_starttag(self, tag, attrs):
        if self.in_svg or tag == "svg":  # SVG is XML: checked separately
            self.in_svg += tag == "svg"
            return
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if self.in_svg:
            self.in_svg -= tag == "svg"
            return
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}> at {self.getpos()}")
        else:
            self.stack.pop()


def check_html(text: str, *, plots: int = 1) -> list[ET.Element]:
    """Asserts the page is well-formed and holds at least ``plots`` SVG plots; returns the parsed SVGs."""
    assert text.lstrip().lower().startswith("<!doctype html>"), "not an HTML document"
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    svgs, start = [], 0
    while (i := text.find("<svg", start)) >= 0:
        end = text.index("</svg>", i) + len("</svg>")
        svg = ET.fromstring(text[i:end])
        drawn = [e for e in svg.iter() if e.tag.endswith(("path", "polyline", "line", "rect"))]
        assert len(drawn) > 5, "an SVG without drawn content"
        svgs.append(svg)
        start = end
    assert len(svgs) >= plots, f"{len(svgs)} plots, expected at least {plots}"
    return svgs
