"""Builds the Python package `mpthrottle` with CMake, for pip.

    pip install ./python                       # from the repository root
    pip install .                              # the same, through the root's setup.py
    pip install --no-build-isolation ./python  # offline, with the installed setuptools and wheel

The package is not built by setuptools: this script configures the repository with CMake
(MPT_PYTHON=ON; no tests, benchmarks, examples or eBPF programs), builds the target
`mpthrottle_python` for the Python that runs pip, and copies what the build puts in
BUILD/python/mpthrottle/ (the extension module, __init__.py, the type stubs, py.typed) into the
wheel. The CMake build directory is kept under build/pip/ of the repository, so a second install
rebuilds only what changed.

Environment:
  MPT_CMAKE_ARGS   more CMake arguments, split as a shell would (e.g. "-DMPT_REDIS=OFF" when
                   libhiredis-dev is missing; the module's connect() then says Redis is not built)
  CMAKE_BUILD_PARALLEL_LEVEL   parallel build jobs (default: the number of CPUs)
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = "mpthrottle_python"
PACKAGE = "mpthrottle"
INSTALL_HINT = ("scripts/install-deps installs the build's Debian packages; the module also needs "
                "pybind11-dev and python3-dev")


class BuildError(SystemExit):
    """Stops the build with one message saying what is missing and what to do."""

    def __init__(self, message):
        super().__init__(f"mpthrottle: {message}")


def project_version():
    """The version of the top-level CMakeLists.txt's project(), the one place it is written."""
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(r"project\(\s*mpthrottle\s+VERSION\s+([0-9][0-9.]*)", text)
    if not match:
        raise BuildError(f"no project(mpthrottle VERSION ...) in {ROOT / 'CMakeLists.txt'}")
    return match.group(1)


def check_repository():
    """The package builds from a checkout of the repository, never from a bare copy of python/."""
    if not (ROOT / "CMakeLists.txt").is_file() or not (ROOT / "lib").is_dir():
        raise BuildError(f"{ROOT} is not an mpthrottle checkout (no CMakeLists.txt and lib/): "
                         "install from the repository, `pip install ./python`")


def check_tools():
    """cmake on PATH and Python's headers; the rest is found, or reported, by CMake itself."""
    if shutil.which("cmake") is None:
        raise BuildError("cmake (3.25 or later) was not found on PATH: apt-get install cmake; "
                         + INSTALL_HINT)
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").is_file():
        raise BuildError(f"Python.h was not found in {include!r}: the headers of {sys.executable} "
                         "are missing (Debian: apt-get install python3-dev)")


def run(command, what, cwd=None):
    """Runs one CMake step; on failure, stops with the step's name, its command and a hint."""
    print("mpthrottle:", " ".join(shlex.quote(str(c)) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=cwd)
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit {result.returncode}); the output above says why. "
                         f"{INSTALL_HINT}; extra CMake arguments go in MPT_CMAKE_ARGS "
                         "(e.g. MPT_CMAKE_ARGS=-DMPT_REDIS=OFF without libhiredis-dev)")


def check_target(build):
    """Stops early, and says why, when the configured build has no Python module to build."""
    generated = [build / "build.ninja", build / "Makefile"]
    text = "".join(f.read_text(encoding="utf-8", errors="replace")
                   for f in generated if f.is_file())
    if TARGET not in text:
        raise BuildError(f"CMake made no target {TARGET}: MPT_PYTHON is off (CMake's message above "
                         f"says why; {INSTALL_HINT}) or this checkout has no python/CMakeLists.txt")


class CMakeExtension(Extension):
    """The extension module, built by CMake rather than from listed sources."""

    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configures and builds the repository's target mpthrottle_python; copies the package."""

    def build_extension(self, ext):
        if self.inplace:
            raise BuildError("editable installs are not supported (the build would write into "
                             "python/mpthrottle/); use PYTHONPATH=BUILD/python with a CMake build")
        check_repository()
        check_tools()
        build = Path(self.build_temp).resolve() / "cmake"
        configure = [
            "cmake", "-S", ROOT, "-B", build,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DMPT_PYTHON=ON", "-DMPT_TESTS=OFF", "-DMPT_BENCH=OFF", "-DMPT_EXAMPLES=OFF",
            "-DMPT_BPF=OFF",  # the eBPF programs are the CLI's, not the module's
            f"-DPython3_EXECUTABLE={sys.executable}",  # the module is for the Python running pip
        ]
        if shutil.which("ninja") and not (build / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("MPT_CMAKE_ARGS", ""))
        run(configure, "configuring with CMake")
        check_target(build)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        run(["cmake", "--build", build, "--target", TARGET, "-j", jobs],
            f"building the CMake target {TARGET}")
        self.copy_package(build / "python" / PACKAGE, Path(self.get_ext_fullpath(ext.name)).parent)

    def copy_package(self, built, dest):
        """Copies the package CMake assembled (module, .py, .pyi, py.typed) into the wheel."""
        modules = list(built.glob("_mpthrottle*.so")) if built.is_dir() else []
        if not modules:
            raise BuildError(f"the build made no {built}/_mpthrottle*.so: is MPT_PYTHON on? "
                             f"(CMake says why it is off when pybind11 or Python is missing; "
                             f"{INSTALL_HINT})")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(built, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


if {"bdist_wheel", "dist_info"} & set(sys.argv):
    try:
        import wheel  # noqa: F401  (setuptools' bdist_wheel command, which pip runs, is its)
    except ImportError:
        raise BuildError(f"the Python package 'wheel' is missing for {sys.executable} "
                         "(Debian: apt-get install python3-wheel)") from None

setup(
    name=PACKAGE,
    version=project_version(),
    description="Shared-memory rate limiting for many Python processes: mp_throttle's API on "
                "mpthrottle's C++ engine",
    long_description=(ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    if (ROOT / "docs" / "python.md").is_file() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[],  # the package comes whole from the CMake build (CMakeBuild.copy_package)
    ext_modules=[CMakeExtension(f"{PACKAGE}._mpthrottle")],
    cmdclass={"build_ext": CMakeBuild},
    # Everything setuptools writes goes to build/pip/, none of it beside the sources.
    options={"build": {"build_base": str(ROOT / "build" / "pip")},
             "egg_info": {"egg_base": str(ROOT / "build" / "pip")}},
    zip_safe=False,
)
