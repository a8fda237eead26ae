"""Opens a layerwise report in Debian's headless Chromium, from file://, and checks it.

usage: check_report.py REPORT_DIR SHOTS_DIR PAGE [PAGE ...]

For each PAGE (relative to REPORT_DIR): it loads with no console error and no request outside
REPORT_DIR, every <img> has loaded (naturalWidth > 0), no script planted in the data ran
(window.pwned stays undefined, no alert opened), and a full-page screenshot is written to
SHOTS_DIR and is not blank. On layer pages (with a #channels table) a click on the "mean"
heading sorts the rows by mean, largest first, and a second click smallest first.
Prints one JSON line per page (with load_ms, the time to its load event, every image loaded);
exits 1 on the first failure.
"""

import json
import sys
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900",
        "--allow-file-access-from-files",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def fail(page, message):
    print(json.dumps({"page": page, "ok": False, "error": message}))
    sys.exit(1)


def requests(driver):
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def not_blank(path):
    image = Image.open(path).convert("L")
    low, high = image.getextrema()
    colours = image.getcolors(maxcolors=1 << 16)
    return high - low > 64 and (colours is None or len(colours) > 8)


def check_sort(driver, page):
    table = driver.find_element(By.ID, "channels")
    headings = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    column = headings.index("mean")

    def means():
        return driver.execute_script(
            "return Array.from(arguments[0].tBodies[0].rows, r => parseFloat(r.cells[arguments[1]].dataset.v))",
            table, column)

    before = means()
    button = table.find_elements(By.CSS_SELECTOR, "thead th")[column].find_element(By.TAG_NAME, "button")
    button.click()
    down = means()
    button.click()
    up = means()
    if down != sorted(before, reverse=True) or up != sorted(before):
        fail(page, "the mean heading does not sort the channel table")
    if len(before) > 1 and before == down:
        fail(page, "sorting did not reorder the table")
    return len(before)


def scroll_through(driver):
    """Scrolls down a screen at a time (so that lazy images load), then waits up to 20 s for
    every image to finish."""
    height = driver.execute_script("return document.body.scrollHeight")
    for y in range(0, height + 900, 800):
        driver.execute_script("window.scrollTo(0, arguments[0])", y)
    for _ in range(200):
        if driver.execute_script("return Array.from(document.images).every(i => i.complete)"):
            return
        time.sleep(0.1)


def check(driver, root, shots, page):
    url = (root / page).as_uri()
    driver.get(url)
    load_ms = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime")
    scroll_through(driver)
    try:
        alert = driver.switch_to.alert
        fail(page, f"an alert opened: {alert.text!r}")
    except NoAlertPresentException:
        pass
    if driver.execute_script("return typeof window.pwned") != "undefined":
        fail(page, "a script planted in the data ran")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        fail(page, f"console errors: {errors}")
    seen = requests(driver)
    if url not in seen:
        fail(page, f"the browser's network log does not show the page itself: {seen[:5]}")
    outside = [u for u in seen if not u.startswith(root.as_uri() + "/")]
    if outside:
        fail(page, f"requests outside the report: {outside}")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    if broken:
        fail(page, f"images that did not load: {broken[:5]}")
    images = driver.execute_script("return document.images.length")
    driver.execute_script("window.scrollTo(0, 0)")
    driver.set_window_size(1280, 1400)
    shot = shots / (page.replace("/", "_").removesuffix(".html") + ".png")
    driver.save_screenshot(str(shot))
    driver.set_window_size(1280, 900)
    if not not_blank(shot):
        fail(page, f"the screenshot {shot} is blank")
    sorted_rows = check_sort(driver, page) if driver.find_elements(By.ID, "channels") else None
    print(json.dumps({"page": page, "ok": True, "images": images, "sorted_rows": sorted_rows,
                      "load_ms": round(load_ms, 1), "screenshot": str(shot)}))


def main():
    root, shots, pages = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3:]
    shots.mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        for page in pages:
            check(driver, root, shots, page)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
