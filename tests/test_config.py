"""Config loading: errors name the key and the line; references, unknown keys, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from memproxy_cli.config import (
    ConfigError,
    env_references,
    load_config,
    parse_config,
    unknown_keys,
)
from memproxy_cli.config_file import peek


def test_embedded_defaults_need_no_file() -> None:
    config = load_config()
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8764)
    assert config.memory.backend == "local"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("memory:\n  top_k: lots\n", "c.yaml:2: memory.top_k"),
        (
            "model_list:\n  - model_name: x\n    litellm_params:\n      api_base: y\n",
            "c.yaml:3: model_list[0].litellm_params.model: Field required",
        ),
        ("server:\n  port: [1\n", "c.yaml:2: invalid YAML"),
        ("server:\n  host: 0.0.0.0\n", "requires server.master_key"),
        ("- just\n- a list\n", "must be a mapping"),
        ("memory:\n  injection_strategy: middle\n", "c.yaml:2: memory.injection_strategy"),
    ],
)
def test_errors_name_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml")
    assert expected in str(err.value)


def test_unknown_keys_and_env_references() -> None:
    text = (
        "colour: blue\nserver:\n  prot: 1\nmodel_list:\n  - model_name: m\n    litellm_params:\n"
        "      model: openai/m\n      api_key: os.environ/TEAM_KEY\n      rpm: 10\n"
    )
    config = parse_config(text, "c.yaml")
    assert sorted(unknown_keys(config)) == ["colour", "server.prot"]
    import yaml

    assert env_references(yaml.safe_load(text)) == [
        ("model_list[0].litellm_params.api_key", "TEAM_KEY")
    ]


def test_project_memory_overrides_inherit_the_rest() -> None:
    config = parse_config(
        "memory:\n  top_k: 7\n  max_chars: 900\nprojects:\n  quiet:\n    memory:\n      top_k: 1\n"
    )
    assert (config.memory_for("quiet").top_k, config.memory_for("quiet").max_chars) == (1, 900)
    assert config.memory_for("other").top_k == 7
    assert config.memory_for(None).top_k == 7


def test_peek_reads_one_value_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database_url: postgresql://db/spend\nmemory: {top_k: 3}\n")
    monkeypatch.setenv("MEMPROXY_CONFIG", str(path))
    assert peek("database_url") == "postgresql://db/spend"
    assert peek("redis_url") is None
    monkeypatch.delenv("MEMPROXY_CONFIG")
    assert peek("database_url") is None
