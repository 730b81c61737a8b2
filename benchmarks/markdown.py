"""Markdown tables for the bench report (report.py and report_trust.py share the one helper)."""


def table(header, rows, align):
    """A GitHub-flavoured table; ``align`` has one letter per column, 'r' right-aligned, else left."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
