"""``ray job submit -- python jobs/prepare.py --events s3://... --out s3://...``

Thin recipe: the same arguments and the same function as ``negrec prepare``.
"""

from __future__ import annotations

import sys

from negrec.cli import main as negrec_main

if __name__ == "__main__":
    sys.exit(negrec_main(["prepare", *sys.argv[1:]]))
