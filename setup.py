"""`pip install .` from the repository root: runs python/setup.py, which builds the Python package
`mpthrottle` with CMake (see there). `pip install ./python` does the same."""
import os
import runpy

runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "python", "setup.py"),
               run_name="__main__")
