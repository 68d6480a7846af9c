"""Stand-in for ansible-test's downloaded get-pip.py bootstrap script.

ansible-test fetches get-pip.py from its own CI file server, which machines that only reach
PyPI cannot do. This script does the same job with the standard library: bootstrap the pip
bundled with Python (ensurepip), then let that pip install what ansible-test asked for
(pip==<version> and friends) from the configured package index. get-pip's own options
--no-setuptools and --no-wheel are honoured by removing what ensurepip brought.
"""
import ensurepip
import os
import subprocess
import sys

OWN_OPTIONS = {"--no-setuptools", "--no-wheel"}
args = [a for a in sys.argv[1:] if a not in OWN_OPTIONS]

# ensurepip points PIP_CONFIG_FILE at /dev/null for its own run; the install after it must
# see the machine's pip configuration (index, CA bundle), so keep the environment from before.
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q"] + args, env=env)
if rc == 0 and "--no-setuptools" in sys.argv:
    rc = subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], env=env)
sys.exit(rc)
