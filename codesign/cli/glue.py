"""`codesign glue fetch DIR`: write the official GLUE TSV layout from the Hugging Face `datasets`
copy of GLUE (codesign.glue_fetch.fetch_glue; needs the optional `hub` extra and a network).
"""
from __future__ import annotations

import click

from codesign.cli.common import CodesignError, first_line

@click.group("glue")
def glue_group() -> None:
    """GLUE data: fetch the official TSV layout for the accuracy measurements."""


@glue_group.command("fetch")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--tasks", default=None, metavar="TASK,...",
              help="GLUE tasks to fetch, comma-separated, e.g. sst2,mrpc (default: all).")
def fetch_command(out_dir: str, tasks: str | None) -> None:
    """Write GLUE tasks into DIR in the official TSV layout (DIR/SST-2/train.tsv, ...).

    Downloads the Hugging Face `datasets` copy of GLUE (pip install -e .[hub]); offline it
    fails at once. Then set CODESIGN_GLUE_DIR=DIR (or pass --glue-dir DIR).
    """
    from codesign.glue_fetch import fetch_glue

    names = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
    try:
        written = fetch_glue(out_dir, names)
    except (OSError, ValueError, RuntimeError) as err:  # offline, unknown task, bad folder
        raise CodesignError(first_line(err)) from None
    what = ", ".join(names) if names else "all tasks"
    click.echo(f"wrote GLUE ({what}) to {out_dir}; set CODESIGN_GLUE_DIR={out_dir}")
    if isinstance(written, (list, tuple)):
        for path in written:
            click.echo(f"  {path}")
