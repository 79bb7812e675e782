"""Only what pyproject.toml cannot say: the example recipes in recipes/ ship inside the package.

`recipes/` stays at the top of the repository, where the README, the tests and `steer run
recipes/...` name it; in the wheel it becomes `recipe_engine/examples/` (package data, no
symlink, no copy at build time), which `steer ls` and `steer cp` read.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["recipe_engine", "recipe_engine.*"]),
        "recipe_engine.examples",
    ],
    package_dir={"recipe_engine.examples": "recipes"},
)
