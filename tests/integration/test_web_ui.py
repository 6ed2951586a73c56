"""The page at ``/`` in a real browser: headless Chromium driven by selenium, against a real
uvicorn API, a real worker (tiny.en) and Redis.

Uploads real speech (jfk.flac), follows its progress, reads the transcript against the
player, downloads it, cancels a long job, shows typed errors, renders hostile names and
transcripts as text, works with the keyboard alone, and fetches nothing from elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
from celery import Celery

from evaluation.audio import concatenate
from producer.api.local import ApiServer, server_env
from producer.local import LocalStack
from tests.helpers import ROOT, audio_file, wait_until, worker_stack

pytestmark = pytest.mark.integration

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Debian's chromium and chromium-driver (.ci/run installs them as root)", allow_module_level=True
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements-dev.txt)")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

KEY = "web-test-key"
#: README's screenshot: rewritten only when asked (ASR_WEB_SCREENSHOT=docs/img/web.png), so a
#: test run leaves the tree clean; otherwise it goes to the test's temporary folder.
SCREENSHOT = os.environ.get("ASR_WEB_SCREENSHOT")
HOSTILE = "<img src=x onerror=alert(1)>"
# Room for the cancel test's 6-minute WAV (11.5 MB).
MAX_UPLOAD = 16 * 1024 * 1024
# Long enough for a loaded 2-core machine to decode jfk.flac with a cold worker child.
JOB_SECONDS = 180


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory, redis_server_binary: str) -> Iterator[LocalStack]:
    with worker_stack(tmp_path_factory, "web-worker") as running:
        yield running


@pytest.fixture(scope="module")
def api(web_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = server_env(tmp_path_factory.mktemp("uploads"), keys=KEY, ASR_API_MAX_UPLOAD_BYTES=str(MAX_UPLOAD))
    with ApiServer(web_stack.url, tmp_path_factory.mktemp("api") / "api.log", **env) as server:
        yield server


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        "--mute-audio",
        "--no-first-run",
        "--disable-background-networking",  # the browser's own update/safe-browsing calls
        "--disable-component-update",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    # Every request the page makes (the performance log) and every console message.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def page(browser: Any, api: ApiServer) -> Any:
    """The page, freshly loaded, with the key given once through its form."""
    browser.get(api.url)
    browser.execute_script("sessionStorage.clear()")
    browser.get(api.url)
    key = _visible(browser, "#key-input")
    key.send_keys(KEY, Keys.ENTER)
    _visible(browser, "#submit-form")
    return browser


def _visible(driver: Any, selector: str, timeout: float = 30) -> WebElement:
    def shown() -> WebElement | None:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return found[0] if found and found[0].is_displayed() else None

    return wait_until(shown, timeout, f"{selector} shown")


def _row(driver: Any, name: str) -> WebElement | None:
    """The job list's row for ``name``, compared as text."""
    return driver.execute_script(
        "return [...document.querySelectorAll('li.job')].find("
        "li => li.querySelector('.job-name').textContent === arguments[0]) || null",
        name,
    )


def _ended(driver: Any, name: str, timeout: float = JOB_SECONDS) -> WebElement:
    def ended() -> WebElement | None:
        row = _row(driver, name)
        state = row.get_attribute("data-state") if row else None
        return row if state in ("SUCCESS", "FAILURE", "REVOKED") else None

    return wait_until(ended, timeout, f"the job of {name!r} ended", interval=0.2)


def _upload(driver: Any, *paths: Path) -> None:
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))
    driver.find_element(By.ID, "start").click()


def _drop(driver: Any, path: Path) -> None:
    """Drop ``path`` on the page's drop zone: a real File (read by a scratch file input) in a drop event.

    WebDriver cannot drag from the desktop; this sends the page the event a drop from it
    sends, with the same kind of File in its DataTransfer.
    """
    scratch = driver.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.id = 'scratch';"
        " document.body.append(i); return i"
    )
    scratch.send_keys(str(path))
    driver.execute_script(
        "const input = document.getElementById('scratch'); const files = new DataTransfer();"
        " files.items.add(input.files[0]); input.remove();"
        " const zone = document.getElementById('drop-zone');"
        " for (const kind of ['dragenter', 'dragover', 'drop'])"
        "   zone.dispatchEvent(new DragEvent(kind, {dataTransfer: files, bubbles: true, cancelable: true}));"
    )


def _downloaded(folder: Path, name: str) -> str:
    path = folder / name
    wait_until(lambda: path.is_file() and path.stat().st_size > 0, 30, f"{name} downloaded", interval=0.1)
    return path.read_text()


def _no_alert(driver: Any) -> None:
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"an alert was opened: {text!r}")


def _requests(driver: Any) -> list[str]:
    """The URLs the browser asked for since the last look (Chrome's performance log, CDP events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _only_this_origin(driver: Any, origin: str) -> list[str]:
    urls = _requests(driver)
    foreign = [u for u in urls if not u.startswith((origin + "/", "blob:" + origin + "/", "data:"))]
    assert not foreign, f"requests outside {origin}: {foreign}"
    violations = [
        e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
    ]
    assert not violations, violations
    return urls


def _segments_text(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#segments .text')].map(t => t.textContent)"
    )


def test_upload_follow_read_seek_and_download(
    page: Any, api: ApiServer, http: httpx.Client, downloads: Path, tmp_path: Path
):
    # Record every state the job's row shows, as it changes.
    page.execute_script(
        "window.seen = []; new MutationObserver(ms => ms.forEach(m => m.target.matches('li.job') &&"
        " window.seen.push([m.target.dataset.state, m.target.querySelector('progress').value])))"
        ".observe(document.querySelector('#jobs'), {subtree: true, attributes: true,"
        " attributeFilter: ['data-state']})"
    )
    _upload(page, audio_file("jfk.flac"))
    row = _ended(page, "jfk.flac")
    assert row.get_attribute("data-state") == "SUCCESS", row.text
    seen = page.execute_script("return window.seen")
    states = [state for state, _ in seen]
    assert "PROGRESS" in states and states[-1] == "SUCCESS", seen
    percents = [p for state, p in seen if state == "PROGRESS"]
    assert percents == sorted(percents) and seen[-1][1] == 100, seen

    # The transcript shown is the one the API stored for this job.
    _visible(page, "#segments li")
    job_id = row.get_attribute("data-job-id")
    stored = http.get(f"/v1/jobs/{job_id}/transcript").json()
    assert page.find_element(By.ID, "transcript-name").text == "jfk.flac"
    shown = [" ".join(t.split()) for t in _segments_text(page)]  # the words joined, as HTML lays them out
    assert shown == [" ".join(s["text"].split()) for s in stored["segments"]]
    assert "country" in " ".join(_segments_text(page))

    # Click a word: the player seeks to it and its segment is highlighted.
    words = page.find_elements(By.CSS_SELECTOR, "#segments .word")
    assert len(words) == sum(len(s["words"]) for s in stored["segments"])
    word = words[len(words) // 2]
    start = float(word.get_attribute("data-start"))
    assert start > 1.0
    word.click()
    player = page.find_element(By.ID, "player")
    wait_until(
        lambda: abs(page.execute_script("return arguments[0].currentTime", player) - start) < 0.01,
        10,
        "the player seeked to the word",
    )
    segment = word.find_element(By.XPATH, "ancestor::li[1]")
    assert "current" in segment.get_attribute("class").split()

    # Search within the transcript.
    search = page.find_element(By.ID, "search")
    search.send_keys("country")
    matches = page.find_elements(By.CSS_SELECTOR, "#segments li.match")
    assert matches and all("country" in m.text.lower() for m in matches)
    assert page.find_element(By.ID, "search-count").text.endswith("match")
    shot = ROOT / SCREENSHOT if SCREENSHOT else tmp_path / "web.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert page.save_screenshot(str(shot)) and shot.read_bytes().startswith(b"\x89PNG")

    # Downloads come from the API (with the bearer header) and are saved as files.
    page.find_element(By.CSS_SELECTOR, 'button.download[data-format="srt"]').click()
    cues = list(srt.parse(_downloaded(downloads, "jfk.srt")))
    expected = list(srt.parse(http.get(f"/v1/jobs/{job_id}/transcript", params={"format": "srt"}).text))
    assert cues == expected and len(cues) >= 1
    for kind in ("txt", "vtt", "json"):
        page.find_element(By.CSS_SELECTOR, f'button.download[data-format="{kind}"]').click()
    assert "country" in _downloaded(downloads, "jfk.txt")
    assert _downloaded(downloads, "jfk.vtt").startswith("WEBVTT")
    assert json.loads(_downloaded(downloads, "jfk.json"))["segments"] == stored["segments"]
    # rttm needs speaker labels: the page offers it only with them, the API refuses it without.
    assert not page.find_element(By.CSS_SELECTOR, 'button.download[data-format="rttm"]').is_enabled()
    refused = http.get(f"/v1/jobs/{job_id}/transcript", params={"format": "rttm"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_format"

    urls = _only_this_origin(page, api.url)
    assert any(u.endswith(f"/v1/jobs/{job_id}/events") for u in urls)
    # The key never travels in a URL.
    assert not [u for u in urls if KEY in u]


def test_drop_a_long_file_and_cancel_it(page: Any, tmp_path: Path):
    long_file = concatenate(audio_file("jfk.flac"), 30, tmp_path / "long.wav")  # 6 minutes
    _drop(page, long_file)
    assert [li.text for li in page.find_elements(By.CSS_SELECTOR, "#chosen-files li")] == ["long.wav"]
    page.find_element(By.ID, "start").click()

    def running() -> WebElement | None:
        row = _row(page, "long.wav")
        return row if row and row.get_attribute("data-state") == "PROGRESS" else None

    row = wait_until(running, JOB_SECONDS, "the long job shows progress", interval=0.2)
    row.find_element(By.CSS_SELECTOR, "button.cancel").click()
    row = _ended(page, "long.wav", timeout=60)
    assert row.get_attribute("data-state") == "REVOKED"
    assert row.find_element(By.CSS_SELECTOR, ".error-words").text == "The job was cancelled."
    assert float(row.find_element(By.TAG_NAME, "progress").get_attribute("value")) < 100


def test_files_that_are_not_audio_show_typed_errors(page: Any, tmp_path: Path):
    fake = tmp_path / "broken.wav"  # named and typed as audio: the worker finds out
    fake.write_bytes(b"RIFF" + bytes(range(256)) * 64)
    text = tmp_path / "notes.txt"  # not named as audio: the API refuses it at once
    text.write_text("meeting notes\n")
    url = "https://audio.example/call.wav"  # a URL the workers are not allowed to read
    page.find_element(By.ID, "url-input").send_keys(url)
    _upload(page, fake, text)  # two files and the URL at once

    row = _ended(page, "broken.wav")
    assert row.get_attribute("data-state") == "FAILURE"
    assert row.find_element(By.CSS_SELECTOR, ".error-words").text.startswith(
        "The file could not be read as audio"
    )
    assert "AudioDecodeError" in row.find_element(By.CSS_SELECTOR, ".error-detail").text
    row = _ended(page, "notes.txt", timeout=30)
    assert row.get_attribute("data-state") == "FAILURE"
    assert row.find_element(By.CSS_SELECTOR, ".error-words").text == "That file is not audio or video."
    assert "unsupported_media_type" in row.find_element(By.CSS_SELECTOR, ".error-detail").text
    row = _ended(page, url)
    assert row.get_attribute("data-state") == "FAILURE"
    assert row.find_element(By.CSS_SELECTOR, ".error-words").text == (
        "The workers are not allowed to read audio from that place."
    )
    assert "PathNotAllowedError" in row.find_element(By.CSS_SELECTOR, ".error-detail").text


def _store_result(redis_url: str, result: dict[str, Any]) -> str:
    """A finished job with ``result`` in the real result backend, as a worker stores it."""
    job_id = str(uuid.uuid4())
    app = Celery(broker=redis_url, backend=redis_url)
    try:
        app.backend.store_result(job_id, result, "SUCCESS")
    finally:
        app.close()
    return job_id


def test_hostile_names_and_transcripts_are_text(
    page: Any, api: ApiServer, web_stack: LocalStack, tmp_path: Path, downloads: Path
):
    hostile_file = tmp_path / f"{HOSTILE}.flac"
    shutil.copy(audio_file("jfk.flac"), hostile_file)
    _upload(page, hostile_file)
    row = _ended(page, hostile_file.name)
    assert row.get_attribute("data-state") == "SUCCESS"
    assert row.find_element(By.CSS_SELECTOR, ".job-name").text == hostile_file.name

    texts = [f" {HOSTILE} hello", " <script>alert(2)</script><b>bold</b>", " &lt;i&gt; & fine"]
    result = {
        "text": "".join(texts),
        "language": "en",
        "duration": 6.0,
        "segments": [
            {"id": i, "start": 2.0 * i, "end": 2.0 * i + 2, "text": t, "speaker": f"SPEAKER_0{i % 2}"}
            for i, t in enumerate(texts)
        ],
    }
    job_id = _store_result(web_stack.url, result)
    page.find_element(By.ID, "open-id").send_keys(job_id, Keys.ENTER)
    row = _ended(page, job_id, timeout=60)
    row.find_element(By.CSS_SELECTOR, "button.open").click()
    wait_until(lambda: _segments_text(page) == texts, 30, "the hostile transcript shown as text")

    # Nothing of it became an element, and no script ran.
    assert page.find_elements(By.CSS_SELECTOR, "img, main script, b, i") == []
    _no_alert(page)
    # Speakers: coloured and named, and renamed everywhere at once.
    items = page.find_elements(By.CSS_SELECTOR, "#segments li")
    assert [i.get_attribute("class") for i in items] == [
        "segment speaker-0",
        "segment speaker-1",
        "segment speaker-0",
    ]
    names = page.find_elements(By.CSS_SELECTOR, "#segments .speaker-name")
    assert [n.text for n in names] == ["Speaker 1", "Speaker 2", "Speaker 1"]
    rename = page.find_element(By.ID, "speaker-name-0")
    rename.send_keys(Keys.CONTROL, "a")
    rename.send_keys(HOSTILE)
    assert [n.text for n in names] == [HOSTILE, "Speaker 2", HOSTILE]
    assert page.find_elements(By.CSS_SELECTOR, "img") == []
    # The API writes their turns as RTTM.
    page.find_element(By.CSS_SELECTOR, 'button.download[data-format="rttm"]').click()
    turns = [line.split() for line in _downloaded(downloads, f"{job_id}.rttm").splitlines()]
    assert [t[7] for t in turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    _no_alert(page)
    _only_this_origin(page, api.url)


def _tab_to(driver: Any, element_id: str, presses: int = 80) -> WebElement:
    """Press Tab until ``element_id`` has the focus (the test fails if Tab never reaches it)."""
    body = driver.switch_to.active_element
    for _ in range(presses):
        active = driver.switch_to.active_element
        if active.get_attribute("id") == element_id:
            return active
        webdriver.ActionChains(driver).send_keys(Keys.TAB).perform()
    pytest.fail(f"Tab never reached #{element_id} (from {body.get_attribute('id')!r})")


def test_keyboard_alone_uploads_starts_plays_and_downloads(
    browser: Any, api: ApiServer, tmp_path: Path, downloads: Path
):
    browser.get(api.url)
    browser.execute_script("sessionStorage.clear()")
    browser.get(api.url)
    _visible(browser, "#key-input")
    assert browser.switch_to.active_element.get_attribute("id") == "key-input"
    webdriver.ActionChains(browser).send_keys(KEY, Keys.ENTER).perform()
    _visible(browser, "#submit-form")

    clip = tmp_path / "keyboard.flac"
    shutil.copy(audio_file("jfk.flac"), clip)
    # A file input's dialog is the browser's own: WebDriver types the path into the focused input.
    _tab_to(browser, "file-input").send_keys(str(clip))
    _tab_to(browser, "start")
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    row = _ended(browser, clip.name)
    assert row.get_attribute("data-state") == "SUCCESS"
    _visible(browser, "#segments li")
    assert browser.find_element(By.ID, "transcript-name").text == clip.name

    _tab_to(browser, "play")
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    player = browser.find_element(By.ID, "player")
    wait_until(
        lambda: browser.execute_script(
            "return !arguments[0].paused && arguments[0].currentTime > 0.2", player
        ),
        30,
        "the player plays",
    )
    # The segment being played is the highlighted one.
    wait_until(
        lambda: browser.execute_script(
            "const t = arguments[0].currentTime, now = document.querySelector('#segments li.current');"
            " const words = now ? now.querySelectorAll('.word') : [];"
            " return words.length > 0 && words[0].dataset.start - 0.3 <= t"
            " && t <= Number(words[words.length - 1].dataset.end) + 0.5",
            player,
        ),
        10,
        "the segment played is highlighted",
    )
    browser.execute_script("arguments[0].pause()", player)

    srt_button = browser.find_element(By.CSS_SELECTOR, 'button.download[data-format="srt"]')
    for _ in range(20):
        if browser.switch_to.active_element == srt_button:
            break
        webdriver.ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == srt_button
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert list(srt.parse(_downloaded(downloads, "keyboard.srt")))


def test_the_page_is_served_with_a_strict_policy(api: ApiServer):
    answer = httpx.get(api.url + "/")  # no key: the page holds no secret
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'" and policy["media-src"] == "'self' blob:"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(api.url + "/ui/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == answer.headers["content-security-policy"]
    assert httpx.get(api.url + "/ui/nothing.js").status_code == 404
