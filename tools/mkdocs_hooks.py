"""MkDocs hook: the pages show the committed model's plots from artifacts_digits/ where they are.

A page links `../artifacts_digits/NAME.png` (which also works when the Markdown is read on a forge); the hook
adds those files to the site under `artifacts_digits/`, so the link resolves and `--strict` checks it.
Knows nothing of the project's code.
"""

from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ARTIFACTS = "artifacts_digits"


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"])
    for image in sorted((docs_dir.parent / ARTIFACTS).glob("*.png")):
        files.append(
            File(
                f"../{ARTIFACTS}/{image.name}",
                src_dir=str(docs_dir),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
                dest_uri=f"{ARTIFACTS}/{image.name}",
                # Included explicitly: MkDocs leaves out paths with a component starting with "." (here "..").
                inclusion=InclusionLevel.INCLUDED,
            )
        )
    return files
