"""The wallboard in a real browser (headless Chromium through Selenium and Debian's chromedriver):
the page shows the queues and the agents; an agent put on break through the API changes on the
page within a second. Keeps a screenshot. Prints one line: ok ... or FAIL reason.

    python3 wallboard.py BASE_URL READ_TOKEN FULL_TOKEN AGENT QUEUE SCREENSHOT
"""
import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

base, read, full, agent, queue, shot = sys.argv[1:7]


def fail(why):
    print("FAIL " + why)
    sys.exit(1)


opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,720", "--disable-dev-shm-usage"):
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    driver.get(f"{base}/?token={read}")
    deadline = time.time() + 15
    while time.time() < deadline:
        tiles = driver.find_elements(By.CSS_SELECTOR, f'[data-queue="{queue}"]')
        cards = driver.find_elements(By.CSS_SELECTOR, f'[data-agent="{agent}"]')
        status = driver.find_element(By.ID, "status").text
        if tiles and cards and status.startswith("heard from Parley"):
            break
        time.sleep(0.1)
    else:
        fail(f"the page never showed queue {queue} and agent {agent} (status: {driver.find_element(By.ID, 'status').text})")
    before = None
    for _ in range(50):
        try:
            before = driver.find_element(By.CSS_SELECTOR, f'[data-agent="{agent}"]').get_attribute("class")
            break
        except StaleElementReferenceException:
            time.sleep(0.02)
    req = urllib.request.Request(f"{base}/v1/agents/{agent}/state", method="PUT",
                                 data=json.dumps({"state": "break", "reason": "wallboard test"}).encode(),
                                 headers={"Authorization": "Bearer " + full, "Content-Type": "application/json"})
    t0 = time.time()
    urllib.request.urlopen(req, timeout=5).read()
    changed = None
    while time.time() - t0 < 3:
        # The page draws an agent's card again on each of its events: a card found may be
        # replaced before it is read, and is then looked up again.
        try:
            card = driver.find_element(By.CSS_SELECTOR, f'[data-agent="{agent}"]')
            if "break" in card.get_attribute("class").split() and "wallboard test" in card.text.lower():
                changed = time.time() - t0
                break
        except StaleElementReferenceException:
            pass
        time.sleep(0.02)
    driver.save_screenshot(shot)
    if changed is None:
        fail(f"agent {agent} did not change on the page in 3 s (class before: {before})")
    if changed > 1.0:
        fail(f"agent {agent} changed on the page after {changed:.2f} s, over a second")
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("the browser logged errors: " + "; ".join(e.get("message", "")[:200] for e in errors))
    print(f"ok queue={queue} agent={agent} before={before} changed_in_ms={int(changed * 1000)} screenshot={shot}")
finally:
    driver.quit()
