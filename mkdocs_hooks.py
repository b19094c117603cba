"""mkdocs hook: fill generated tables at build time (never typed by hand).

``<!-- preset-table -->`` in a page becomes the output of ``torchrl-mst presets``;
``<!-- mrq-update-table ... -->`` becomes ``benchmarks/results/mrq_update.md`` (written by
``python benchmarks/mrq_update.py``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "disable")


def on_page_markdown(markdown: str, **kwargs) -> str:
    """Replace generated-table placeholders in a page."""
    if "<!-- preset-table -->" in markdown:
        from torchrl_mst.cli import preset_table

        markdown = markdown.replace("<!-- preset-table -->", preset_table())
    if "<!-- mrq-update-table" in markdown:
        from pathlib import Path

        result = Path(__file__).parent / "benchmarks" / "results" / "mrq_update.md"
        text = result.read_text() if result.exists() else "_No result recorded yet._"
        start = markdown.index("<!-- mrq-update-table")
        end = markdown.index("-->", start) + 3
        markdown = markdown[:start] + text + markdown[end:]
    return markdown
