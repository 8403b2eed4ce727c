"""Drives the board of a running `tracker serve` in headless Chromium (selenium), for
tests/board.rs. Arguments: the board's URL (with its token), the tracker binary, the tracker
(--db), and where to save a screenshot ("-" for nowhere). Prints one JSON line per step."""

import json
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

url, binary, db, shot = sys.argv[1:5]


def say(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


def tracker(*args):
    out = subprocess.run([binary, "--db", db, "--json", *args], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30)
    if out.returncode != 0:
        raise SystemExit(f"tracker {args}: {out.stderr}")
    return json.loads(out.stdout)


def texts(driver, selector):
    # Read in one script: the page redraws every second, so element handles go stale.
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)", selector)


def column(driver, name):
    return texts(driver, f"#col-{name} .card")


def press(driver, key):
    # To whatever has the focus, as a person's keyboard does.
    ActionChains(driver).send_keys(key).perform()


def wait_for(what, check, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"]:
    options.add_argument(arg)
driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
try:
    driver.get(url)
    wait_for("the columns", lambda: column(driver, "ready"))
    say("loaded", ready=column(driver, "ready"), claimed=column(driver, "claimed"),
        blocked=column(driver, "blocked"), done=column(driver, "done"),
        epics=texts(driver, "#epic-list .card"),
        live=driver.find_element(By.ID, "live").text,
        url_after=driver.current_url)

    # The hostile title is text: no element made of it, no alert raised.
    try:
        driver.switch_to.alert
        alert = True
    except NoAlertPresentException:
        alert = False
    say("xss", images=len(driver.find_elements(By.TAG_NAME, "img")), alert=alert,
        shown=[t for t in column(driver, "ready") if "onerror" in t])

    # A change made by another process shows without a reload.
    wait_for("the live stream", lambda: driver.find_element(By.ID, "live").text == "live")
    start = time.monotonic()
    tracker("--as", "cli-agent", "new", "made while the board was open")
    wait_for("the new item", lambda: any("made while the board was open" in t for t in column(driver, "ready")))
    created_ms = (time.monotonic() - start) * 1000
    start = time.monotonic()
    tracker("--as", "agent-9", "claim", "1", "--ttl", "10m")
    wait_for("the claim", lambda: any("agent-9" in t for t in column(driver, "claimed")))
    claimed_ms = (time.monotonic() - start) * 1000
    say("live", created_ms=round(created_ms), claimed_ms=round(claimed_ms),
        claimed=column(driver, "claimed"))

    # By keyboard: focus a card, Enter opens its detail, Esc closes it and gives focus back.
    driver.execute_script("document.querySelector('#col-claimed .card').focus()")
    press(driver, Keys.ARROW_RIGHT)
    moved = driver.execute_script("return document.activeElement.innerText")
    press(driver, Keys.ARROW_LEFT)
    press(driver, Keys.ENTER)
    wait_for("the detail", lambda: driver.find_element(By.ID, "detail").is_displayed())
    wait_for("the detail's log", lambda: driver.find_elements(By.CSS_SELECTOR, "#d-log li"))
    detail = {
        "title": driver.find_element(By.ID, "d-title").text,
        "meta": driver.find_element(By.ID, "d-meta").text,
        "body": driver.find_element(By.ID, "d-body").text,
        "comments": texts(driver, "#d-comments li"),
        "log": texts(driver, "#d-log li"),
    }
    press(driver, Keys.ESCAPE)
    wait_for("the detail to close", lambda: not driver.find_element(By.ID, "detail").is_displayed())
    if shot != "-":
        driver.save_screenshot(shot)
    say("keyboard", moved_to=moved, detail=detail,
        focus_back=driver.execute_script("return document.activeElement.dataset.num"))
    logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    say("console", errors=[e.get("message") for e in logs])
finally:
    driver.quit()
