#!/usr/bin/env bash
# Installs what the browser tests need. Idempotent: a second run only checks what is there.
#
#   /usr/bin/chromium                     Debian's Chromium (Playwright cannot download its own)
#   $IPM_TOOLS/browser/node_modules       playwright-core and axe-core, exactly as
#                                         e2e/browser/package-lock.json pins them (`npm ci`)
#
# Needs root for apt-get, and Node.js 20 or later with npm. Callers set CHROMIUM_BIN and
# BROWSER_MODULES from the paths above.
set -euo pipefail
cd "$(dirname "$0")/.."

IPM_TOOLS="${IPM_TOOLS:-/var/cache/ipm-tools}"
dest="$IPM_TOOLS/browser"

if ! dpkg -s chromium >/dev/null 2>&1; then
	echo "install-browser: installing chromium"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

# The modules are reinstalled only when the lock file changes.
stamp=$(sha256sum e2e/browser/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$dest/.lock-sha256" 2>/dev/null)" != "$stamp" ]; then
	echo "install-browser: npm ci into $dest"
	rm -rf "$dest"
	mkdir -p "$dest"
	cp e2e/browser/package.json e2e/browser/package-lock.json "$dest/"
	(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	echo "$stamp" >"$dest/.lock-sha256"
fi

if ! /usr/bin/chromium --headless=new --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1; then
	echo "install-browser: /usr/bin/chromium does not run headless" >&2
	exit 1
fi
for module in playwright-core axe-core; do
	if [ ! -f "$dest/node_modules/$module/package.json" ]; then
		echo "install-browser: $module is missing from $dest/node_modules" >&2
		exit 1
	fi
done
