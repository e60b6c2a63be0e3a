"""pmcap: uncertain patient demand for cell and gene therapies -> manufacturing capacity.

The front door: scenario files, the ``pmcap`` command line, reports and exports. The models live
in :mod:`forecast` (demand) and :mod:`capacity` (supply).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pmcap")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
