"""A real browser for the tests where a person would click: Debian's headless
Chromium driven by Debian's chromedriver through selenium (from PyPI).

- ``browser``      (module scope) one headless Chromium session, a fresh profile
- ``wp_login(browser, site, user="admin", password=...)`` logs in through wp-login.php
                   as a person does and waits for the dashboard

Nothing here downloads a browser: selenium is told the exact driver and binary
paths, so its own driver manager never runs. A missing chromium or
chromedriver is a test *failure* naming the package, never a skip.
"""

import os
from pathlib import Path
import shutil
import tempfile

import pytest

CHROMIUM = os.environ.get("PURGEBRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PURGEBRIDGE_CHROMEDRIVER", "/usr/bin/chromedriver")

# Flags for a closed network and a root user: without the background-networking
# ones Chromium keeps opening connections the machine refuses.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--window-size=1400,1000",
    # No name is ever resolved beyond loopback (WordPress pages link gravatar.com and s.w.org).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.*",
)


def require_browser():
    """Fail (not skip) with an install hint when a part of the browser stack is missing."""
    missing = [f"{path} (Debian package {pkg})" for path, pkg in
               ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")) if not Path(path).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (PyPI, in the test extra: pip install -e '.[test]')")
    if missing:
        pytest.fail("real-browser tests need " + ", ".join(missing) + "; run bash .ci/setup", pytrace=False)


def start_browser(profile_dir):
    """A headless Chromium session with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a test module (starting one costs about a second)."""
    require_browser()
    profile = tempfile.mkdtemp(prefix="pb-chromium-")
    driver = start_browser(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wp_login(driver, site, user="admin", password=None, timeout=90):
    """Log in through wp-login.php by typing and clicking, then wait for wp-admin."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from fixtures_wordpress import ADMIN_PASSWORD

    driver.get(site.url + "/wp-login.php")
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.ID, "user_login")))
    field = driver.find_element(By.ID, "user_login")
    field.clear()
    field.send_keys(user)
    driver.find_element(By.ID, "user_pass").send_keys(password or ADMIN_PASSWORD)
    driver.find_element(By.ID, "wp-submit").click()
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.ID, "wpadminbar")))
