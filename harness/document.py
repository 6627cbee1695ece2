"""A report as blocks, written out as Markdown and as one self-contained HTML page.

Blocks: ("h", level, text), ("verdict", passed, text), ("p", text), ("table", headers, rows),
("images", names), ("kv", pairs) and ("view", headers, rows, html): a table that Markdown writes as it is and
HTML shows as the given markup, laid out to be read at a glance (the same facts, arranged); both writers
render every kind, so the two files say the same.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from harness.presentation import MISSING


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def md_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows])


def markdown(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        match block:
            case ("h", level, text):
                out.append(f"{'#' * level} {text}")
            case ("verdict", _, text):
                out.append(f"**{text}**")
            case ("p", text):
                out.append(text)
            case ("table", headers, rows) | ("view", headers, rows, _):
                out.append(md_table(headers, rows))
            case ("images", names):
                out += [f"![{name}](plots/{name})" for name in names]
            case ("kv", pairs):
                out.append("\n".join(f"- {k}: {_md_cell(v)}" for k, v in pairs) or MISSING)
    return "\n\n".join(out) + "\n"


def _html_table(headers, rows, css_class: Callable[[str], str]) -> str:
    def cell(text: str) -> str:
        cls = css_class(text)
        return f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(map(cell, row)) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def html_page(blocks: list[tuple], images: dict[str, str], css: str, css_class: Callable[[str], str]) -> str:
    esc, out = html.escape, []
    for block in blocks:
        match block:
            case ("h", level, text):
                out.append(f"<h{level}>{esc(text)}</h{level}>")
            case ("verdict", passed, text):
                out.append(f'<p class="verdict {"pass" if passed else "fail"}">{esc(text)}</p>')
            case ("p", text):
                out.append(f"<p>{esc(text)}</p>")
            case ("table", headers, rows):
                out.append(_html_table(headers, rows, css_class))
            case ("view", _, _, markup):
                out.append(markup)
            case ("images", names):
                out += [f'<figure><img alt="{esc(n)}" src="data:image/png;base64,{images[n]}"></figure>'
                        for n in names]
            case ("kv", pairs):
                items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
                out.append(f"<dl>{items}</dl>")
    head = f'<meta charset="utf-8">\n<title>{esc(blocks[0][2])}</title>\n<style>\n{css}\n</style>'
    body = "\n".join(out)
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'
