import socket

import numpy as np
import pytest

from kfp_llmops.onnx_runtime import layout_of, session
from prompting import format_prompt
from kfp_llmops.serving.local import infer_logits, local_server


def test_local_server_answers_open_inference_protocol_v2_binary_and_json(onnx_repository, tokenizer, tmp_path):
    enc = tokenizer([format_prompt("reverse: apple bird")], return_tensors="np", add_special_tokens=False)
    sess = session(onnx_repository / "reverser" / "1" / "model.onnx")
    direct = sess.run(["logits"], {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                   **layout_of(sess).empty_past(1)})[0]
    with local_server("reverser", onnx_repository, log_path=tmp_path / "server.log") as url:
        binary = infer_logits(url, "reverser", enc["input_ids"], enc["attention_mask"], binary=True)
        as_json = infer_logits(url, "reverser", enc["input_ids"], enc["attention_mask"], binary=False)
    np.testing.assert_allclose(binary, direct, atol=1e-5)
    np.testing.assert_allclose(as_json, direct, atol=1e-4)
    assert binary.shape == (1, enc["input_ids"].shape[1], len(tokenizer))
    host, port = url.split(":")
    with pytest.raises(ConnectionRefusedError):  # the server was stopped with the block
        socket.create_connection((host, int(port)), timeout=2)
