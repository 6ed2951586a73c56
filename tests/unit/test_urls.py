"""URL policy: prefixes, masking, internal addresses, output targets (pure logic, no network)."""

from __future__ import annotations

import pytest

from asr_protocol import redact
from producer.upload import job_location
from worker.pipeline.errors import ConfigError, InvalidOptionsError, InvalidPathError, PathNotAllowedError
from worker.pipeline.options import parse_options
from worker.pipeline.outputs import output_name
from worker.pipeline.settings import Settings
from worker.pipeline.urls import (
    canonical,
    check_addresses,
    check_allowed,
    is_url,
    mask_url,
    origin,
    parse_prefix,
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://h.example/a.wav?X-Amz-Signature=abc&X-Amz-Credential=k", "https://h.example/a.wav?***"),
        ("https://user:pw@h.example:8443/a.wav#frag", "https://h.example:8443/a.wav"),
        ("s3://bucket/key with space.wav", "s3://bucket/key with space.wav"),
    ],
)
def test_mask_url_drops_query_fragment_and_credentials(url, masked):
    assert mask_url(url) == masked


def test_message_reprs_mask_the_urls_in_a_tasks_arguments():
    args = ["https://h.example/a.wav?X-Amz-Signature=abc", 3.0]
    kwargs = {"options": {"output_url": "s3://out/p/"}, "callback_url": "https://hook.example/?token=t"}
    shown = redact.reprs(args, kwargs)
    assert shown["argsrepr"] == "['https://h.example/a.wav?***', 3.0]"
    assert "abc" not in shown["kwargsrepr"] and "token=t" not in shown["kwargsrepr"]
    assert "s3://out/p/" in shown["kwargsrepr"]
    assert redact.masked(("/data/a.wav", "s3://b/k")) == ("/data/a.wav", "s3://b/k")


def test_urls_are_told_from_paths():
    assert is_url("s3://b/k") and is_url("https://h/x") and is_url("gs://b/k")
    assert not is_url("/data/a.wav") and not is_url("relative/a.wav") and not is_url(None)
    assert job_location("s3://b/k?sig=1") == "s3://b/k?sig=1"
    assert job_location("a.wav").startswith("/")


def test_canonical_form_lowercases_and_writes_the_port():
    assert (
        canonical("HTTPS://Media.Example.COM/Calls/A.wav?x=1") == "https://media.example.com:443/Calls/A.wav"
    )
    assert canonical("http://[::1]:8080/a") == "http://[::1]:8080/a"
    assert canonical("s3://Bucket/key") == "s3://bucket/key"
    assert canonical("gs://Bucket/key?x=1") == "gs://bucket/key"
    assert canonical("az://container/a/b.wav") == "az://container/a/b.wav"
    assert origin("https://h.example/a/b") == "https://h.example:443/"


@pytest.mark.parametrize(
    "bad", ["ftp://h/a", "gs:///k", "file:///etc/passwd", "https://u:p@h/a", "https:///a", "http://h:99999/"]
)
def test_unusable_urls_are_invalid_paths(bad):
    with pytest.raises(InvalidPathError):
        canonical(bad)


def test_prefixes_match_on_boundaries_only():
    prefixes = (parse_prefix("https://media.example.com"), parse_prefix("s3://calls/2024-"))
    assert prefixes == ("https://media.example.com:443/", "s3://calls/2024-")
    check_allowed("https://media.example.com/x.wav?sig=1", prefixes)
    check_allowed("https://MEDIA.example.com:443/x.wav", prefixes)
    check_allowed("s3://calls/2024-05/a.wav", prefixes)
    for refused in (
        "https://media.example.com.evil.net/x.wav",
        "http://media.example.com/x.wav",
        "s3://calls/2023/a",
    ):
        with pytest.raises(PathNotAllowedError):
            check_allowed(refused, prefixes)
    with pytest.raises(PathNotAllowedError, match="ASR_AUDIO_URLS is empty"):
        check_allowed("s3://calls/2024-05/a.wav", ())
    assert parse_prefix("https://") == "https://"
    with pytest.raises(InvalidPathError):
        parse_prefix("https://h/?sig=1")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.5",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "fd00::1",
    ],
)
def test_internal_addresses_are_refused_unless_the_exact_origin_is_listed(address):
    url = "http://files.internal:8080/a.wav?sig=s3cr3t"
    with pytest.raises(PathNotAllowedError) as refused:
        check_addresses(url, [address], ["http://"])
    assert "s3cr3t" not in str(refused.value)
    with pytest.raises(PathNotAllowedError):  # a longer prefix of the same origin is not enough
        check_addresses(url, [address], ["http://files.internal:8080/audio/"])
    check_addresses(url, [address], [parse_prefix("http://files.internal:8080/")])


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    check_addresses("https://h.example/a", ["93.184.216.34", "2606:2800:220:1::1"], ["https://"])
    with pytest.raises(PathNotAllowedError):
        check_addresses("https://h.example/a", ["93.184.216.34", "10.0.0.7"], ["https://"])


def test_settings_read_url_prefixes_and_output_targets():
    settings = Settings.from_env(
        {
            "ASR_AUDIO_URLS": "s3://calls/, https://Media.example.com",
            "ASR_OUTPUT_URL": "s3://out/transcripts",
            "ASR_OUTPUT_URLS": "/srv/transcripts/,s3://archive/",
        }
    )
    assert settings.audio_urls == ("s3://calls/", "https://media.example.com:443/")
    assert settings.output_prefixes == ("s3://out/transcripts/", "/srv/transcripts", "s3://archive/")
    for env in ({"ASR_AUDIO_URLS": "ftp://h/"}, {"ASR_OUTPUT_URL": "relative/dir"}):
        with pytest.raises(ConfigError, match=next(iter(env))):
            Settings.from_env(env)


def test_output_options_are_checked_against_the_allowed_targets():
    allowed = ("s3://out/transcripts/", "/srv/transcripts")
    opts = parse_options(
        {"output_url": "s3://OUT/transcripts/team-a", "output_formats": ["srt", "json", "srt"]},
        output_prefixes=allowed,
    )
    assert opts.output_url == "s3://out/transcripts/team-a/" and opts.output_formats == ("srt", "json")
    assert parse_options({"output_url": "/srv/transcripts/a/../b"}, output_prefixes=allowed).output_url == (
        "/srv/transcripts/b"
    )
    for bad in ("/srv/transcripts-evil", "/srv/transcripts/../etc", "s3://other/", "relative", "https://h/"):
        with pytest.raises(InvalidOptionsError):
            parse_options({"output_url": bad}, output_prefixes=allowed)
    with pytest.raises(InvalidOptionsError, match="outputs are off"):
        parse_options({"output_url": "/srv/transcripts"})
    with pytest.raises(InvalidOptionsError, match="output_formats"):
        parse_options({"output_formats": ["docx"]})


def test_outputs_are_named_after_the_audio():
    assert output_name("s3://b/calls/2024/call%2001.wav") == "call 01"
    assert output_name("https://h/a/meeting.mp3?X-Amz-Signature=x") == "meeting"
    assert output_name("/data/x.tar.flac") == "x.tar"
    assert output_name("https://h/") == "audio"


def test_an_output_directory_reached_through_a_symlink_is_judged_where_it_leads(tmp_path):
    allowed = tmp_path / "transcripts"
    allowed.mkdir()
    (allowed / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert parse_options({"output_url": str(allowed / "team")}, output_prefixes=(str(allowed),)).output_url
    with pytest.raises(InvalidOptionsError):
        parse_options({"output_url": str(allowed / "escape")}, output_prefixes=(str(allowed),))


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDenied", 403, "AccessDeniedError"),
        ("InvalidAccessKeyId", 403, "AccessDeniedError"),
        ("NoSuchKey", 404, "AudioNotFoundError"),
        ("NoSuchBucket", 404, "AudioNotFoundError"),
        ("SlowDown", 503, "TransientError"),
        ("InternalError", 500, "TransientError"),
        ("InvalidObjectState", 403, "AccessDeniedError"),
        ("InvalidRange", 416, "AudioUnreadableError"),
    ],
)
def test_s3_errors_map_to_typed_errors(code, status, expected):
    from botocore.exceptions import ClientError

    from worker.pipeline.fetch import raise_s3_error

    error = ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )
    with pytest.raises(Exception) as raised:
        raise_s3_error(error, "s3://b/k?X-Amz-Signature=s")
    assert type(raised.value).__name__ == expected
    assert "X-Amz-Signature" not in str(raised.value)


@pytest.mark.parametrize(("url", "package"), [("gs://b/k.wav", "gcsfs"), ("az://c/k.wav", "adlfs")])
def test_gs_and_az_need_their_backend_on_the_worker(url, package, monkeypatch):
    import worker.pipeline.urls as urls

    monkeypatch.setattr(urls, "installed", lambda name: name != package)
    with pytest.raises(InvalidPathError, match=f"need the {package} package"):
        check_allowed(url, ("gs://", "az://"))
    with pytest.raises(InvalidPathError):
        parse_prefix(url)  # an ASR_AUDIO_URLS entry the worker could never read fails at start
    with pytest.raises(InvalidPathError):
        parse_prefix(url.split("://")[0] + "://")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError("b/k"), "AudioNotFoundError"),
        (OSError("Forbidden: b/k"), "AccessDeniedError"),  # gcsfs's 403
        (PermissionError("b/k"), "AccessDeniedError"),
        (type("HttpResponseError", (Exception,), {"status_code": 403})(), "AccessDeniedError"),
        (type("HttpError", (Exception,), {"code": 400})(), "AudioUnreadableError"),
        (type("HttpError", (Exception,), {"code": 503})(), "TransientError"),
        (type("ServiceRequestError", (Exception,), {})(), "TransientError"),
        (TimeoutError(), "TransientError"),
    ],
)
def test_gs_and_az_errors_map_to_typed_errors(error, expected):
    from worker.pipeline.cloud import typed_error

    typed = typed_error(error, "gs://b/k.wav?sig=secret")
    assert type(typed).__name__ == expected
    assert "secret" not in str(typed)
