"""A Document as one self-contained HTML page (inline CSS, plots as data URIs, no script, no
external URL) and as Markdown (GitHub-flavoured tables, plots as PNG files beside it). All text
is escaped: artifact names, file names and notes are user data."""

from __future__ import annotations

import base64
import html
import re

from .document import Document, Facts, Para, Plot, Section, Table

CSS = """
:root { --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --head: #f3f4f6; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: #f9fafb; color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 40px; background: #fff;
  min-height: 100vh; border-left: 1px solid var(--line); border-right: 1px solid var(--line); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; overflow-wrap: anywhere; }
nav { margin: 0 0 8px; color: var(--muted); }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
dl.overview { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 4px; }
dl.overview div { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px;
  background: var(--head); min-width: 140px; }
dl.overview dt { color: var(--muted); font-size: 12px; }
dl.overview dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 10px 0;
  font-size: 13px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; margin: 14px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0 8px; caption-side: top;
  white-space: normal; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--head); font-weight: 600; vertical-align: bottom; }
td { max-width: 320px; overflow-wrap: break-word; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.verdict { min-width: 210px; }
tbody tr:nth-child(even) td { background: #fafafa; }
.pass { color: #166534; background: #dcfce7; border-radius: 4px; padding: 1px 7px; font-weight: 600; }
.fail { color: #991b1b; background: #fee2e2; border-radius: 4px; padding: 1px 7px; font-weight: 600; }
p.note { color: var(--muted); font-size: 13px; margin: 4px 0; }
p.missing { background: #fffbeb; border-left: 4px solid #f59e0b; padding: 8px 12px; margin: 8px 0; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--head); padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
footer { margin-top: 36px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 12px; overflow-wrap: anywhere; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(t: Table) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in t.numeric else ' class="verdict"' if i == t.verdict else ""

    head = "".join(f"<th{cls(i)} scope=\"col\">{_e(c)}</th>" for i, c in enumerate(t.columns))
    body = []
    for row in t.rows:
        cells = []
        for i, v in enumerate(row):
            text = _e(v)
            if i == t.verdict:  # "pass", or "FAIL: why; why": a badge, then one reason a line
                ok = v.startswith("pass")
                why = v.split(":", 1)[1].split(";") if ":" in v and not ok else []
                text = f'<span class="{"pass" if ok else "fail"}">{"pass" if ok else "FAIL"}</span>' \
                    + "".join(f"<br>{_e(w.strip())}" for w in why)
            cells.append(f"<td{cls(i)}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    return (f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _html_facts(f: Facts, cls: str = "facts") -> str:
    if cls == "overview":
        items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in f.items)
    else:
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in f.items)
    return f'<dl class="{cls}">{items}</dl>'


def _html_block(b: object) -> str:
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Facts):
        return _html_facts(b)
    if isinstance(b, Para):
        code = f" <code>{_e(b.code)}</code>" if b.code else ""
        return f'<p class="{_e(b.kind)}">{_e(b.text)}{code}</p>'
    if isinstance(b, Plot):
        data = base64.b64encode(b.png).decode("ascii")
        width = f' width="{b.width}"' if b.width else ""
        return (f'<figure><img src="data:image/png;base64,{data}"{width} alt="{_e(b.title)}">'
                f"<figcaption>{_e(b.title)}</figcaption></figure>")
    raise TypeError(type(b))


def to_html(doc: Document) -> str:
    nav = "".join(f'<a href="#{_e(s.id)}">{i}. {_e(s.title)}</a>'
                  for i, s in enumerate(doc.sections, 1))
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(doc.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
        f"<header><h1>{_e(doc.title)}</h1><p class=\"sub\">{_e(doc.subtitle)}</p>",
        _html_facts(doc.overview, "overview"), f"<nav>{nav}</nav></header>",
    ]
    for i, s in enumerate(doc.sections, 1):
        parts.append(f'<section id="{_e(s.id)}"><h2>{i}. {_e(s.title)}</h2>')
        parts += [_html_block(b) for b in s.blocks]
        parts.append("</section>")
    parts.append("<footer>" + "<br>".join(_e(line) for line in doc.footer) + "</footer>")
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*\[\]|$])")  # $: maths in GitHub's Markdown
_MD_LEADING = re.compile(r"^([#+\-=>])|^(\d+)([.)])")  # would start a heading, list or quote
_MD_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_escape(text: object) -> str:
    """Plain text in Markdown: no emphasis, link, table break, heading or raw HTML from it.
    An underscore inside a word (onnx_int8) is left as is: it does not start emphasis."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _MD_UNDERSCORE.sub(r"\\_", s)
    return " ".join(s.split())  # a newline would end a table row


def md_line(text: object) -> str:
    """``md_escape`` for text that starts a line: it must not become a heading or a list."""
    return _MD_LEADING.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", md_escape(text))


def _md_code(text: str) -> str:
    """A code span that holds any text: its fence is longer than any backtick run inside."""
    text = " ".join(text.split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(t: Table) -> list[str]:
    out = [f"**{md_escape(t.caption)}**", ""] if t.caption else []
    out.append("| " + " | ".join(md_escape(c) for c in t.columns) + " |")
    out.append("|" + "|".join("---:" if i in t.numeric else "---" for i in range(len(t.columns)))
               + "|")
    for row in t.rows:
        cells = [md_escape(v) for v in row]
        if t.verdict is not None and row[t.verdict].startswith("pass"):
            cells[t.verdict] = "✅ pass"
        elif t.verdict is not None:
            cells[t.verdict] = "❌ " + cells[t.verdict]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _md_block(b: object, files_url: str) -> list[str]:
    if isinstance(b, Table):
        return _md_table(b)
    if isinstance(b, Facts):
        return [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in b.items] + [""]
    if isinstance(b, Para):
        text = md_line(b.text) + (f" {_md_code(b.code)}" if b.code else "")
        return [f"> {text}" if b.kind == "missing" else f"_{text}_" if b.kind == "note" else text, ""]
    if isinstance(b, Plot):
        return [f"![{md_escape(b.title)}]({files_url}/{b.key}.png)", ""]
    raise TypeError(type(b))


def _md_section(i: int, s: Section, files_url: str) -> list[str]:
    out = [f"## {i}. {md_escape(s.title)}", ""]
    for b in s.blocks:
        out += _md_block(b, files_url)
    return out


def to_markdown(doc: Document, files_url: str) -> str:
    """``files_url``: the plots' folder relative to the Markdown file, already URL-quoted."""
    out = [f"# {md_escape(doc.title)}", "", md_line(doc.subtitle), ""]
    out += [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in doc.overview.items] + [""]
    for i, s in enumerate(doc.sections, 1):
        out += _md_section(i, s, files_url)
    out += ["---", ""] + [md_line(line) + "  " for line in doc.footer]
    return "\n".join(out).rstrip() + "\n"
