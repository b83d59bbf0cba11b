"""The bridge drops model providers' keys and endpoints from its environment (and so from every flow and task
it starts), whatever started it; Python's own credentials stay."""

from loom_py.runtime import bridge


def test_provider_secrets_are_dropped_python_credentials_stay():
    env = {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "http://x", "OPENAI_API_KEY": "sk", "OPENAI_ORG_ID": "o",
           "MISTRAL_API_KEY": "m", "SOME_SERVICE_API_KEY": "s", "PGPASSWORD": "pg", "MODAL_TOKEN_ID": "ak",
           "LOOM_PROPOSER_URL": "http://127.0.0.1:1", "PATH": "/bin", "MY_API_KEYRING": "keep"}
    gone = bridge.drop_provider_secrets(env)
    assert sorted(gone) == ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MISTRAL_API_KEY", "OPENAI_API_KEY", "OPENAI_ORG_ID",
                            "SOME_SERVICE_API_KEY"]
    assert env == {"PGPASSWORD": "pg", "MODAL_TOKEN_ID": "ak", "LOOM_PROPOSER_URL": "http://127.0.0.1:1", "PATH": "/bin",
                   "MY_API_KEYRING": "keep"}
