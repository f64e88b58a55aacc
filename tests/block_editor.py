"""Driving WordPress's block editor in a real browser, as an editor does.

Shared by tests/test_wp_browser_editor.py and bench/editor_click.py:

- ``open_editor(driver, site, post_id)`` opens post.php in the block editor and
  closes the welcome guide WordPress 6.1 shows on a user's first visit (its
  "Close dialog" button, which also saves the preference for the next visit);
- ``retype_title(driver, text)`` clicks into the title, selects it and types;
- ``click_update(driver)`` clicks "Update" and waits for the "Post updated"
  snackbar; returns the milliseconds between the click event and the moment
  the snackbar appeared, both taken in the page (``performance.now()``), so
  WebDriver's own round trips are not part of the number.
"""

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

TITLE = (By.CSS_SELECTOR, "h1.editor-post-title__input")
UPDATE = (By.CSS_SELECTOR, "button.editor-post-publish-button")
GUIDE_CLOSE = (By.CSS_SELECTOR, ".edit-post-welcome-guide button[aria-label='Close dialog']")
SAVED_TEXT = "Post updated"

# Arms the measurement: t0 at the click event on Update (capture phase), t1 when
# a snackbar saying "Post updated" is added to the page.
_ARM = """
window.__pbClick = {t0: null, t1: null};
// On the document, not the button: React may replace the button's node between here and the click.
const onClick = (event) => {
    if (event.target.closest('button.editor-post-publish-button')) {
        window.__pbClick.t0 = performance.now();
        document.removeEventListener('click', onClick, true);
    }
};
document.addEventListener('click', onClick, true);
const observer = new MutationObserver(() => {
    const shown = [...document.querySelectorAll('.components-snackbar')]
        .some((el) => el.textContent.includes(arguments[0]));
    if (shown && window.__pbClick.t0 !== null) {
        window.__pbClick.t1 = performance.now();
        observer.disconnect();
    }
});
observer.observe(document.body, {childList: true, subtree: true, characterData: true});
"""

_READY = """
const editor = wp.data.select('core/editor');
const button = document.querySelector('button.editor-post-publish-button');
return !!button && button.getAttribute('aria-disabled') !== 'true'
    && !editor.isSavingPost() && !editor.isAutosavingPost();
"""

# What the page shows when a save did not end in "Post updated" (for the failure message).
_STATE = """
return {click: window.__pbClick,
        notices: [...document.querySelectorAll('.components-snackbar, .components-notice')].map((el) => el.textContent),
        saving: wp.data.select('core/editor').isSavingPost(),
        dirty: wp.data.select('core/editor').isEditedPostDirty()};
"""

_SNACKBAR_SHOWN = """
return [...document.querySelectorAll('.components-snackbar')].some((el) => el.textContent.includes(arguments[0]));
"""


def open_editor(driver, site, post_id, timeout=60):
    """Open the post in the block editor; close the welcome guide if WordPress shows it."""
    driver.get(f"{site.url}/wp-admin/post.php?post={post_id}&action=edit")
    wait = WebDriverWait(driver, timeout)
    wait.until(ec.element_to_be_clickable(UPDATE))
    wait.until(ec.presence_of_element_located(TITLE))
    # The guide is rendered with the editor on a user's first visit; give it a moment.
    try:
        close = WebDriverWait(driver, 3).until(ec.element_to_be_clickable(GUIDE_CLOSE))
    except TimeoutException:  # no guide: the preference is already saved
        close = None
    if close is not None:
        close.click()
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".edit-post-welcome-guide")))
    wait.until(ec.element_to_be_clickable(TITLE))


def retype_title(driver, text):
    """Replace the title by typing, as an editor does."""
    title = driver.find_element(*TITLE)
    title.click()
    title.send_keys(Keys.CONTROL, "a")
    title.send_keys(text)


def click_update(driver, timeout=60):
    """Click "Update", wait for "Post updated"; milliseconds from the click to the snackbar."""
    # A snackbar of the previous save would count as this one's: wait until it is gone.
    driver.execute_script("wp.data.dispatch('core/notices').removeNotice('SAVE_POST_NOTICE_ID');")
    WebDriverWait(driver, 10).until(lambda d: not d.execute_script(_SNACKBAR_SHOWN, SAVED_TEXT))
    # An autosave in progress disables Update (aria-disabled, so a click would do nothing).
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(_READY), message="Update never became clickable")
    driver.execute_script(_ARM, SAVED_TEXT)
    driver.find_element(*UPDATE).click()
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.02).until(
            lambda d: d.execute_script("return window.__pbClick.t1 !== null;"))
    except TimeoutException:
        state = driver.execute_script(_STATE)
        raise AssertionError(f"no '{SAVED_TEXT}' snackbar within {timeout}s of clicking Update: {state}") from None
    return driver.execute_script("return window.__pbClick.t1 - window.__pbClick.t0;")
