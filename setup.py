"""The optional compiled frame triage: `monitor/capture/_triage.pyx`, built when Cython and a C
compiler are there (`pip install -e .` fetches Cython into its build environment). Without them
the package installs all the same and `monitor.capture.triage` uses its Python twin (same output).
Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # e.g. `pip wheel --no-build-isolation` in a venv without Cython
    ext_modules = []
else:
    ext_modules = cythonize(
        [Extension("monitor.capture._triage", ["monitor/capture/_triage.pyx"], optional=True)],
        build_dir="build/cython", quiet=True)

setup(ext_modules=ext_modules)
