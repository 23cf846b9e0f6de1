"""Every ```python block of README.md runs as written, at smoke size.

The blocks run in order in one namespace (a later block may use an earlier one's names), in a temporary working
directory. Smoke size: the sample sizes of the heavy verbs are forced down (the README's own arguments, such as
``steps=300``, are overridden), so the blocks exercise the same code paths in seconds instead of minutes.
"""

from __future__ import annotations

import re
from pathlib import Path

import physlm
import physlm.api

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SMOKE = {
    "probe": dict(n_train=20, n_test=10, n_boot=20),
    "evaluate_generation": dict(n_samples=8),
    "attention_stats": dict(n_windows=4, batch_size=2),
    "train": dict(model="gpt_rot-tiny", model_options={"n_layers": 1, "d_model": 16, "n_heads": 2}, steps=2,
                  batch_size=2, seq_len=32),
}


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_readme_has_python_examples_with_few_imports():
    blocks = python_blocks()
    assert blocks, "README.md has no ```python block"
    for block in blocks:
        imports = [line for line in block.splitlines() if re.match(r"\s*(import|from)\s", line)]
        assert len(imports) <= 3, imports


def test_every_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    sizes = {**SMOKE, "train": {**SMOKE["train"], "out": tmp_path / "trained"}}

    def smoke(verb, forced):
        def run(*args, **kwargs):
            return verb(*args, **{**kwargs, **forced})
        return run

    for name, forced in sizes.items():
        monkeypatch.setattr(physlm, name, smoke(getattr(physlm.api, name), forced))
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks()):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # the traceback names the block
    assert (tmp_path / "probe_results.csv").is_file()
    assert physlm.read_results(tmp_path / "probe_results.csv")
