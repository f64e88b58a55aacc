"""Configuration: precedence, node parsing and one-line errors for bad values."""

import pytest

from purgebridge.config.settings import VARIABLES, describe, load_settings
from purgebridge.core.errors import ConfigError
from purgebridge.core.nodes import Node


def load(env=None, overrides=None, dotenv_path="", **kw):
    return load_settings(overrides, environ=env or {}, dotenv_path=dotenv_path, **kw)


def test_defaults():
    s = load()
    assert (s.timeout, s.retries, s.node_port, s.listen) == (2.0, 3, 6081, ("127.0.0.1", 8787))
    assert s.nodes == ()


def test_precedence_default_dotenv_env_flags(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PURGEBRIDGE_TIMEOUT=3\nPURGEBRIDGE_RETRIES=4\nPURGEBRIDGE_PIPELINE=8\n")
    s = load({"PURGEBRIDGE_RETRIES": "5", "PURGEBRIDGE_PIPELINE": "9"}, {"PURGEBRIDGE_PIPELINE": "10"},
             dotenv_path=str(env_file))
    assert s.timeout == 3.0          # .env beats default
    assert s.retries == 5            # environment beats .env
    assert s.pipeline == 10          # flag beats environment
    assert s.sources["PURGEBRIDGE_TIMEOUT"].startswith(".env")
    assert s.sources["PURGEBRIDGE_PIPELINE"] == "command line"


def test_nodes_forms_and_duplicates():
    s = load({"PURGEBRIDGE_NODES": "127.0.0.11:6081, http://127.0.0.12:6082/,[::1]:6083,::1,localhost,127.0.0.11:6081"})
    assert s.nodes == (Node("127.0.0.11", 6081), Node("127.0.0.12", 6082), Node("::1", 6083),
                       Node("::1", 6081), Node("localhost", 6081))
    assert s.nodes[2].name == "[::1]:6083"


def test_nodes_union_with_vcl(tmp_path):
    vcl = tmp_path / "site.vcl"
    vcl.write_text('vcl 4.1;\nacl purge {\n  "127.0.0.12";\n  "127.0.0.13"; // node 3\n}\n')
    s = load({"PURGEBRIDGE_NODES": "127.0.0.11,127.0.0.12", "PURGEBRIDGE_VCL": str(vcl)})
    assert [n.host for n in s.nodes] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]


@pytest.mark.parametrize("name,value,words", [
    ("PURGEBRIDGE_TIMEOUT", "abc", "number of seconds"),
    ("PURGEBRIDGE_TIMEOUT", "0", "greater than 0"),
    ("PURGEBRIDGE_RETRIES", "-1", "whole number"),
    ("PURGEBRIDGE_RETRIES", "many", "whole number"),
    ("PURGEBRIDGE_NODE_PORT", "70000", "1 to 65535"),
    ("PURGEBRIDGE_NODES", "127.0.0.1:http", "port must be a number"),
    ("PURGEBRIDGE_NODES", "https://127.0.0.1:6081", "only http://"),
    ("PURGEBRIDGE_NODES", "bad host!", "not an IP address or hostname"),
    ("PURGEBRIDGE_NODES", "[::1:6081", "missing ']'"),
    ("PURGEBRIDGE_VCL", "/nonexistent/file.vcl", "file not found"),
    ("PURGEBRIDGE_INSECURE", "maybe", "true/false"),
    ("PURGEBRIDGE_LOG_FORMAT", "xml", "json or text"),
    ("PURGEBRIDGE_LISTEN", "127.0.0.1:port", "host:port"),
])
def test_bad_values_name_variable_value_and_expectation(name, value, words):
    with pytest.raises(ConfigError) as info:
        load({name: value})
    message = str(info.value)
    assert message.startswith(f"{name}=")
    assert repr(value) in message or value in message
    assert words in message
    assert "\n" not in message


def test_backoff_max_below_backoff():
    with pytest.raises(ConfigError, match="PURGEBRIDGE_BACKOFF_MAX"):
        load({"PURGEBRIDGE_BACKOFF": "2", "PURGEBRIDGE_BACKOFF_MAX": "1"})


def test_require_nodes():
    with pytest.raises(ConfigError, match="no Varnish nodes configured"):
        load(require_nodes=True)


def test_dotenv_never_overrides_environment(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PURGEBRIDGE_SECRET=from-file\n")
    assert load({"PURGEBRIDGE_SECRET": "from-env"}, dotenv_path=str(env_file)).secret == "from-env"
    assert load({}, dotenv_path=str(env_file)).secret == "from-file"


def test_describe_hides_secrets():
    s = load({"PURGEBRIDGE_SECRET": "s3cr3t", "PURGEBRIDGE_ADMIN_TOKEN": "tok"})
    d = describe(s)
    assert d["PURGEBRIDGE_SECRET"] == "(set)" and "s3cr3t" not in repr(d) and "s3cr3t" not in repr(s)
    assert d["PURGEBRIDGE_WEBHOOK_TOKEN"] == "(unset)"


def test_every_variable_is_documented():
    import pathlib
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in VARIABLES if name not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_nodes_file_groups(tmp_path):
    groups = tmp_path / "nodes.json"
    groups.write_text('{"groups": {"fra": ["127.0.0.11:6081", "127.0.0.12"], "ams": ["[::1]:6082"]}}')
    s = load({"PURGEBRIDGE_NODES": "127.0.0.12:6081,127.0.0.20", "PURGEBRIDGE_NODES_FILE": str(groups)})
    assert [(n.name, n.group) for n in s.nodes] == [
        ("127.0.0.12:6081", "fra"), ("127.0.0.20:6081", ""), ("127.0.0.11:6081", "fra"), ("[::1]:6082", "ams")]
    from purgebridge.config.settings import select_group
    assert [n.name for n in select_group(s.nodes, "ams")] == ["[::1]:6082"]
    with pytest.raises(ConfigError, match="groups: ams, fra"):
        select_group(s.nodes, "nyc")


@pytest.mark.parametrize("content,words", [
    ("not json", "not valid JSON"),
    ('{"nodes": []}', "expected"),
    ('{"groups": {"bad name": ["127.0.0.1"]}}', "group name"),
    ('{"groups": {"fra": []}}', "non-empty list"),
    ('{"groups": {"fra": ["127.0.0.1:x"]}}', "port must be a number"),
])
def test_nodes_file_errors_name_the_variable(tmp_path, content, words):
    groups = tmp_path / "nodes.json"
    groups.write_text(content)
    with pytest.raises(ConfigError) as info:
        load({"PURGEBRIDGE_NODES_FILE": str(groups)})
    assert str(info.value).startswith("PURGEBRIDGE_NODES_FILE=") and words in str(info.value)
