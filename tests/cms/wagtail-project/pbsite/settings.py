"""A minimal Wagtail site for purgebridge's live tests, configured by environment variables.

WAGTAIL_DATA      folder for the SQLite database and media
WAGTAIL_HOSTS     ALLOWED_HOSTS, comma-separated
PURGE_LOCATION    where wagtail.contrib.frontend_cache sends its PURGE requests
                  (the relay's PURGE front door); unset: no frontend cache
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("WAGTAIL_DATA", BASE_DIR / "data"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "purgebridge-wagtail-test-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = os.environ.get("WAGTAIL_HOSTS", "wagtail.site.test,127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "blog",
    "wagtail.contrib.frontend_cache",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "pbsite.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "pbsite.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA / "wagtail.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = DATA / "static"
MEDIA_ROOT = DATA / "media"
MEDIA_URL = "/media/"

WAGTAIL_SITE_NAME = "Purgebridge Wagtail"
WAGTAILADMIN_BASE_URL = "http://wagtail.site.test"
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
# No calls to the world: no update check in the admin, no usage data.
WAGTAIL_ENABLE_UPDATE_CHECK = False
WAGTAIL_ENABLE_WHATS_NEW_BANNER = False
WAGTAILADMIN_NOTIFICATION_USE_HTML = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# The documented way to keep a cache in front of Wagtail fresh: frontend_cache's
# HTTPBackend sends "PURGE <path>" with the page's Host to LOCATION.
if os.environ.get("PURGE_LOCATION"):
    WAGTAILFRONTENDCACHE = {
        "purgebridge": {
            "BACKEND": "wagtail.contrib.frontend_cache.backends.HTTPBackend",
            "LOCATION": os.environ["PURGE_LOCATION"],
        },
    }

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"wagtail.frontendcache": {"handlers": ["console"], "level": "INFO"}},
}
