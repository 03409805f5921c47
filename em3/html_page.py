"""The reports' HTML pages (evaluation, data validation): self-contained, one style, shown in the Kubeflow UI."""

from __future__ import annotations

from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.better { color: #176b1f; } .worse { color: #a1261b; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page: ``title`` (plain text) over ``body`` (HTML), in the reports' style."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
