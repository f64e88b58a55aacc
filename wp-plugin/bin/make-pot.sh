#!/usr/bin/env bash
# Regenerates wp-plugin/purgebridge/languages/purgebridge.pot from the plugin's
# PHP sources with GNU xgettext (Debian package "gettext"), so the template
# always holds exactly the strings the code translates. WordPress's own
# gettext functions are declared as keywords (with their context and plural
# arguments), "translators:" comments are kept, and the plugin header's name
# and description are added the way `wp i18n make-pot` adds them.
#
#   bash wp-plugin/bin/make-pot.sh [OUTPUT]     # default: the .pot in languages/
#
# Locations name the file, not the line, and there is no creation date, so running it twice gives the same bytes
# and a test can compare the committed file with a fresh one.
set -euo pipefail
plugin="$(cd "$(dirname "$0")/../purgebridge" && pwd)"
out="${1:-$plugin/languages/purgebridge.pot}"
command -v xgettext >/dev/null || { echo "make-pot: xgettext is missing (apt-get install gettext)" >&2; exit 2; }

header_field() { sed -n "s/^ \* $1: *//p" "$plugin/purgebridge.php" | head -n 1; }
version="$(header_field Version)"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT

cd "$plugin"
find . -name '*.php' -not -path './languages/*' | LC_ALL=C sort | sed 's|^\./||' > "$tmp.files"
xgettext --language=PHP --from-code=UTF-8 --add-comments=translators: --no-wrap --sort-by-file --add-location=file \
  --package-name=Purgebridge --package-version="$version" \
  -k -k__ -k_e -kesc_html__ -kesc_html_e -kesc_attr__ -kesc_attr_e \
  -k_x:1,2c -k_ex:1,2c -kesc_html_x:1,2c -kesc_attr_x:1,2c \
  -k_n:1,2 -k_nx:1,2,4c -k_n_noop:1,2 -k_nx_noop:1,2,3c \
  --files-from="$tmp.files" -o "$tmp"
rm -f "$tmp.files"

{
  echo "# Translation template for Purgebridge $version."
  echo "# Generated from the plugin's sources by wp-plugin/bin/make-pot.sh; do not edit."
  echo 'msgid ""'
  echo 'msgstr ""'
  echo "\"Project-Id-Version: Purgebridge $version\\n\""
  echo '"MIME-Version: 1.0\n"'
  echo '"Content-Type: text/plain; charset=UTF-8\n"'
  echo '"Content-Transfer-Encoding: 8bit\n"'
  echo '"PO-Revision-Date: YEAR-MO-DA HO:MI+ZONE\n"'
  echo '"Last-Translator: FULL NAME <EMAIL@ADDRESS>\n"'
  echo '"Language-Team: LANGUAGE <LL@li.org>\n"'
  echo '"Language: \n"'
  echo '"X-Domain: purgebridge\n"'
  echo
  for field in 'Plugin Name' Description; do
    value="$(header_field "$field" | sed 's/"/\\"/g')"
    grep -qxF "msgid \"$value\"" "$tmp" && continue   # already a string of the code: one entry only
    printf '#. %s of the plugin\n#: purgebridge.php\nmsgid "%s"\nmsgstr ""\n\n' "$field" "$value"
  done
  # xgettext's own header entry (the first one, up to the first blank line) is replaced by the one above.
  awk 'found { print } /^$/ { found = 1 }' "$tmp"
} > "$out"
echo "make-pot: $(grep -c '^msgid "[^"]' "$out") strings -> $out"
