from __future__ import annotations

import pytest

from worker.errors import InvalidOptionsError
from worker.options import TranscribeOptions, parse_options


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
