"""`steer test --junit FILE`: JUnit XML, which CI systems (GitHub, GitLab, Jenkins) read. One
<testsuite> per recipe, one <testcase> per claim, named by the claim and carrying its file and
line; a recipe that did not run is one <testcase> with an <error>."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from recipe_engine.recipe_tests.result import RecipeTestResult

__all__ = ["junit_xml"]


def junit_xml(results: list[RecipeTestResult]) -> str:
    root = ET.Element("testsuites", name="steer test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for recipe in results:
        suite = ET.SubElement(root, "testsuite", name=recipe.display)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        if recipe.error is not None:
            case = ET.SubElement(
                suite, "testcase", name="run", classname=recipe.display, file=recipe.display
            )
            error = ET.SubElement(case, "error", message=recipe.error)
            error.text = "\n".join([recipe.error, *recipe.lock_differences])
            counts["tests"] += 1
            counts["errors"] += 1
        for claim in recipe.results:
            where = claim.location
            case = ET.SubElement(
                suite,
                "testcase",
                name=f"expect[{claim.index}] {claim.claim}",
                classname=recipe.display,
                file=where.file if where else recipe.display,
                line=str(where.line if where else 1),
            )
            counts["tests"] += 1
            if not claim.passed:
                failure = ET.SubElement(
                    case, "failure", message=f"{claim.measured} (want {claim.bound})"
                )
                failure.text = claim.line()
                counts["failures"] += 1
            else:
                ET.SubElement(case, "system-out").text = claim.line()
        suite.set("time", f"{recipe.seconds:.3f}")
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
