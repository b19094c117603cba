"""mkdocs hook: fill generated tables at build time (never typed by hand).

``<!-- preset-table -->`` in a page becomes the output of ``torchrl-mst presets``.
"""

import os

os.environ.setdefault("MUJOCO_GL", "disable")


def on_page_markdown(markdown: str, **kwargs) -> str:
    """Replace generated-table placeholders in a page."""
    if "<!-- preset-table -->" in markdown:
        from torchrl_mst.cli import preset_table

        markdown = markdown.replace("<!-- preset-table -->", preset_table())
    return markdown
