"""The scripts in examples/ run as documented."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_compose_api_example_runs_and_finds_chaos_at_large_eta():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "compose_api.py")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("eta=")]
    assert len(lines) == 3
    rho_small, rho_large = float(lines[0].split("rho=")[1]), float(lines[-1].split("rho=")[1])
    assert rho_small == 0.0
    assert rho_large > 0.5


COLAB_SOURCE, COLAB_NOTEBOOK = EXAMPLES / "colab_tpu.py", EXAMPLES / "colab_tpu.ipynb"


def percent_to_notebook(text: str) -> dict:
    """A jupytext percent-format script as an nbformat-4 notebook (a dict), without outputs.

    The ``# ---`` YAML header's ``jupyter:`` mapping becomes the notebook metadata
    (kernelspec, Colab's ``accelerator``); each ``# %% [markdown]`` cell loses its
    comment marks; a ``# %% Title`` code cell starts with the comment ``# Title``
    (visible in Colab; jupytext would keep the title in the cell metadata instead,
    otherwise the cells are jupytext's). Cell ids are their positions, so
    regenerating an unchanged script gives the same file.
    """
    import re

    import yaml

    lines = text.splitlines()
    metadata = {}
    if lines and lines[0] == "# ---":
        end = lines.index("# ---", 1)
        metadata = yaml.safe_load("\n".join(line[2:] for line in lines[1:end]))["jupyter"]
        lines = lines[end + 1:]
    cells, kind, body = [], None, []

    def flush():
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if kind is None and not body:
            return
        if kind == "markdown":
            source = [re.sub(r"^# ?", "", line) for line in body]
            cell = {"cell_type": "markdown", "id": f"cell-{len(cells)}", "metadata": {}}
        else:
            source = list(body)
            cell = {"cell_type": "code", "execution_count": None, "id": f"cell-{len(cells)}", "metadata": {},
                    "outputs": []}
        cell["source"] = [line + "\n" for line in source[:-1]] + source[-1:]
        cells.append(cell)

    for line in lines:
        marker = re.fullmatch(r"# %%(.*)", line)
        if marker is None:
            body.append(line)
            continue
        flush()
        title = marker.group(1).strip()
        kind = "markdown" if "[markdown]" in title else "code"
        title = title.replace("[markdown]", "").strip()
        body = [f"# {title}"] if title and kind == "code" else []
    flush()
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def notebook_text(notebook: dict) -> str:
    """The file text Jupyter itself writes (indent 1, UTF-8, trailing newline)."""
    import json

    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def test_colab_notebook_is_in_sync_with_its_jupytext_source():
    import nbformat

    expected = notebook_text(percent_to_notebook(COLAB_SOURCE.read_text()))
    assert COLAB_NOTEBOOK.read_text() == expected, (
        "examples/colab_tpu.ipynb is out of date with examples/colab_tpu.py: run `python tests/test_examples.py`")
    nb = nbformat.reads(expected, as_version=4)
    nbformat.validate(nb)  # a valid nbformat-4 notebook, as Colab and Jupyter open it
    assert nb.metadata["accelerator"] == "TPU" and nb.metadata["kernelspec"]["name"] == "python3"
    assert [c.cell_type for c in nb.cells].count("markdown") >= 2 and all(
        not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_colab_notebook_runs_in_quick_mode_on_cpu(tmp_path, monkeypatch):
    """Executes the shipped .ipynb in a Jupyter kernel: CPU fallback, the η sweep, the float64 guard."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("GDCHAOS_QUICK", "1")  # inherited by the kernel process
    monkeypatch.setenv("GDCHAOS_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(COLAB_NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "No TPU found" in text and "refused: eps=1e-08 is below what float32 resolves" in text
    assert "lambda_max" in text and (tmp_path / "out" / "tangent.png").exists()
    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if "image/png" in out.get("data", {})]
    assert len(images) == 1  # the figure, shown once


if __name__ == "__main__":  # regenerate the notebook from its jupytext source
    COLAB_NOTEBOOK.write_text(notebook_text(percent_to_notebook(COLAB_SOURCE.read_text())))
    print(f"wrote {COLAB_NOTEBOOK}")
