"""The dependency rule (docs/architecture.md), measured from the imports: every import points down the
layers or stays in its layer, there is no cycle, samplers never import a trainer, and what kind of run
a folder holds is told in one module."""

import ast
import re
import subprocess
from pathlib import Path

LAB = Path(__file__).resolve().parents[1] / "lab"
# Layers, bottom first; a module is in the layer of its longest matching prefix.
LAYERS = [
    ["lab", "lab.errors", "lab.checkpoint", "lab.runs", "lab.kinds", "lab.recipes"],
    ["lab.data", "lab.options"],
    ["lab.training", "lab.generation.condition", "lab.generation.samples"],
    ["lab.classifier.model", "lab.classifier.efficientnet_lite", "lab.classifier.extra_features", "lab.classifier.ensemble", "lab.classifier.views", "lab.classifier.augment", "lab.classifier.metrics", "lab.classifier.options",
     "lab.gan.model", "lab.gan.fastgan", "lab.gan.projected", "lab.gan.diffaugment", "lab.gan.options",
     "lab.gan.networks", "lab.diffusion.model", "lab.diffusion.options", "lab.diffusion.sampler",
     "lab.diffusion.networks", "lab.upsampler.model", "lab.upsampler.options", "lab.upsampler.networks",
     "lab.generation.run_info"],
    ["lab.generation.harness", "lab.generation.sampling", "lab.generation.steering", "lab.classifier.inference",
     "lab.classifier.baselines", "lab.classifier.gradcam"],
    ["lab.classifier.train", "lab.classifier.ensemble_run", "lab.classifier.evaluate", "lab.gan.train", "lab.gan.sample", "lab.diffusion.train",
     "lab.diffusion.sample", "lab.upsampler.train", "lab.upsampler.sample"],
    ["lab.scoring"],
    ["lab.report"],
    ["lab.launch", "lab.catalog"],
    ["lab.demo", "lab.api"],
    ["lab.app"],
    ["lab.cli"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in LAB.rglob("*.py"):
        parts = path.relative_to(LAB.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _layer(module: str) -> int:
    best, layer = -1, None
    for k, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), k
    assert layer is not None, f"{module} is in no layer of tests/test_architecture.py"
    return layer


def _imports(path: Path, modules: dict) -> set[str]:
    """The lab modules a file imports, at its top or inside its functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lab"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lab")}
    return {m for m in found if m in modules}


def test_every_import_points_down_the_layers_and_there_is_no_cycle():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})" for m, deps in graph.items() for d in deps
              if _layer(d) > _layer(m)]
    assert not upward, upward
    seen, stack = set(), []

    def visit(m):
        assert m not in stack, f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}"
        if m in seen:
            return
        stack.append(m)
        for d in graph[m]:
            visit(d)
        stack.pop()
        seen.add(m)

    for m in graph:
        visit(m)


def test_no_sampler_or_shared_generation_module_imports_a_trainer():
    modules = _modules()
    for m, path in modules.items():
        if m.startswith(("lab.gan", "lab.diffusion", "lab.upsampler", "lab.generation")) and not m.endswith(".train"):
            trainers = [d for d in _imports(path, modules) if d.endswith(".train")]
            assert not trainers, (m, trainers)


def test_run_kinds_are_told_apart_in_one_module():
    """Run files and the option keys that told old runs apart appear in lab/kinds.py alone."""
    names = ['"gan.json"', '"diffusion.json"', '"classifier.json"', '"upsampler.json"', '"headline.json"',
             '"z_dim" in', '"prediction" in', '"schedule" in', '"classifier_recipe" in']
    found = subprocess.run(["grep", "-rlF", *[f"-e{n}" for n in names], str(LAB)], capture_output=True,
                           text=True).stdout.split()
    assert [Path(f).name for f in found] == ["kinds.py"], found


def test_generator_trainers_are_their_model_specific_step():
    for trainer in ("gan", "diffusion"):
        lines = (LAB / trainer / "train.py").read_text().splitlines()
        assert len(lines) < 120, (trainer, len(lines))
        assert not re.search(r"lab\.checkpoint|tqdm|save_grid|log_metrics", "\n".join(lines)), trainer
