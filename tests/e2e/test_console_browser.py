"""The sandbox console in a real headless Chromium (Debian's chromium + chromedriver, selenium).

Starts ``giftsync sandbox --port 0`` as a process (twins, daemon, console), submits a store
redemption in the console's form as shop staff would, and sees the outcome, the new balance
and the store's email appear; then stops the sandbox with SIGTERM and expects a clean exit
(the daemon released its lease). Skips only when chromium or chromedriver is missing
(``scripts/_browser.sh`` installs them).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GIFTSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GIFTSYNC_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1440,1000"]

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


def _missing_browser() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        return f"{' and '.join(missing)} not installed (run scripts/_browser.sh: apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def sandbox(tmp_path):
    """``giftsync sandbox --port 0`` as a process; yields (console URL, process, output lines)."""
    lines: list[str] = []
    err = open(tmp_path / "sandbox.stderr", "w")
    proc = subprocess.Popen([sys.executable, "-m", "giftsync", "sandbox", "--port", "0", "--interval", "1",
                             "--dir", str(tmp_path / "world")],
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
    threading.Thread(target=pump, daemon=True).start()
    url = None
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        for line in list(lines):
            m = re.match(r"console: (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if url is None:
        proc.kill()
        err.close()
        pytest.fail("giftsync sandbox did not print its console address:\n"
                    + (tmp_path / "sandbox.stderr").read_text()[-4000:])
    try:
        yield url, proc, tmp_path / "sandbox.stderr"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        err.close()


@pytest.fixture
def browser(tmp_path):
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, predicate, timeout: float, what: str, stderr_path: Path | None = None):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: predicate(d))
    except TimeoutException:
        shot = Path(tempfile.gettempdir()) / "giftsync-console-failure.png"
        driver.save_screenshot(str(shot))
        tail = stderr_path.read_text()[-3000:] if stderr_path and stderr_path.exists() else ""
        pytest.fail(f"timed out after {timeout}s waiting for {what} (screenshot: {shot})\n--- sandbox log ---\n{tail}")


def test_redeem_a_card_in_the_console(browser, sandbox, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, proc, stderr_path = sandbox
    d = browser
    d.get(url)
    _wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 20,
          "the console to load")
    _wait(d, lambda d: d.find_element(By.ID, "daemon-status").get_attribute("data-state") == "running", 60,
          "the daemon to show as running", stderr_path)

    # the demo list is the one place whole codes are shown; take the $100 card from it
    demo = d.find_elements(By.CSS_SELECTOR, "[data-test=demo-card]")
    assert len(demo) >= 5
    card = demo[0]
    code = card.find_element(By.CSS_SELECTOR, "[data-test=demo-code]").text.replace(" ", "")
    last4 = card.get_attribute("data-last4")
    assert len(code) == 16 and code.endswith(last4)
    card.find_element(By.XPATH, ".//button[text()='Redeem']").click()
    code_input = d.find_element(By.ID, "redeem-code")
    assert code_input.get_attribute("value") == code

    # the Store Redemptions form, as staff fill it in
    Select(d.find_element(By.ID, "redeem-store")).select_by_visible_text("Harbour Street")
    d.find_element(By.ID, "redeem-amount").send_keys("12.50")
    d.find_element(By.ID, "redeem-staff").send_keys("Sam")
    d.find_element(By.ID, "redeem-note").send_keys("a scarf and a mug")
    d.find_element(By.ID, "redeem-submit").click()

    result = d.find_element(By.ID, "redeem-result")
    _wait(d, lambda d: result.get_attribute("data-record"), 15, "the record to be created", stderr_path)
    _wait(d, lambda d: result.get_attribute("data-status") in ("Done", "Rejected"), 120,
          "giftsync to process the redemption", stderr_path)
    assert result.get_attribute("data-status") == "Done", result.text
    outcome = result.find_element(By.CSS_SELECTOR, "[data-test=result-outcome]").text
    balance = result.find_element(By.CSS_SELECTOR, "[data-test=result-balance]").text
    assert outcome == "Redeemed"
    assert balance == "$87.50"
    assert result.find_element(By.CSS_SELECTOR, "[data-test=result-card]").text.endswith(last4)

    # the store's email, as the shop reads it
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#redeem-result [data-test=result-email]"), 90,
          "the store's email", stderr_path)
    email = result.find_element(By.CSS_SELECTOR, "[data-test=result-email]")
    assert email.get_attribute("data-to") == "harbour.street@shops.example.com"
    subject = email.find_element(By.CSS_SELECTOR, "[data-test=email-subject]").text
    body = email.find_element(By.CSS_SELECTOR, "[data-test=email-body]").text
    assert "Redeemed" in subject or "Redeemed" in body
    assert "87.50" in body, f"the store's email should state the balance after:\n{subject}\n{body}"
    assert last4 in (subject + body).upper(), f"the store's email should name the card's last 4:\n{subject}\n{body}"
    assert code not in (subject + body).upper().replace(" ", "")

    # the Emails tab shows it too
    d.find_element(By.ID, "view-tab-outbox").click()
    _wait(d, lambda d: d.find_elements(
        By.CSS_SELECTOR, "[data-test=email][data-to='harbour.street@shops.example.com']"), 15,
        "the email in the Emails tab", stderr_path)

    # the ledger: a REDEEM receipt with the balance after, newest first
    d.find_element(By.ID, "view-tab-receipts").click()

    def first_receipt(d):
        rows = d.find_elements(By.CSS_SELECTOR, "[data-test=table-receipts] tbody tr")
        if not rows:
            return None
        cells = {c.get_attribute("data-col"): c.text for c in rows[0].find_elements(By.TAG_NAME, "td")}
        return cells if cells.get("Activity") == "REDEEM" else None
    receipt = _wait(d, first_receipt, 15, "the REDEEM receipt at the top of Receipts", stderr_path)
    assert receipt["Balance after"] == "$87.50"
    assert receipt["Card"].endswith(last4)

    # the mirror in Airtable and the card in Shopify agree
    d.find_element(By.ID, "view-tab-gift-cards").click()
    _wait(d, lambda d: any(r.text.startswith("•••• •••• •••• " + last4) and "$87.50" in r.text
                           for r in d.find_elements(By.CSS_SELECTOR, "[data-test=table-gift-cards] tbody tr")),
          15, "the Gift Cards mirror at $87.50", stderr_path)
    d.find_element(By.ID, "view-tab-shopify-cards").click()
    _wait(d, lambda d: any(last4 in r.text and "$87.50" in r.text
                           for r in d.find_elements(By.CSS_SELECTOR, "[data-test=table-shopify-cards] tbody tr")),
          15, "the Shopify card at $87.50", stderr_path)

    # nowhere but the demo list does the whole code appear
    d.find_element(By.ID, "view-tab-store-redemptions").click()
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=table-store-redemptions] tbody tr"), 15,
          "the Store Redemptions table", stderr_path)
    views = d.find_element(By.CSS_SELECTOR, ".views").text.upper().replace(" ", "")
    assert code not in views
    d.save_screenshot(str(tmp_path / "console.png"))

    # Ctrl-C / SIGTERM: the daemon stops first and releases its lease, then everything else
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    log = stderr_path.read_text()
    assert "lease released" in log
    assert "daemon stopped (exit code 0)" in log
