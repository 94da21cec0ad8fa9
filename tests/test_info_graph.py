"""`jitvision info --graph`: the TorchScript IR of forward (inlined graph and code), printed by the C++ app."""
import json

import pytest

BUNDLED = ["digits_yolov5n.torchscript", "mnist.torchscript"]


@pytest.mark.parametrize("name", BUNDLED)
def test_graph_text_follows_the_model_summary(repo_root, run_cli, name):
    proc = run_cli(["info", "--graph", repo_root / "models" / name])
    assert proc.returncode == 0, proc.stderr
    summary, _, ir = proc.stdout.partition("\ngraph (forward, inlined):\n")
    assert summary.startswith("model:") and "forward:" in summary
    graph, _, code = ir.partition("\ncode (forward):\n")
    assert graph.startswith("graph(%self")
    assert "prim::CallMethod" not in graph  # submodule calls are inlined
    assert "aten::_convolution" in graph or "aten::conv2d" in graph
    assert code.startswith("def forward(self")


@pytest.mark.parametrize("name", BUNDLED)
def test_graph_json_carries_graph_and_code(repo_root, run_cli, name):
    model = repo_root / "models" / name
    with_ir = json.loads(run_cli(["info", "--graph", "--json", model]).stdout)
    plain = json.loads(run_cli(["info", "--json", model]).stdout)
    assert "graph" not in plain and "code" not in plain
    assert with_ir["graph"].startswith("graph(%self") and with_ir["code"].startswith("def forward(self")
    assert {k: v for k, v in with_ir.items() if k not in ("graph", "code")} == plain


def test_graph_of_a_non_torchscript_file_is_a_model_error(run_cli, tmp_path):
    text = tmp_path / "notes.torchscript"
    text.write_text("not a model\n")
    proc = run_cli(["info", "--graph", text])
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "is not a TorchScript archive" in proc.stderr
