"""The package's shape: imports point one way (no circle), the checkpoint file module knows
nothing of sampling or training, and the library's errors never name a command-line flag."""

import ast
import re
from pathlib import Path

import songgen

PACKAGE = Path(songgen.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module's songgen modules, imported at the top or inside a function."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{target}.{a.name}" for a in node.names} | {target}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [
                    a.name for a in node.names]
                found |= {n for n in names if n and n.startswith("songgen")}
        graph[name] = {m for m in found if m in modules and m not in (name, "songgen")}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for m in graph[todo.pop()] - seen:
                seen.add(m)
                todo.append(m)
        return seen

    circles = sorted(m for m in graph if m in reaches(m))
    assert circles == []


def test_the_checkpoint_file_knows_nothing_of_sampling_or_training():
    reached = _imports()["songgen.checkpoint"]
    assert not reached & {"songgen.trained", "songgen.stepper", "songgen.generate",
                          "songgen.training", "songgen.state", "songgen.lyrics",
                          "songgen.devices"}


def test_library_errors_name_no_command_line_flag():
    flagged = []
    for path in PACKAGE.rglob("*.py"):
        if path.name.startswith("cli"):
            continue  # the command line (cli*.py) adds its flags to the library's advice
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for text in ast.walk(node.exc):
                    if isinstance(text, ast.Constant) and isinstance(text.value, str) and \
                            re.search(r"(^|\s)--[a-z]", text.value):
                        flagged.append(f"{path.name}:{node.lineno}: {text.value.strip()}")
    assert flagged == []
