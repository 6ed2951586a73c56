from __future__ import annotations

import pytest

from worker.pipeline.errors import InvalidOptionsError
from worker.pipeline.options import TranscribeOptions, parse_options


def test_no_options_is_the_default():
    assert parse_options({}) == TranscribeOptions()


def test_every_option_is_accepted_and_typed():
    options = parse_options(
        {
            "language": "EN",
            "task": "translate",
            "beam_size": 3,
            "vad_filter": True,
            "word_timestamps": True,
            "initial_prompt": "JFK",
            "hotwords": "ComfyUI",
            "temperature": [0, 0.5],
        }
    )
    assert options.language == "en" and options.task == "translate"
    assert options.temperature == (0.0, 0.5)
    kwargs = options.to_kwargs(default_beam_size=5)
    assert kwargs["beam_size"] == 3 and kwargs["temperature"] == [0.0, 0.5]
    assert kwargs["hotwords"] == "ComfyUI" and kwargs["vad_filter"] is True


def test_worker_default_beam_size_applies_when_the_job_names_none():
    assert parse_options({}).to_kwargs(default_beam_size=7)["beam_size"] == 7
    assert "language" not in parse_options({}).to_kwargs(default_beam_size=5)


def test_a_single_temperature_stays_a_number():
    assert parse_options({"temperature": 0.2}).to_kwargs(5)["temperature"] == 0.2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, "unknown option"),
        ({"language": "klingon"}, "not a Whisper language code"),
        ({"language": 5}, "language must be a string"),
        ({"task": "summarise"}, "task must be one of"),
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": "5"}, "beam_size"),
        ({"beam_size": True}, "beam_size"),
        ({"beam_size": 2.5}, "beam_size"),
        ({"vad_filter": "yes"}, "vad_filter must be true or false"),
        ({"word_timestamps": 1}, "word_timestamps must be true or false"),
        ({"initial_prompt": ["a"]}, "initial_prompt must be a string"),
        ({"hotwords": 3}, "hotwords must be a string"),
        ({"temperature": 2}, "temperature"),
        ({"temperature": []}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": [0.1, None]}, "temperature"),
    ],
)
def test_bad_options_fail_with_a_typed_error(options, message):
    with pytest.raises(InvalidOptionsError, match=message):
        parse_options(options)


def test_job_options_are_not_passed_to_the_decoder():
    options = parse_options({"channels": "split"})
    assert options.channels == "split"
    assert "channels" not in options.to_kwargs(5) and "callback_url" not in options.to_kwargs(5)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, None),
        ("split", "split"),
        (["agent", "customer"], ("agent", "customer")),
        ((" left ", "right"), ("left", "right")),
    ],
)
def test_channels_is_split_or_two_names(value, parsed):
    assert parse_options({"channels": value}).channels == parsed


@pytest.mark.parametrize(
    "value", ["left", "mono", ["agent"], ["a", "a"], ["a", " "], [1, 2], ["a", "b", "c"], {"a": 0}, True]
)
def test_bad_channels_fail_with_a_typed_error(value):
    with pytest.raises(InvalidOptionsError, match="option channels"):
        parse_options({"channels": value})


HOSTS = ("hooks.example.com", "127.0.0.1:8080", "secure.example.com:443")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/asr/done",
        "http://hooks.example.com:9000/any-port?token=abc",
        "http://HOOKS.example.com/case",
        "http://127.0.0.1:8080/hook",
        "https://secure.example.com/default-port",
    ],
)
def test_callback_url_on_an_allowed_host_is_accepted(url):
    assert parse_options({"callback_url": url}, webhook_hosts=HOSTS).callback_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8081/hook", "127.0.0.1:8081 is not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://127.0.0.1/hook", "not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://secure.example.com/plain-http-is-port-80", "not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://hooks.example.com.evil.net/x", "not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://evil.net#@hooks.example.com/x", "not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://localhost:8080/x", "not in ASR_WEBHOOK_ALLOWED_HOSTS"),
        ("http://user:pw@hooks.example.com/x", "must not carry credentials"),
        ("ftp://hooks.example.com/x", "must be an http"),
        ("hooks.example.com/x", "must be an http"),
        ("http://hooks.example.com:99999/x", "not a valid URL"),
        ("", "must be an http"),
        (42, "must be an http"),
    ],
)
def test_callback_url_elsewhere_is_refused(url, message):
    with pytest.raises(InvalidOptionsError, match=message):
        parse_options({"callback_url": url}, webhook_hosts=HOSTS)


def test_a_refused_callback_url_keeps_its_query_string_out_of_the_error():
    with pytest.raises(InvalidOptionsError, match="must be an http") as refused:
        parse_options({"callback_url": "ftp://hooks.example.com/x?token=s3cr3t"}, webhook_hosts=HOSTS)
    assert "s3cr3t" not in str(refused.value) and "?***" in str(refused.value)


def test_callback_url_is_refused_when_webhooks_are_off():
    with pytest.raises(InvalidOptionsError, match="ASR_WEBHOOK_ALLOWED_HOSTS is empty"):
        parse_options({"callback_url": "https://hooks.example.com/x"})
