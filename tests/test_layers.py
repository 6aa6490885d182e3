"""The package layers import one way only (DESIGN.md, "Layers").

Every module of saw/, rewards/, rollout/ and eval/ is parsed (function-level imports included)
and each import of a project module is checked against the edges allowed below. A new edge that
points up a layer fails here with the file, the line and the rule.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the layers its modules may import (besides themselves); lowest first
ALLOWED = {
    "saw.core": set(),
    "saw.algo": {"saw.core"},
    "rewards": {"saw.core"},
    "rollout": {"saw.core"},
    "saw.models": {"saw.core"},
    "saw.tasks": {"saw.core", "saw.models", "rewards"},
    "saw.rl": {"saw.core", "saw.algo", "saw.models", "saw.tasks", "rewards", "rollout"},
    "eval": {"saw.core", "saw.models", "saw.tasks", "rewards", "rollout"},
    "saw.integrations": {"saw.core", "saw.algo", "rewards"},  # plug-ins for other trainers (TRL)
    "saw.testbed": {"saw.core", "saw.algo"},  # synthetic testbed for the weighting mechanism
    "saw": {"saw.algo"},  # saw/__init__.py: the public names, loaded lazily
}
PROJECT = ("saw", "rewards", "rollout", "eval")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (None for modules outside the project)."""
    parts = module.split(".")
    if parts[0] not in PROJECT:
        return None
    if parts[0] == "saw" and len(parts) > 1 and f"saw.{parts[1]}" in ALLOWED:
        return f"saw.{parts[1]}"
    return parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_imports(path: Path):
    """(line, imported module) for every import of a project module in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target in ("saw",):  # "from saw import algo" -> saw.algo
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"
            else:
                yield node.lineno, target


def sources():
    for top in PROJECT:
        yield from sorted((ROOT / top).rglob("*.py"))


def violations():
    found = []
    for path in sources():
        own = layer_of(module_name(path))
        for line, target in project_imports(path):
            other = layer_of(target)
            if other is None or other == own:
                continue
            if other not in ALLOWED[own]:
                found.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target} ({other}); "
                             f"{own} may import only {sorted(ALLOWED[own]) or 'nothing else'}")
    return found


def test_imports_follow_the_layers():
    assert violations() == []


def test_the_checker_catches_an_upward_import():
    bad = ROOT / "rewards" / "_layer_probe_tmp.py"
    bad.write_text("def f():\n    from saw.rl.trainer import RLTrainer\n")
    try:
        assert any("_layer_probe_tmp.py:2: rewards imports saw.rl.trainer" in v for v in violations())
    finally:
        bad.unlink()


def test_allowed_edges_have_no_cycle():
    done = set()

    def visit(node, stack):
        assert node not in stack, f"layer cycle: {' -> '.join(stack + [node])}"
        if node in done:
            return
        for nxt in ALLOWED[node]:
            visit(nxt, stack + [node])
        done.add(node)

    for layer in ALLOWED:
        visit(layer, [])
    assert done == set(ALLOWED)


@pytest.mark.parametrize("modules", ["rewards, rollout", "saw, saw.core.registry, saw.core.io"])
def test_light_packages_import_no_torch_and_no_engine(modules):
    code = (f"import sys\nimport {modules}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'vllm', 'deepspeed', 'wandb') or m.startswith(('saw.algo', 'saw.rl')))\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
