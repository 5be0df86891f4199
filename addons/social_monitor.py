"""mitmproxy addon script: social-monitor's proxy source for a stock mitmdump.

    mitmdump -s addons/social_monitor.py --set social_monitor_config=/etc/social-monitor/config.yaml

The addon lives in the installed package (`monitor.proxy.addon`), as mitmproxy keeps its own
addons in its package; this script only names it, so `mitmdump -s` and `social-monitor proxy`
run the same code. Set-up and deployment: docs/proxy.md.
"""

import sys
from pathlib import Path

try:
    import monitor  # noqa: F401  (installed in the project's venv)
except ImportError:  # a mitmdump outside the venv: use the checkout this file lives in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.proxy.addon import SocialMonitor

addons = [SocialMonitor()]
