"""`icdreason audit serve` as a real process: killed and restarted without losing a decision, refused ports, and a
review of three cases by keyboard in headless Chromium (Debian's `chromium` and `chromium-driver` packages).

The browser test installs nothing: it skips, saying why, when /usr/bin/chromium, /usr/bin/chromedriver or selenium
are missing (`.ci/run` installs the two Debian packages; `pip install -e ".[test]"` brings selenium).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from audit_fixtures import NOTES, record, rows, write_predictions
from bs4 import BeautifulSoup

ICDREASON = str(Path(sys.executable).with_name("icdreason"))
CHROMIUM = os.environ.get("ICDREASON_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ICDREASON_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Headless Chromium as root in a closed network: no sandbox (root), no GPU, and no background connections
#: (they would be refused and slow the start down); a fresh profile per test.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,860")


class Server:
    """`icdreason audit serve` in its own process; ``urls`` maps each reviewer to the address it printed."""

    started: list[subprocess.Popen] = []  # killed after each test, however it ended (see kill_leftover_servers)

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path):
        self.log = cwd / f"serve-{time.monotonic_ns()}.err"
        self.proc = subprocess.Popen([ICDREASON, "audit", "serve", *args, "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=open(self.log, "w"), text=True, env=env, cwd=cwd)
        Server.started.append(self.proc)
        self.urls: dict[str, str] = {}
        reviewers = args.count("--reviewer")
        deadline = time.monotonic() + 90
        while len(self.urls) < reviewers:
            line = self.proc.stdout.readline()
            assert line and time.monotonic() < deadline, self.log.read_text()
            found = re.match(r"^(\S+): (http://127\.0\.0\.1:\d+/\?token=\S+)$", line.strip())
            if found:
                self.urls[found[1]] = found[2]

    def stop(self) -> str:
        """SIGTERM (as Ctrl-C would): uvicorn shuts down and the command prints its summary."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log.read_text()
        return self.log.read_text()


@pytest.fixture(autouse=True)
def kill_leftover_servers():
    """A failed assertion must not leave a server running after its test."""
    yield
    while Server.started:
        proc = Server.started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def serve_env(built_kb) -> dict[str, str]:
    return dict(os.environ, ICDREASON_KB=str(built_kb), ICDREASON_AUDIT_LOCK_TIMEOUT="5")


def post_from(client: httpx.Client, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
    soup = BeautifulSoup(page.text, "html.parser")
    form = {name: soup.find("input", attrs={"name": name})["value"] for name in ("csrf", "case_id")}
    return client.post("/review", data={**form, "action": action, **fields}, follow_redirects=True)


def test_a_killed_server_loses_nothing_and_the_next_resumes(serve_env, tmp_path):
    preds = write_predictions(tmp_path / "pred.jsonl")
    db = tmp_path / "audit.duckdb"
    server = Server([str(preds), "--reviewer", "alice"], serve_env, tmp_path)
    base, token = server.urls["alice"].split("/?token=")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/review").status_code == 403
        page = client.get(f"/?token={token}", follow_redirects=True)
        assert "Case 1/5" in page.text and "token" not in str(page.url)
        page = post_from(client, page, "accept")
        page = post_from(client, page, "correct", code="E11.65")
        assert "Case 3/5" in page.text
    server.proc.kill()  # SIGKILL: no chance to clean up
    server.proc.wait()
    assert [r[1:4] for r in rows(db)] == [("n1", "accept", None), ("n2", "correct", "E11.65")]

    again = Server([str(preds), "--reviewer", "alice"], serve_env, tmp_path)
    base, token2 = again.urls["alice"].split("/?token=")
    assert token2 != token
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get(f"/?token={token}").status_code == 403
        page = client.get(f"/?token={token2}", follow_redirects=True)
        assert "Case 3/5" in page.text and "2/5 decided" in page.text
        post_from(client, page, "accept")
    log = again.stop()
    assert "alice: 1 accepted, 0 corrected, 0 rejected, 0 skipped this session; 3 decided in all, 2 to go" in log
    assert [r[1:3] for r in rows(db)][-1] == ("n3", "accept")


def test_a_locked_database_keeps_the_decision_and_writes_it_with_the_next(serve_env, tmp_path):
    preds = write_predictions(tmp_path / "pred.jsonl")
    db = tmp_path / "audit.duckdb"
    server = Server([str(preds), "--reviewer", "alice"], {**serve_env, "ICDREASON_AUDIT_LOCK_TIMEOUT": "0.3"},
                    tmp_path)
    base, token = server.urls["alice"].split("/?token=")
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get(f"/?token={token}", follow_redirects=True)
        holder = duckdb.connect(str(db))  # another process (this test) holds the write lock
        try:
            page = post_from(client, page, "accept")
        finally:
            holder.close()
        notice = BeautifulSoup(page.text, "html.parser").find(id="notice")
        assert "warning" in notice["class"] and "is locked by another process" in notice.get_text()
        assert "decision kept in" in notice.get_text() and Path(f"{db}.alice.pending.csv").exists()
        assert "Case 2/5" in page.text
        post_from(client, page, "accept")
    server.stop()
    assert [r[1:3] for r in rows(db)] == [("n1", "accept"), ("n2", "accept")]
    assert not Path(f"{db}.alice.pending.csv").exists()


def test_a_port_in_use_and_an_open_address_are_said_plainly(serve_env, tmp_path):
    preds = write_predictions(tmp_path / "pred.jsonl")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([ICDREASON, "audit", "serve", str(preds), "--reviewer", "alice", "--port", str(port)],
                              capture_output=True, text=True, env=serve_env, cwd=tmp_path, timeout=120)
        assert done.returncode == 2
        assert f"port {port} on 127.0.0.1 is in use: pass another --port (0 picks a free one)" in done.stderr
        # all interfaces on the same port fail to bind too, so this never listens beyond this machine
        done = subprocess.run([ICDREASON, "audit", "serve", str(preds), "--reviewer", "alice", "--port", str(port),
                               "--host", "0.0.0.0"], capture_output=True, text=True, env=serve_env, cwd=tmp_path,
                              timeout=120)
    assert done.returncode == 2
    assert "warning: listening on 0.0.0.0: anyone who can reach this machine" in " ".join(done.stderr.split())
    assert "is in use" in done.stderr


# -- the browser -----------------------------------------------------------------------------------------------------
def chromium():
    """A headless Chromium driven by the system chromedriver (Selenium Manager is never asked to download one)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.skip(f"no browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={Path(os.environ['ICDREASON_HOME']) / 'chromium'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def test_three_cases_reviewed_by_keyboard_in_a_real_browser(serve_env, tmp_path):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    records = [record(*n) for n in NOTES]
    records[3]["note"] = ("Periumbilical pain. <script>window.pwned = 1</script> "
                          '<img src=x onerror="window.pwned = 2"> javascript:window.pwned = 3')
    preds = write_predictions(tmp_path / "pred.jsonl", records)
    server = Server([str(preds), "--reviewer", "alice"], serve_env, tmp_path)
    driver = chromium()
    try:
        # elements go stale while the next page loads: the waits retry through that
        wait = WebDriverWait(driver, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

        def keys(*sequence: str) -> None:
            ActionChains(driver).send_keys(*sequence).perform()

        def on_case(n: int) -> None:
            wait.until(lambda d: d.find_element(By.ID, "case-number").text == f"Case {n}/5")

        driver.get(server.urls["alice"])
        on_case(1)
        assert driver.find_element(By.ID, "model-code").text == "I21.4"
        keys("a")                                                      # accept
        on_case(2)
        keys("c", "E11.6")                                             # correct: live validation as you type
        status = driver.find_element(By.ID, "correct-code-status")
        wait.until(lambda d: "header, not billable" in status.text)
        first = driver.find_elements(By.CSS_SELECTOR, "#correct-code-list button")[0].text.split()[0]
        driver.save_screenshot(str(tmp_path / "review.png"))
        keys(Keys.TAB)                                                 # Tab takes the first suggestion
        wait.until(lambda d: status.text.startswith("✓ "))
        assert driver.find_element(By.ID, "correct-code").get_attribute("value") == first
        keys(Keys.ENTER)
        on_case(3)
        keys("r", "6", "jumps to pneumonia", Keys.ENTER)               # reject: premature closure, a comment
        on_case(4)
        assert driver.execute_script("return window.pwned") is None
        note = driver.find_element(By.ID, "note").text
        assert "<script>window.pwned = 1</script>" in note and 'onerror="window.pwned = 2"' in note
    finally:
        driver.quit()
        log = server.stop()
    assert rows(tmp_path / "audit.duckdb") == [
        ("alice", "n1", "accept", None, None, None, False),
        ("alice", "n2", "correct", first, None, None, False),
        ("alice", "n3", "reject", None, "premature_closure", "jumps to pneumonia", False),
    ]
    assert first.startswith("E11.6")
    assert (tmp_path / "review.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 accepted, 1 corrected, 1 rejected" in log
