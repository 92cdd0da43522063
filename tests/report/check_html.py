#!/usr/bin/env python3
"""Parses a page written by `mpt report --html` and prints what report_test checks, as JSON.

    {"well_formed": bool, "errors": [...],          every element closed, in order
     "svg_per_section": {"chart-achieved": 2, ...}, <svg> elements inside each <section id>
     "scripts": 0, "external": [...],               <script> elements; src/href to other places
     "fields": [{"field": "/scenarios/0/rel_error", "value": "...", "text": "..."}],
     "text": "..."}                                 the visible text

usage: check_html.py PAGE.html     (Python 3 standard library only)
"""
import html.parser
import json
import sys

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.section = None
        self.svg_per_section = {}
        self.scripts = 0
        self.external = []
        self.fields = []
        self.cell = None
        self.text = []
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a and a[key] and not a[key].startswith("#"):
                self.external.append(a[key])
        if tag == "section":
            self.section = a.get("id")
        if tag == "svg" and self.section:
            self.svg_per_section[self.section] = self.svg_per_section.get(self.section, 0) + 1
        if tag == "td" and "data-field" in a:
            self.cell = {"field": a["data-field"], "value": a.get("data-value"), "text": ""}
        if tag == "style":
            self.in_style = True
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        # <rect .../>: self-closing, valid inside SVG.
        if tag == "svg" and self.section:
            self.svg_per_section[self.section] = self.svg_per_section.get(self.section, 0) + 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack:
            self.errors.append(f"</{tag}> at {self.getpos()} closes nothing")
            return
        open_tag, pos = self.stack.pop()
        if open_tag != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes <{open_tag}> from {pos}")
        if tag == "td" and self.cell is not None:
            self.cell["text"] = self.cell["text"].strip()
            self.fields.append(self.cell)
            self.cell = None
        if tag == "section":
            self.section = None
        if tag == "style":
            self.in_style = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data
        if not self.in_style:
            self.text.append(data)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        page = f.read()
    c = Checker()
    c.feed(page)
    c.close()
    for tag, pos in c.stack:
        c.errors.append(f"<{tag}> from {pos} is never closed")
    if not page.startswith("<!DOCTYPE html>"):
        c.errors.append("no <!DOCTYPE html> first")
    print(json.dumps({"well_formed": not c.errors, "errors": c.errors[:20],
                      "svg_per_section": c.svg_per_section, "scripts": c.scripts,
                      "external": c.external, "fields": c.fields,
                      "text": " ".join("".join(c.text).split())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
