"""Credentials in URLs and secret flags are masked in everything shown."""

from eval.core.redact import redact_argv, redact_text, redact_url, strip_userinfo, url_secrets


def test_url_credentials_and_secret_query_values_are_masked() -> None:
    assert redact_url("http://alice:pa%40ss@h:8/v1") == "http://alice:***@h:8/v1"
    assert redact_url("https://ghp_TOKEN123@h/v1") == "https://***@h/v1"
    assert (
        redact_url("https://h/v1?api_key=abc123&model=m&sig=zz9")
        == "https://h/v1?api_key=***&model=m&sig=***"
    )
    assert redact_url("http://127.0.0.1:8001/v1") == "http://127.0.0.1:8001/v1"
    text = "connect to http://alice:pa%40ss@h:8/v1 failed; auth 'alice:pa@ss' refused"
    assert redact_text(text, url_secrets("http://alice:pa%40ss@h:8/v1")) == (
        "connect to http://alice:***@h:8/v1 failed; auth 'alice:***' refused"
    )


def test_userinfo_is_split_off_for_basic_auth() -> None:
    assert strip_userinfo("http://alice:pa%40ss@h:8/v1/models") == ("http://h:8/v1/models", "alice:pa@ss")
    assert strip_userinfo("http://h:8/v1") == ("http://h:8/v1", None)


def test_secret_flags_in_a_command_line() -> None:
    argv = ["vllm", "--api-key", "sk-1234", "--token=tok-999", "--model", "m", "--max-tokens", "64"]
    assert redact_argv(argv) == [
        "vllm",
        "--api-key",
        "***",
        "--token=***",
        "--model",
        "m",
        "--max-tokens",
        "64",
    ]
