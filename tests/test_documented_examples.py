"""Every documented Python example runs.

Doctests (``>>>``) run through ``--doctest-modules``. This file runs the rest: the
literal blocks (a paragraph ending in ``::``, or ``.. code-block:: python``) of every
docstring under ``grutune/`` that hold Python, and every ```python block of README.md
and docs/*.md. The examples are found, not listed, so a new one runs without anyone
adding it here; a discovery test checks that the known ones are found, so this file
cannot silently run nothing.

Each example runs alone in a fresh working directory with an empty namespace: it
imports what it uses, as a reader who copies it must.
"""

from __future__ import annotations

import ast
import doctest
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "grutune"
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# examples that exist today; discovery must find at least these
KNOWN = {"grutune.workflows.tune:tune", "grutune.workflows.compare:compare"}
# a literal block that is not Python (YAML), found and left alone
KNOWN_NOT_PYTHON = {"grutune.search_space"}
DIRECTIVE = re.compile(r"^\.\. (?:code-block|code|sourcecode)::\s*(\w+)\s*$")
FENCE = re.compile(r"^```\s*(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """A code block as documented: where it is, the text that introduces it, its code."""

    where: str  # "grutune.workflows.tune:tune" (a docstring) or "README.md:120" (a file line)
    intro: str
    code: str
    language: str | None  # declared ("python"), or None for a plain ``::`` block


# --- discovery ---------------------------------------------------------------------------

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _paragraph_before(lines: list[str], i: int) -> str:
    """The paragraph that ends at line ``i`` (the one introducing a literal block)."""
    start = i
    while start > 0 and lines[start - 1].strip():
        start -= 1
    return " ".join(line.strip() for line in lines[start:i + 1])


def literal_blocks(doc: str) -> Iterator[tuple[str, str, str | None]]:
    """(introducing paragraph, dedented code, declared language) of each reST literal
    block in a cleaned docstring.

    >>> list(literal_blocks("Run it::\\n\\n    f(1)\\n\\nDone."))
    [('Run it::', 'f(1)', None)]
    """
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = DIRECTIVE.match(line.strip())
        if not (directive or line.rstrip().endswith("::")):
            i += 1
            continue
        body, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > _indent(line)):
            body.append(lines[j])
            j += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        if code:
            yield (_paragraph_before(lines, i), code,
                   directive.group(1).lower() if directive else None)
        i = j


def docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """(module:qualified name, cleaned docstring) for a module and everything in it."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}" if prefix else child.name
                doc = ast.get_docstring(child)
                if doc:
                    yield f"{module}:{name}", doc
                yield from walk(child, name)

    doc = ast.get_docstring(tree)
    if doc:
        yield module, doc
    yield from walk(tree, "")


def docstring_blocks() -> Iterator[Block]:
    for path in sorted(PACKAGE.rglob("*.py")):
        for where, doc in docstrings(path):
            for n, (intro, code, language) in enumerate(literal_blocks(doc)):
                yield Block(where if n == 0 else f"{where}#{n + 1}", intro, code, language)


def markdown_blocks(path: Path, root: Path = ROOT) -> Iterator[Block]:
    """Every fenced block of a Markdown file, with its language."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i].strip())
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"),
                   len(lines))
        yield Block(f"{path.relative_to(root)}:{i + 1}", lines[i],
                    "\n".join(lines[i + 1:end]), fence.group(1).lower() or None)
        i = end + 1


def is_python(block: Block) -> bool:
    """Declared Python, or an undeclared block that parses as Python and calls or imports
    something (a YAML mapping such as ``lr: {low: 1}`` parses too, as bare annotations)."""
    if block.language is not None:
        return block.language in ("python", "py", "pycon")
    try:
        tree = ast.parse(block.code)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.Call, ast.Import, ast.ImportFrom)) for n in ast.walk(tree))


def all_blocks() -> list[Block]:
    blocks = list(docstring_blocks())
    for path in MARKDOWN:
        blocks += markdown_blocks(path)
    return blocks


def python_examples() -> list[Block]:
    return [b for b in all_blocks() if is_python(b)]


# --- the tests ---------------------------------------------------------------------------

def test_discovery_finds_the_known_examples():
    """Discovery works: today's examples are found, the YAML block is not taken for
    Python, and every block a docstring calls an example is Python (one that does not
    parse is a broken example, not a block to skip)."""
    found = {b.where for b in python_examples()}
    assert KNOWN <= found, KNOWN - found
    others = {b.where for b in all_blocks() if not is_python(b)}
    assert KNOWN_NOT_PYTHON <= others, KNOWN_NOT_PYTHON - others
    examples = [b for b in docstring_blocks() if "example" in b.intro.lower()]
    assert len(examples) >= len(KNOWN)
    for block in examples:
        assert is_python(block), f"{block.where}: its example is not valid Python"


def test_markdown_python_fences_are_found(tmp_path):
    """A ```python block in a docs page is an example (issue 16 adds some); other
    languages are not."""
    page = tmp_path / "api.md"
    page.write_text("# API\n\n```python\nimport grutune\n```\n\n```bash\ngrutune tune\n```\n")
    blocks = list(markdown_blocks(page, root=tmp_path))
    assert [(b.where, b.language) for b in blocks] == [("api.md:3", "python"),
                                                        ("api.md:7", "bash")]
    assert [b.code for b in blocks if is_python(b)] == ["import grutune"]


def _run(block: Block) -> None:
    """Execute ``block``: plain code, or a doctest session when it shows ``>>>`` prompts."""
    if any(line.lstrip().startswith(">>>") for line in block.code.splitlines()):
        test = doctest.DocTestParser().get_doctest(block.code, {}, block.where, block.where, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0, f"{block.where}: {runner.failures} doctest failures"
        return
    exec(compile(block.code, block.where, "exec"), {"__name__": "__example__"})  # noqa: S102


@pytest.mark.realdata
@pytest.mark.parametrize("block", python_examples(), ids=lambda b: b.where)
def test_documented_example_runs(block, tmp_path, monkeypatch):
    """The example runs as written, in an empty directory, importing what it uses."""
    monkeypatch.chdir(tmp_path)
    _run(block)
