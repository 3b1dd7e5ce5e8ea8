"""Prints the requirements of the given pyproject.toml extras, one per line, so that `make`
installs exactly what pyproject.toml declares (without building the project itself).

Usage: python tools/requirements.py dev,test,lint
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
requirements = list(project.get("dependencies", []))
for name in sys.argv[1].split(","):
    requirements += extras[name]
print("\n".join(dict.fromkeys(requirements)))
