"""The page at ``/``: its headers, its files, and the rules its modules keep (no markup from text).

The page in a real browser is tests/integration/test_web_ui.py.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer.api import routes_ui
from producer.api.errors import WORKER_ERRORS, install_handlers

STATIC = routes_ui.STATIC
MODULES = sorted(STATIC.glob("*.js"))


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()  # the page's routes alone: no service, no Redis
    install_handlers(app)
    app.include_router(routes_ui.router)
    return TestClient(app)


class _Markup(HTMLParser):
    """The page's scripts and style sheets, and any inline style or handler attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.links: list[str | None] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found.get("src"))
        if tag == "link":
            self.links.append(found.get("href"))
        self.inline += [f"{tag} {name}" for name in found if name == "style" or name.startswith("on")]


def test_the_page_has_a_strict_policy_and_no_inline_code(client: TestClient):
    answer = client.get("/")
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy and "unsafe" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    markup = _Markup()
    markup.feed(answer.text)
    assert markup.scripts == ["/ui/app.js"] and markup.inline == []
    # Everything the page loads is one of its own files.
    for path in [*markup.scripts, *markup.links]:
        assert path is not None and path.startswith("/ui/") and client.get(path).status_code == 200


def test_every_file_is_served_with_its_type_and_the_policy(client: TestClient):
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    for path in STATIC.iterdir():
        answer = client.get(f"/ui/{path.name}")
        assert answer.status_code == 200 and answer.content == path.read_bytes()
        assert answer.headers["content-type"].startswith(types[path.suffix])
        assert answer.headers["content-security-policy"] == routes_ui.CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "name", ["..%2Froutes_ui.py", "..%2F..%2Fsettings.py", ".hidden", "missing.js", "%2Fetc%2Fpasswd"]
)
def test_nothing_outside_the_static_files_is_served(client: TestClient, name: str):
    answer = client.get(f"/ui/{name}")
    assert answer.status_code == 404
    assert "error" in answer.json()


def test_modules_import_only_each_other():
    for module in MODULES:
        for target in re.findall(r'from "([^"]+)"', module.read_text()):
            assert target.startswith("./") and (STATIC / target[2:]).is_file(), f"{module.name}: {target}"


def test_modules_never_parse_text_as_markup():
    for module in MODULES:
        source = module.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
            assert sink not in source, f"{module.name} uses {sink}"
        # The key goes only in a header: no URL is built with it.
        assert not re.search(r"[?&]\w*key\w*=", source), module.name


def test_every_worker_error_has_plain_words():
    source = (STATIC / "errors.js").read_text()
    table = source.split("const WORKER_ERRORS = {", 1)[1].split("};", 1)[0]
    described = set(re.findall(r"^\s+(\w+):", table, flags=re.MULTILINE))
    assert set(WORKER_ERRORS) <= described, set(WORKER_ERRORS) - described
