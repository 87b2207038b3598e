#!/usr/bin/env bash
# Install Chromium from the OS packages for the HTML report's browser test (test/integration/test_html_report.py).
# Run by `make install-browser` (and by .ci/run, which tolerates a failure: the test then skips, saying
# why); `make test` never installs system packages. Debian/Ubuntu (apt-get) only; elsewhere install chromium yourself. Each apt step is bounded
# in time, so that a machine without a package mirror fails fast instead of hanging the test run.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" > /dev/null; then echo "tools/install_browser.sh: $(command -v "$b") is installed"; exit 0; fi
done
if ! command -v apt-get > /dev/null; then
    echo "tools/install_browser.sh: no apt-get here: install Chromium with your OS's package manager" >&2; exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
echo "tools/install_browser.sh: apt-get install chromium"
timeout 600 ${sudo} apt-get install -y -q chromium > /tmp/speechser-install-browser.log 2>&1 \
    || { timeout 300 ${sudo} apt-get update -q >> /tmp/speechser-install-browser.log 2>&1 \
         && timeout 600 ${sudo} apt-get install -y -q chromium >> /tmp/speechser-install-browser.log 2>&1; } \
    || { echo "tools/install_browser.sh: apt-get failed; see /tmp/speechser-install-browser.log" >&2; exit 1; }
echo "tools/install_browser.sh: $(command -v chromium) installed"
