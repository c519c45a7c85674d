"""A step's Kubernetes client uses the least-privilege token the pipeline mounts."""

from kfp_llmops.k8s import api_client


def test_mounted_token_is_used(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("abc.def\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    conf = api_client(str(tmp_path)).configuration
    assert conf.host == "https://10.0.0.1:6443"
    assert conf.get_api_key_with_prefix("authorization") == "Bearer abc.def"
    assert conf.ssl_ca_cert == str(tmp_path / "ca.crt")
