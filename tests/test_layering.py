"""The layering of DEVELOPERS.md, checked from the imports (parsed, not run).

- kernel modules (``stencils/_kernels*.py``) import no validation or public
  module: from `stencils` only other kernel modules;
- `stencils` never imports `convnet`;
- `convnet` uses only the public `stencils` API: names in ``stencils.__all__``
  and its public submodules, never a ``stencils._private`` module or name.
"""

import ast
import pathlib

import pytest

import stencils

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC_SUBMODULES = {name for name in stencils.__all__
                     if type(getattr(stencils, name)).__name__ == "module"}


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """(module, names) for every import in the file, relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((module, tuple(alias.name for alias in node.names)))
    return tree, found


def _stencils_modules(module, names):
    """The stencils modules an import loads: ``from stencils import _x`` loads ``stencils._x``."""
    if module == "stencils" and names:
        return [f"stencils.{name}" for name in names]
    return [module] if module == "stencils" or module.startswith("stencils.") else []


def _files(package):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in _files("stencils") if p.name.startswith("_kernels")],
                         ids=lambda p: p.name)
def test_kernel_modules_import_only_kernel_modules_from_stencils(path):
    _, imports = _imports(path)
    for module, names in imports:
        for target in _stencils_modules(module, names):
            assert target.split(".")[1:2] and target.split(".")[1].startswith("_kernels"), (
                f"{path.name} imports {target}: a kernel module may import only other "
                "stencils._kernels* modules")


@pytest.mark.parametrize("path", _files("stencils"), ids=lambda p: p.name)
def test_stencils_never_imports_convnet(path):
    _, imports = _imports(path)
    for module, _names in imports:
        assert module.split(".")[0] != "convnet", f"{path.name} imports {module}"


@pytest.mark.parametrize("path", _files("convnet"), ids=lambda p: p.name)
def test_convnet_uses_only_the_public_stencils_api(path):
    tree, imports = _imports(path)
    aliases = set()
    for module, names in imports:
        if module == "stencils":
            for name in names:
                assert name in stencils.__all__, f"{path.name}: from stencils import {name}"
        elif module.startswith("stencils."):
            assert module.split(".")[1] in PUBLIC_SUBMODULES, f"{path.name} imports {module}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "stencils"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases):
            assert node.attr in stencils.__all__, f"{path.name} uses stencils.{node.attr}"


def test_the_checks_see_the_imports_they_check():
    # Guards the parser: these files are known to import these modules.
    _, imports = _imports(ROOT / "stencils" / "_kernels.py")
    assert any(m == "stencils._kernels_border" for m, _ in imports)
    assert _stencils_modules("stencils", ("_kernels_border",)) == ["stencils._kernels_border"]
    assert _stencils_modules("stencils", ()) == ["stencils"]
    _, imports = _imports(ROOT / "convnet" / "functional.py")
    assert ("stencils", ()) in imports
    assert {"errors", "validation"} <= PUBLIC_SUBMODULES
