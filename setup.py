"""Which packages the igtflow distribution holds; everything else about it is in pyproject.toml.

Each layer folder installs as a subpackage of ``igtflow`` (``stream/`` → ``igtflow.stream``), so
generic names like ``launch`` never land in site-packages as top-level modules. setuptools'
own package finding cannot rename a folder on the way, so the packages below each layer are found
here: a new subpackage (a folder with an ``__init__.py``) needs no edit anywhere.
"""

from setuptools import find_packages, setup

LAYERS = ("stream", "perception", "registration", "render", "launch")

package_dir = {"igtflow": "igtflow", **{f"igtflow.{layer}": layer for layer in LAYERS}}
packages = [
    *find_packages(include=["igtflow", "igtflow.*"]),
    *(
        f"igtflow.{package}"
        for package in find_packages(include=[*LAYERS, *(f"{layer}.*" for layer in LAYERS)])
    ),
]

setup(package_dir=package_dir, packages=sorted(packages))
